"""Every node's parameters: name -> default, with a description. ROS-free, so configs can be
checked before any node starts, and the nodes declare exactly these."""

SIM = {
    "robot": ("panda", "robot name: urdf/<robot>.urdf and configs/robots/<robot>.yaml"),
    "backend": ("mujoco", "physics backend: mujoco | pybullet"),
    "effects_profile": ("nominal", "unmodelled effects profile from configs/sim_effects.yaml"),
    "mode": ("lockstep", "lockstep (physics waits for each outer-loop reference) | realtime (wall-clock paced)"),
    "physics_rate_hz": (1000.0, "physics and robot-layer rate, Hz (1000 or more)"),
    "state_rate_hz": (500.0, "/joint_states and /clock rate, Hz; equals the controller's rate in lockstep"),
    "lockstep_timeout_s": (1.0, "wall time without a reference after which lockstep runs on at real-time pace"),
    "robot_compensates_gravity": (True, "the simulated arm adds its nominal gravity torque, like Franka and KUKA"),
    "initial_positions": ([], "rad, URDF joint order; empty = the robot's home"),
    "stiffness": ([], "joint stiffness K, Nm/rad; empty = configs/robots/<robot>.yaml"),
    "damping": ([], "joint damping D, Nm s/rad; empty = robot config"),
    "safe_stiffness": ([], "hold-mode stiffness, Nm/rad; empty = robot config"),
    "safe_damping": ([], "hold-mode damping, Nm s/rad; empty = robot config"),
    "torque_limits": ([], "Nm; empty = URDF effort limits"),
    "torque_rate_limits": ([], "Nm/s; empty = robot config"),
    "stale_timeout_s": (0.05, "a reference older than this (sim time) makes the robot layer hold position"),
    "extrapolation_horizon_s": (0.008, "how far a reference is extrapolated (its constant-acceleration segment) before it is held, s"),
    "max_position_error_rad": (0.05, "references farther than this from the measured position are rejected, rad"),
    "reference_lead_ticks": (4, "the controller's reference_lead_ticks (the graph copies it): a reference answers the state this many ticks before its stamp, for the round-trip timing"),
    "diagnostics_period_s": (1.0, "wall-clock period of /diagnostics, s"),
    "stats_file": ("", "if set, timing statistics are written there as JSON at shutdown"),
    "hardware_emulation": ("", "'' (the project's robot layer on /impedance_reference) | franka (the FR3's "
                               "joint_trajectory_controller, effort interface: robot_dyn/sim/vendor_laws.py, on "
                               "/fr3_arm_controller/joint_trajectory, states on /franka/joint_states; robot fr3, "
                               "realtime)"),
    "emulated_controllers": ("", "franka emulation: the ros2_control parameter file whose fr3_arm_controller gains "
                                 "and cmd_timeout it runs; empty = hardware/franka/fr3_impedance_controllers.yaml"),
    # Scene and cameras (issue 5); off by default so the arm-only graph stays fast.
    "scene": ("", "'' (the arm alone) | rope (table, rope and pusher of the scene config) | insert | pusht (imitation tasks: robot_dyn/tasks, their tool on the flange)"),
    "task_config": ("", "a task scene's config file; empty = configs/tasks/<scene>.yaml"),
    "task_seed": (-1, "a task scene's episode: its randomisation drawn from this seed; -1 = the nominal scene"),
    "score_rate_hz": (10.0, "a task scene's /task/score, /task/success and /task/contact_wrench rate, Hz of sim time"),
    "scene_config": ("", "table, rope, pusher and camera rig file; empty = configs/perception.yaml"),
    "rope_seed": (-1, "initial rope shape: random from this seed (the episodes' generator); -1 = straight along y"),
    "cameras": (False, "render the scene config's camera rig and publish /cameras/<name>/... (see README)"),
    "camera_rate_hz": (10.0, "camera rate in sim time, Hz; rendered between physics ticks"),
    "camera_width": (0, "image width, px; 0 = the scene config's"),
    "camera_height": (0, "image height, px; 0 = the scene config's"),
    "camera_shadow_size": (0, "shadow map size, px; 0 = no shadows (about 5x cheaper to render on a CPU)"),
    "world_frame": ("world", "frame_id of the camera poses and ground truth (the arm's base frame in sim)"),
    "publish_ground_truth": (True, "with cameras: the rope's vertices on /sim/rope_vertices (PointCloud2) per capture"),
}

CONTROLLER = {  # all but controller_node.FIXED_AT_START change at run time
    "robot": ("panda", "robot name"),
    "tool": ("", "the task whose tool the flange carries (its mass in the feedforward, its shape in the safety filter); the graph sets it from the sim's scene"),
    "tool_config": ("", "that task's config file; empty = configs/tasks/<tool>.yaml (the graph copies the sim's task_config)"),
    "rate_hz": (500.0, "outer-loop rate, Hz (ticks are driven by /joint_states, decimated to this)"),
    "feedforward": ("nominal", "none | nominal (URDF rigid-body model) | identified | blackbox | hybrid (learned)"),
    "feedforward_checkpoint": ("", "checkpoint folder of a learned model (robot-dyn train inverse-dynamics)"),
    "robot_compensates_gravity": (True, "true for Franka/KUKA and the sim default: the feedforward leaves gravity out"),
    "joint_speed_scale": (0.5, "share of the joint velocity/acceleration limits used by joint goals"),
    "cartesian_speed": (0.25, "pose goals: peak linear speed, m/s"),
    "cartesian_acceleration": (1.0, "pose goals: peak linear acceleration, m/s^2"),
    "angular_speed": (1.0, "pose goals: peak angular speed, rad/s"),
    "angular_acceleration": (3.0, "pose goals: peak angular acceleration, rad/s^2"),
    "path_start_tolerance": (0.01, "a Cartesian path must start within this distance of the desired pose, m"),
    "twist_command_type": ("unitless", "teleoperation (/controller/twist_command): unitless (each component in [-1, 1], scaled below) | speed_units (m/s, rad/s), MoveIt Servo's conventions"),
    "twist_linear_scale": (0.15, "teleoperation: linear speed of a unitless 1.0, m/s"),
    "twist_angular_scale": (0.5, "teleoperation: angular speed of a unitless 1.0, rad/s"),
    "twist_max_linear_speed": (0.25, "teleoperation: commanded linear speeds are clipped to this, m/s"),
    "twist_max_angular_speed": (1.0, "teleoperation: commanded angular speeds are clipped to this, rad/s"),
    "twist_linear_acceleration": (1.0, "teleoperation: how fast the followed linear velocity may change (start, stop), m/s^2"),
    "twist_angular_acceleration": (3.0, "teleoperation: how fast the followed angular velocity may change, rad/s^2"),
    "twist_timeout_s": (0.1, "teleoperation: a command is followed this long after its stamp; then the arm brakes to rest, s"),
    "twist_max_pose_error_m": (0.02, "teleoperation: how far the followed pose may lead a held-back arm (the filter, a limit), m (5x in rad)"),
    "wrench_max_force_n": (20.0, "wrench feedforward (/controller/wrench_command): the force's norm is clipped to this and to safety_external_force, N"),
    "wrench_max_torque_nm": (2.0, "wrench feedforward: the torque's norm is clipped to this, Nm"),
    "wrench_force_rate": (200.0, "wrench feedforward: how fast the applied force may change, N/s"),
    "wrench_torque_rate": (20.0, "wrench feedforward: how fast the applied torque may change, Nm/s"),
    "wrench_timeout_s": (0.1, "wrench feedforward: a command is applied this long after its stamp; then the wrench ramps to zero, s"),
    "ik_position_gain": (400.0, "differential IK pose-error gain, 1/s^2"),
    "ik_velocity_gain": (40.0, "differential IK twist-error gain, 1/s"),
    "ik_nullspace_stiffness": (10.0, "posture task stiffness in the IK nullspace, 1/s^2"),
    "ik_nullspace_damping": (6.3, "posture task damping in the IK nullspace, 1/s"),
    "resync_threshold": (0.05, "rad: when the arm is this far from the desired state, restart from it (a motion under way is aborted: the robot layer refuses references that far, at its max_position_error_rad)"),
    "slowdown_lag_rad": (0.015, "time scaling: the motion's clock slows once the reference leads the measured arm by this much (any joint), rad"),
    "pause_lag_rad": (0.03, "time scaling: ... and pauses from this lead on, rad (less than the robot layer's max_position_error)"),
    "hold_lag_rad": (0.04, "time scaling: during a motion the reference is held within this of the measured arm (a contact pushing the arm away from a paused reference), rad (between pause_lag_rad and the robot layer's max_position_error)"),
    "reference_lead_ticks": (4, "after the state at t, the reference for t + lead / rate_hz is computed and sent at once; the robot layer applies it at its stamp. 0: the reference for the state's own time, on its arrival (hardware adapters forward on receipt). At most 10 ms ahead (the robot layer's limit)"),
    "lockstep": (False, "the sim waits for every reference (set by the graph from the sim's mode; never on a real robot): each MPC plan (mpc_process) is taken exactly one replanning period after asking, so runs repeat whatever the load"),
    "test_tick_delay_s": (0.0, "testing only: wall seconds slept in the compute of every reference, to rehearse a slow machine"),
    "goal_planner": ("mpc", "mpc (joint and pose goals tracked by the reference MPC with CBF constraints) | direct (their minimum-jerk reference)"),
    "mpc_rate_hz": (25.0, "MPC replanning rate and plan step, Hz"),
    "mpc_horizon": (12, "MPC horizon, steps"),
    "mpc_gamma": (0.25, "MPC discrete CBF rate: h(x_k+1) >= (1 - gamma) h(x_k)"),
    "mpc_distance_margin": (0.015, "kept by the MPC's plan from the table, workspace and obstacles, m (more than the filter's)"),
    "mpc_joint_margin": (0.05, "kept by the MPC's plan from joint limits, rad (clear of the filter's margin and force budget)"),
    "mpc_process": (True, "solve the MPC in a process of its own, so the tick never waits for it (false: in the tick, deterministic in lockstep but too slow for real time)"),
    "safety_filter": ("robust", "off | nominal (CBF QP, OSQP) | robust (the CBF QP, and where its answer is not robust the SOCP with the torque-error model, Clarabel)"),
    "safety_config": ("", "safe sets file; empty = configs/safety.yaml"),
    "safety_error_model": ("", "robust filter: a robot-dyn fit error-model folder; empty = the prior (10 % parameter error)"),
    "safety_acceleration_scale": (1.0, "share of the acceleration limits the filter may command"),
    "safety_velocity_scale": (1.0, "share of the velocity limits the reference may reach"),
    "safety_joint_braking_scale": (0.5, "share of the acceleration limits assumed for braking before a joint limit"),
    "safety_cartesian_braking": (1.0, "deceleration assumed for braking before the table, workspace or an obstacle, m/s^2"),
    "safety_joint_margin": (0.01, "kept from joint limits, rad"),
    "safety_external_force": (30.0, "contact force at the end-effector the joint limits are kept against, N (limits tightened by F |J_i| / K_i)"),
    "safety_distance_margin": (0.01, "kept from the table, the workspace box and obstacles, m"),
    "safety_decay_rate": (20.0, "class-K gain: each barrier may shrink at most this fast, 1/s"),
    "safety_escape_gain": (5.0, "a violated set is left at speed gain * depth (at most 0.1 m/s), 1/s"),
    "safety_confidence": (2.0, "robust filter: torque error bound = mean +- confidence * std"),
    "safety_tracking_time_constant": (0.0, "robust filter: lag of the tracking error behind the torque error, s; 0: per joint D/K of the impedance gains"),
    "desired_pose_rate_hz": (50.0, "rate of /controller/desired_pose, Hz"),
    "diagnostics_period_s": (1.0, "wall-clock period of /diagnostics, s"),
    "stats_file": ("", "if set, timing statistics are written there as JSON at shutdown"),
}

TELEOP = {
    "robot": ("panda", "robot name (its base and end-effector frames name the command frames)"),
    "device": ("joy", "joy (sensor_msgs/Joy on /joy, e.g. from joy_node) | spacemouse (pyspacemouse) | keyboard (this terminal) | scripted (waypoints of `script`) | expert (the task's scripted expert)"),
    "task": ("", "expert: the task (robot_dyn/tasks) whose expert drives; the graph sets it from the sim's scene"),
    "task_config": ("", "expert: the task's config file; empty = configs/tasks/<task>.yaml"),
    "rate_hz": (50.0, "command rate while enabled, Hz (an expert decides at its task's rate, e.g. pusht 10 Hz, and its latest decision goes out at this rate)"),
    "frame": ("base", "base | ee: the frame the device's axes move the end-effector in"),
    "deadband": (0.1, "device axes below this (unitless) give 0; above it the response starts from 0"),
    "axis_scales": ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "per axis (linear x y z, angular x y z), in [-1, 1]; negative flips it"),
    "joy_axes": ([1.0, 0.0, 4.0, -1.0, -1.0, 3.0], "joy: index into Joy.axes per axis (linear x y z, angular x y z), -1: none"),
    "joy_timeout_s": (0.5, "joy: a joystick silent this long (wall s) stops the arm; joy_node repeats at autorepeat_rate (20 Hz) while held"),
    "deadman_button": (4, "joy and spacemouse: the button that must be held to move, -1: none (spacemouse default: set -1)"),
    "keyboard_hold_s": (0.6, "keyboard: a key moves its axis this long after its last press, s"),
    "script": ("", "scripted: the waypoints file (robot_dyn.teleop.scripted.load_script)"),
    "seed": (0, "scripted and expert: the operator's noise, pace and choices"),
    "expert_waits_for_recording": (False, "expert: start once the recorder has begun an episode (/recorder/events), as a "
                                          "person waits for the recording light; it waits for every camera's first frame"),
    "twist_linear_scale": (0.15, "scripted: the controller's twist_linear_scale, m/s (the graph copies it)"),
    "twist_angular_scale": (0.5, "scripted: the controller's twist_angular_scale, rad/s (the graph copies it)"),
}

RECORDER = {
    "out_dir": ("recordings", "episodes go here, one rosbag2 (MCAP) folder each: <task>_<NNNN>"),
    "task": ("demo", "the task name of episodes started without one (/recorder/start)"),
    "cameras": ("", "comma-separated camera names whose color, depth, info and pose topics are recorded (the graph fills it from the sim's rig)"),
    "extra_topics": ("", "comma-separated 'topic=package/msg/Type' recorded besides the defaults (joint states, references, twist commands, desired pose, events)"),
    "required_topics": ("/joint_states,/impedance_reference", "comma-separated recorded topics that must have delivered a message before an episode may start (/recorder/start answers 'not ready' until then, so no episode misses the start of a stream still being discovered); the cameras' color, depth and info streams are added"),
    "graph_facts": ("", "comma-separated key=value facts of the graph stored with every episode (robot, scene, task_seed, mode: replay starts the same graph from them); the graph sets it"),
    "flush_period_s": (0.5, "the bag is flushed to disk this often: at most this much is lost if the recorder is killed, s"),
    "status_period_s": (1.0, "a progress line on /recorder/events this often while recording, s (wall)"),
}

HARDWARE_ADAPTER = {
    "target": ("franka", "franka (joint_trajectory_controller, effort) | kuka (lbr_fri_ros2_stack torque command)"),
    "robot": ("", "robot whose limits references are checked against; empty = fr3 (franka), iiwa14 (kuka)"),
    "input_topic": ("/impedance_reference", "the project's impedance reference (trajectory_msgs/JointTrajectory)"),
    "output_topic": ("", "the arm controller's command topic; empty = the target's default"),
    "joint_prefix_map": ("", "'from:to[,from:to]' joint-name prefixes; empty = fr3_joint:fr3_joint (franka), lbr_A:lbr_A (kuka); e.g. panda_joint:fr3_joint for a graph on the Panda model"),
    "effort_limit": ([], "Nm per joint (or one value); references with a larger feedforward are rejected"),
    "horizon_s": (0.02, "franka: time_from_start of the forwarded point, s"),
    "extrapolate": (True, "franka: forward the reference predicted to stamp + horizon_s"),
    "include_effort": (True, "franka: send tau_ff as trajectory effort (false only for a JTC that rejects it)"),
    "use_reference_stamp": (True, "stamps are the adapter's clock (franka: forwarded as the point's stamp); false: "
                                  "another machine's clock: age from arrival, franka: stamp 0, start on receipt"),
    "lookahead_s": (0.0, "kuka: predict the joint-position setpoint this far after the stamp, s"),
    "damping_ff": ([], "kuka: Nm s/rad per joint, adds damping_ff * qd_d to the torque"),
    "stale_timeout_s": (0.015, "references older than this are refused (franka: must be below horizon_s); kuka: "
                               "without a fresh one, hold the position. Age from the stamp, or from the arrival for a "
                               "stamp of 0 or with use_reference_stamp false"),
    "state_rate_hz": (500.0, "the arm's joint states (1 kHz) are renamed and republished at most this often, Hz"),
    "state_input_topic": ("", "the arm's JointState; empty = /franka/joint_states (franka), /lbr/joint_states (kuka)"),
    "state_output_topic": ("/robot_dyn/joint_states", "JointState renamed to the URDF's joint names"),
}

PERCEPTION = {
    "robot": ("panda", "robot of /joint_states: forward kinematics (URDF) give the tool particle"),
    "cameras": ("cam0,cam1,cam2,cam3", "camera names, comma-separated; topics <camera_namespace>/<name>/..."),
    "camera_namespace": ("/cameras", "prefix of the camera topics"),
    "world_frame": ("world", "frame of the camera poses and of /perception/particles"),
    "tracker": ("gaussian", "gaussian (3D Gaussian tracking, robot_dyn.perception.tracking) | pointcloud (the "
                            "depth-only baseline, robot_dyn.perception.baseline)"),
    "tracking_config": ("", "file whose 'tracking:' section configures the tracker; empty = configs/perception.yaml"),
    "device": ("cpu", "gaussian: torch device, cpu | cuda"),
    "threads": (1, "gaussian on cpu: torch threads (the arm's loops need the other cores)"),
    "worker_nice": (10, "niceness added to the tracking thread (Linux), so the control loop keeps priority on a "
                        "shared CPU; 0 = none"),
    "n_particles": (0, "object particles published (farthest-point sampled from the tracked Gaussians); "
                       "0 = the tracking config's n_particles"),
    "particle_spacing": (-1.0, "minimum distance between object particles, m; negative = the tracking config's"),
    "tool_offset": (0.10, "the tool particle lies this far along the end-effector's z axis, m (the pusher tip's centre)"),
    "mask_source": ("topic", "topic (subscribe to <name>/mask, e.g. the sim's segmentation) | depth (no mask topic: the "
                             "object is what depth sees inside the mask box, above the table and off the arm; "
                             "robot_dyn.perception.foreground)"),
    "mask_box_min": ([0.2, -0.4, 0.10], "depth mask: lower corner of the box the object lies in, world m; its z is "
                                        "the table top's height"),
    "mask_box_max": ([0.8, 0.4, 0.30], "depth mask: upper corner of that box, world m"),
    "mask_table_clearance": (0.003, "depth mask: points must lie this far above the table top (mask_box_min z), m, "
                                    "so the table is left out; thinner objects vanish"),
    "mask_hsv_min": ([], "depth mask: optional colour test, OpenCV HSV lower bound [H 0-179, S 0-255, V 0-255]; "
                         "empty (with mask_hsv_max) = none"),
    "mask_hsv_max": ([], "depth mask: HSV upper bound; an H below mask_hsv_min's wraps around red"),
    "mask_open_px": (0, "depth mask: morphological opening kernel side, px (odd); 0 = none (it also erases object "
                        "parts thinner than this)"),
    "mask_min_component_px": (5, "depth mask: connected components with fewer pixels are dropped; 0 = keep all"),
    "mask_exclude_arm": (True, "depth mask: leave out points inside the arm's URDF collision shapes and the tool at "
                               "the set's /joint_states (sets without one within joint_state_tolerance_s are skipped)"),
    "mask_link_padding": (0.01, "depth mask: the spheres covering the arm and tool are this much larger, m "
                                "(calibration, depth noise, real arm vs URDF shapes)"),
    "mask_tool_radius": (0.012, "depth mask: the tool (not in the URDF) is a rod of this radius along the end-effector's "
                                "z axis up to tool_offset, m (the pusher's tip sphere); 0 = no tool"),
    "sync_slop_s": (0.0, "camera messages of one set may differ by this much in stamp, s; 0 = exact stamps"),
    "joint_state_tolerance_s": (0.05, "the joint state used for the tool particle (and the depth mask's arm) must be this "
                                       "close to the set's stamp, s"),
    "image_qos": ("sensor_data", "sensor_data (best effort, like camera drivers) | reliable"),
    "diagnostics_period_s": (1.0, "wall-clock period of /diagnostics, s"),
    "stats_file": ("", "if set, frame counts and timing are written there as JSON at shutdown"),
}

POLICY = {
    "checkpoint": ("", "the policy folder (robot-dyn train policy); required"),
    "robot": ("panda", "robot name: the policy must have been trained on its joints"),
    "task": ("", "the task the sim runs (the graph sets it from the sim's scene): a policy for another task is refused"),
    "cameras": ("", "comma-separated cameras the graph publishes (the graph sets it from the sim's rig): a policy needing another is refused"),
    "rate_hz": (50.0, "command rate, Hz: the policy decides at its own rate (its training data's, e.g. 10 Hz) and its latest command goes out at this rate, as a device streams"),
    "max_image_age_s": (0.25, "images older than this (graph clock, by their stamps) are stale: the policy waits and sends nothing, so the controller's twist timeout stops the arm, s"),
    "seed": (0, "the policy's sampling (diffusion noise, VQ-BeT codes)"),
    "torch_threads": (1, "torch's threads for inference: more only where cores are free (they spin while waiting)"),
    "diagnostics_period_s": (1.0, "wall-clock period of /diagnostics (inference time p50/p99, steps, stale waits), s"),
}

SEARCH = {
    "robot": ("panda", "robot name"),
    "task_config": ("", "the insert task's config file; empty = configs/tasks/insert.yaml (the graph copies the sim's task_config)"),
    "strategy": ("spiral", "ergodic | sampling (learned: need `model`) | spiral | random"),
    "model": ("", "a search model folder (robot-dyn train search), for the learned strategies"),
    "budget_s": (60.0, "s of searching (from the peg's touch on the fixture) before the search gives up"),
    "speed": (0.012, "m/s along the learned and random paths"),
    "press_home": (True, "after the drop, press the peg home (false: the search ends at the drop)"),
    "rate_hz": (50.0, "command rate while searching, Hz (twist and wrench commands)"),
    "seed": (0, "the strategy's randomness (a search's seed is this plus the number of searches before it)"),
}

DYNAMICS_PLANNER = {
    "robot": ("panda", "robot name: its home orientation is the pusher's (pointing down) while pushing"),
    "model": ("", "a particle dynamics model folder (robot-dyn train dynamics; trained on tracked particles for "
                  "the perception node's)"),
    "scene_config": ("", "table, rope, pusher and push speed file; empty = configs/perception.yaml (the graph "
                         "copies the sim's)"),
    "world_frame": ("world", "frame of the particles, the target and the paths (the arm's base frame in sim)"),
    "target": ("straight", "the target shape made from the particles at the start: straight | u | s (a point set "
                           "on /dynamics_planner/target replaces it)"),
    "max_pushes": (5, "pushes before a run gives up"),
    "reached_m": (0.01, "m: a run ends once the Chamfer distance of the particles to the target is at most this"),
    "settle_s": (0.5, "s after the controller finishes a push before the particles count as its outcome"),
    "samples": (128, "pushes rolled out per planning round"),
    "iterations": (2, "planning rounds (the cross-entropy method); the elites are samples / 16"),
    "threads": (0, "torch threads for planning; 0 = torch's default (all cores)"),
    "seed": (0, "the planner's randomness (a run's seed is this plus the number of runs before it)"),
}

NODES = {"sim": SIM, "controller": CONTROLLER, "teleop": TELEOP, "recorder": RECORDER, "hardware_adapter": HARDWARE_ADAPTER, "perception": PERCEPTION, "policy": POLICY, "search": SEARCH,
         "dynamics_planner": DYNAMICS_PLANNER}


def defaults(schema: dict) -> dict:
    return {name: default for name, (default, _) in schema.items()}


def descriptions(schema: dict) -> dict:
    return {name: text for name, (_, text) in schema.items()}
