"""ros2 launch robot_dyn sim.launch.py robot:=panda backend:=mujoco mode:=lockstep effects:=nominal perception:=false
   ros2 launch robot_dyn sim.launch.py scene:=pusht mode:=realtime policy:=runs/policies/pusht
   ros2 launch robot_dyn sim.launch.py scene:=insert mode:=realtime search:=ergodic search_model:=runs/search/model
   ros2 launch robot_dyn sim.launch.py perception:=true dynamics_model:=runs/dynamics/gnn

The simulation graph on a ROS 2 install. The node set and parameters come from
robot_dyn.bringup.graph.sim_graph, the same function `robot-dyn launch sim` uses,
so both start identical graphs from configs/. No RViz is started.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_dyn.bringup.graph import sim_graph


def _nodes(context):
    def arg(name):
        value = LaunchConfiguration(name).perform(context)
        return value or None

    perception = (arg("perception") or "false").lower() in ("true", "1", "yes")
    specs = sim_graph(robot=arg("robot"), backend=arg("backend"), mode=arg("mode"), effects=arg("effects"),
                      perception=perception, task=arg("scene"), policy=arg("policy"),
                      search=arg("search"), search_model=arg("search_model"), dynamics_model=arg("dynamics_model"))
    return [
        Node(package="robot_dyn", executable=spec.executable, name=spec.name, parameters=[spec.parameters],
             remappings=list(spec.remappings), output="screen")
        for spec in specs
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="panda", description="panda | iiwa14"),
        DeclareLaunchArgument("backend", default_value="", description="mujoco | pybullet (default: configs/sim.yaml)"),
        DeclareLaunchArgument("mode", default_value="", description="lockstep | realtime (default: configs/sim.yaml)"),
        DeclareLaunchArgument("effects", default_value="", description="nominal | realistic (default: configs/sim.yaml)"),
        DeclareLaunchArgument("perception", default_value="false",
                              description="true: the rope scene, the sim's cameras and the perception node"),
        DeclareLaunchArgument("scene", default_value="", description="an imitation task's scene: insert | pusht"),
        DeclareLaunchArgument("policy", default_value="",
                              description="a policy folder (robot-dyn train policy): the policy node drives the arm"),
        DeclareLaunchArgument("search", default_value="",
                              description="insert scene: a search strategy (ergodic | sampling | spiral | random) for the "
                                          "search node; call /search/start to run one"),
        DeclareLaunchArgument("search_model", default_value="",
                              description="a search model folder (robot-dyn train search) for ergodic and sampling"),
        DeclareLaunchArgument("dynamics_model", default_value="",
                              description="with perception: a particle dynamics model folder (robot-dyn train dynamics) "
                                          "for the dynamics_planner node; call /dynamics_planner/start to push the rope"),
        OpaqueFunction(function=_nodes),
    ])
