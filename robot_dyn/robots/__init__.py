"""Robot descriptions: one URDF per arm, loaded into pinocchio, MuJoCo and PyBullet."""
from robot_dyn.robots.description import RobotDescription, RobotModelError, load_robot

__all__ = ["RobotDescription", "RobotModelError", "load_robot"]
