"""robot_dyn on a KUKA LBR iiwa 14 (ROS 2 Jazzy): lbr_fri_ros2_stack in FRI TORQUE mode + our nodes.

    ros2 launch hardware/kuka/kuka_impedance.launch.py model:=iiwa14
    ros2 launch robot_dyn kuka_impedance.launch.py model:=iiwa14   # after colcon build

Merges lbr_system_config_overlay.yaml and lbr_controllers_overlay.yaml over the installed
lbr_description defaults (so the keys of your lbr_fri_ros2_stack version are kept), writes
the results to temporary files, and includes lbr_bringup's hardware.launch.py with
ctrl:=lbr_torque_command_controller. Then runs robot_dyn's hardware_adapter
(/impedance_reference -> /lbr/command/torque, /lbr/joint_states -> /robot_dyn/joint_states)
and controller. On the smartPAD start LBRServer with send period 1 ms, FRI control mode
JOINT_IMPEDANCE_CONTROL, client command mode TORQUE. Read hardware/README.md first.
"""
import os
import tempfile

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # project root, or share/robot_dyn once installed
ROBOT_NAME = "lbr"  # lbr_fri_ros2_stack's default: namespace /lbr, joints lbr_A1..lbr_A7
IIWA14_EFFORT_LIMIT = [320.0, 320.0, 176.0, 176.0, 110.0, 40.0, 40.0]  # Nm, as urdf/iiwa14.urdf


def deep_merge(base, overlay):
    """base with overlay's keys replaced, recursing into mappings present in both."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merged_yaml(base_path, overlay_path, tag):
    """Write deep_merge(base, overlay) to a temporary YAML file and return its absolute path."""
    with open(base_path) as f:
        base = yaml.safe_load(f) or {}
    with open(overlay_path) as f:
        overlay = yaml.safe_load(f) or {}
    fd, path = tempfile.mkstemp(prefix=f"robot_dyn_{tag}_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(deep_merge(base, overlay), f, sort_keys=False)
    return path


def lbr_bringup(context):
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    sys_cfg = merged_yaml(value("base_sys_cfg"), value("sys_cfg_overlay"), "lbr_system_config")
    ctrl_cfg = merged_yaml(value("base_ctrl_cfg"), value("ctrl_cfg_overlay"), "lbr_controllers")
    # hardware.launch.py joins sys_cfg/ctrl_cfg to the share folder of sys_cfg_pkg/ctrl_cfg_pkg
    # with os.path.join, so an absolute path is used as it is.
    return [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([FindPackageShare("lbr_bringup"), "launch", "hardware.launch.py"])
            ),
            launch_arguments={
                "model": value("model"),
                "robot_name": ROBOT_NAME,
                "sys_cfg": sys_cfg,
                "ctrl_cfg": ctrl_cfg,
                "ctrl": "lbr_torque_command_controller",
            }.items(),
        )
    ]


def generate_launch_description():
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("model", default_value="iiwa14", description="lbr_description model"),
        DeclareLaunchArgument(
            "base_sys_cfg",
            default_value=PathJoinSubstitution(
                [FindPackageShare("lbr_description"), "ros2_control", "lbr_system_config.yaml"]
            ),
            description="Installed FRI system config that the overlay is merged over",
        ),
        DeclareLaunchArgument(
            "base_ctrl_cfg",
            default_value=PathJoinSubstitution(
                [FindPackageShare("lbr_description"), "ros2_control", "hardware_controllers.yaml"]
            ),
            description="Installed controller config that the overlay is merged over",
        ),
        DeclareLaunchArgument("sys_cfg_overlay", default_value=os.path.join(HERE, "lbr_system_config_overlay.yaml")),
        DeclareLaunchArgument("ctrl_cfg_overlay", default_value=os.path.join(HERE, "lbr_controllers_overlay.yaml")),
        DeclareLaunchArgument(
            "damping_ff", default_value="[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]",
            description="Nm s/rad per joint: adapter adds damping_ff * qd_d to the torque (README)",
        ),
        DeclareLaunchArgument("start_controller", default_value="true", description="Start robot_dyn's controller node"),
        DeclareLaunchArgument("controller_params", default_value=os.path.join(ROOT, "configs", "controller.yaml")),
    ]

    adapter = Node(
        package="robot_dyn",
        executable="hardware_adapter",
        name="hardware_adapter",
        output="screen",
        parameters=[{
            "target": "kuka",
            "input_topic": "/impedance_reference",
            "output_topic": f"/{ROBOT_NAME}/command/torque",
            "joint_prefix_map": "lbr_A:lbr_A",
            "effort_limit": IIWA14_EFFORT_LIMIT,
            "lookahead_s": 0.0,
            "damping_ff": arg("damping_ff"),  # a YAML list string; launch_ros parses it
            "stale_timeout_s": 0.05,
            "state_input_topic": f"/{ROBOT_NAME}/joint_states",
            "state_output_topic": "/robot_dyn/joint_states",
        }],
    )

    controller = Node(
        package="robot_dyn",
        executable="controller",
        name="controller",
        output="screen",
        parameters=[
            arg("controller_params"),
            # KUKA compensates gravity: tau_ff must exclude it. 'robot' names
            # configs/robots/<robot>.yaml and urdf/<robot>.urdf.
            # The adapter forwards a reference as it comes: each state is answered for its own time.
            {"robot_compensates_gravity": True, "robot": "iiwa14", "reference_lead_ticks": 0},
        ],
        remappings=[("/joint_states", "/robot_dyn/joint_states")],
        condition=IfCondition(arg("start_controller")),
    )

    return LaunchDescription(args + [OpaqueFunction(function=lbr_bringup), adapter, controller])
