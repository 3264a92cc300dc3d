"""Control cores: the 1 kHz robot layer (impedance law, watchdog) and the outer loop
(trajectories, differential IK, rigid-body feedforward). No ROS here."""
