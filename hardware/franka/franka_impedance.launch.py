"""robot_dyn on a Franka FR3 (ROS 2 Jazzy): franka_ros2 bringup + JTC (effort) + our nodes.

    ros2 launch hardware/franka/franka_impedance.launch.py robot_ip:=172.16.0.3
    ros2 launch robot_dyn franka_impedance.launch.py robot_ip:=172.16.0.3   # after colcon build

Starts franka_bringup's franka.launch.py with fr3_impedance_controllers.yaml (controller
manager at 1 kHz, fr3_arm_controller = joint_trajectory_controller on the effort
interface), loads fr3_arm_controller INACTIVE unless activate:=true, and runs
robot_dyn's hardware_adapter (/impedance_reference -> /fr3_arm_controller/joint_trajectory,
/franka/joint_states -> /robot_dyn/joint_states, fingers dropped) and controller
(the 100-500 Hz outer loop). Read hardware/README.md before the first run.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

HERE = os.path.dirname(os.path.abspath(__file__))
# The project root in a source checkout, share/robot_dyn once installed (setup.py copies
# configs/ and hardware/ there with the same layout).
ROOT = os.path.dirname(os.path.dirname(HERE))
CONTROLLER = "fr3_arm_controller"
FR3_EFFORT_LIMIT = [87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0]  # Nm, as urdf/fr3.urdf


def generate_launch_description():
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.3", description="FCI address of the FR3"),
        DeclareLaunchArgument("robot_type", default_value="fr3", description="franka_description model id"),
        DeclareLaunchArgument("load_gripper", default_value="false"),
        DeclareLaunchArgument(
            "use_fake_hardware", default_value="false",
            description="true: no arm, mock hardware (checks the JTC/adapter plumbing only)",
        ),
        DeclareLaunchArgument("controllers_yaml", default_value=os.path.join(HERE, "fr3_impedance_controllers.yaml")),
        DeclareLaunchArgument(
            "activate", default_value="false",
            description="Activate fr3_arm_controller at once. Default: load it inactive and "
            "activate it by hand (ros2 control set_controller_state fr3_arm_controller active)",
        ),
        DeclareLaunchArgument(
            "horizon_s", default_value="0.02",
            description="time_from_start of each JTC point; keep horizon_s + cmd_timeout = 0.05",
        ),
        DeclareLaunchArgument("start_controller", default_value="true", description="Start robot_dyn's controller node"),
        DeclareLaunchArgument("controller_params", default_value=os.path.join(ROOT, "configs", "controller.yaml")),
    ]

    franka = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])
        ),
        launch_arguments={
            "robot_type": arg("robot_type"),
            "robot_ip": arg("robot_ip"),
            "load_gripper": arg("load_gripper"),
            "use_fake_hardware": arg("use_fake_hardware"),
            "controllers_yaml": arg("controllers_yaml"),
        }.items(),
    )

    spawn = dict(package="controller_manager", executable="spawner", output="screen")
    spawn_active = Node(
        **spawn,
        arguments=[CONTROLLER, "--controller-manager-timeout", "60"],
        condition=IfCondition(arg("activate")),
    )
    spawn_inactive = Node(
        **spawn,
        arguments=[CONTROLLER, "--inactive", "--controller-manager-timeout", "60"],
        condition=UnlessCondition(arg("activate")),
    )

    adapter = Node(
        package="robot_dyn",
        executable="hardware_adapter",
        name="hardware_adapter",
        output="screen",
        parameters=[{
            "target": "franka",
            "input_topic": "/impedance_reference",
            "output_topic": f"/{CONTROLLER}/joint_trajectory",
            "robot": "fr3",
            "effort_limit": FR3_EFFORT_LIMIT,
            "horizon_s": ParameterValue(arg("horizon_s"), value_type=float),
            "extrapolate": True,
            "include_effort": True,
            "state_input_topic": "/franka/joint_states",
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
            # The FR3 compensates gravity: tau_ff must exclude it. 'robot' names
            # configs/robots/<robot>.yaml and urdf/<robot>.urdf: the FR3's own model, limits and names.
            # The adapter forwards a reference as it comes: each state is answered for its own time.
            {"robot_compensates_gravity": True, "robot": "fr3", "reference_lead_ticks": 0},
        ],
        remappings=[("/joint_states", "/robot_dyn/joint_states")],
        condition=IfCondition(arg("start_controller")),
    )

    return LaunchDescription(args + [franka, spawn_active, spawn_inactive, adapter, controller])
