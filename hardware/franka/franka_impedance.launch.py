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

from robot_dyn.bringup.graph import franka_deployment

HERE = os.path.dirname(os.path.abspath(__file__))
# The project root in a source checkout, share/robot_dyn once installed (setup.py copies
# configs/ and hardware/ there with the same layout).
ROOT = os.path.dirname(os.path.dirname(HERE))
CONTROLLER = "fr3_arm_controller"


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

    # The adapter's and controller's parameters and remapping: robot_dyn.bringup.graph.franka_deployment, the
    # same that `robot-dyn sim --hardware-emulation franka` rehearses against MuJoCo.
    deployment = franka_deployment()
    adapter = Node(
        package="robot_dyn",
        executable="hardware_adapter",
        name="hardware_adapter",
        output="screen",
        parameters=[deployment["hardware_adapter"], {"horizon_s": ParameterValue(arg("horizon_s"), value_type=float)}],
    )

    controller = Node(
        package="robot_dyn",
        executable="controller",
        name="controller",
        output="screen",
        parameters=[arg("controller_params"), deployment["controller"]],
        remappings=list(deployment["controller_remappings"]),
        condition=IfCondition(arg("start_controller")),
    )

    return LaunchDescription(args + [franka, spawn_active, spawn_inactive, adapter, controller])
