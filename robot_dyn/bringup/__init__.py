"""Which nodes run, with which parameters: one answer for the ROS 2 launch file and for
`robot-dyn launch` (plain processes), so the two cannot drift apart."""
