"""Thin ROS 2 nodes: each wires parameters, topics and timers to a core. Only this
package imports rclpy."""
