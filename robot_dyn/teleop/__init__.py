"""Teleoperation: input devices and a scripted operator, turned into twist commands for the controller."""
