"""Perception cores: cameras, Gaussian rasterisation and tracking, control particles. No rclpy here."""
