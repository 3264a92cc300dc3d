"""robot_dyn: visuomotor learning and control of torque-controlled arms on ROS 2.

Pure, ROS-free cores live in robots/, dynamics/, sim/, control/, bringup/, jobs/
and bench/; the only modules that import rclpy are in nodes/.
"""
__version__ = "0.1.0"
