"""From a device's six axes to the twist command the controller follows: dead-man, deadband, scales.

Axes (6,) are unitless in [-1, 1], ordered [vx, vy, vz, wx, wy, wz] in the command frame (the base
or the end-effector frame, as the controller's twist command reads header.frame_id). The command
is unitless too (the controller's twist_command_type 'unitless' scales it to m/s and rad/s), so a
device never needs to know the robot's speeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AXES = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")


@dataclass(frozen=True)
class ShapingSettings:
    deadband: float = 0.1  # |axis| below this is 0; above it the axis is rescaled to start from 0
    scales: tuple = field(default=(1.0,) * 6)  # per axis, applied after the deadband (negative flips it)

    def validated(self) -> "ShapingSettings":
        if not (0.0 <= self.deadband < 1.0):
            raise ValueError(f"'deadband' must lie in [0, 1), got {self.deadband!r}")
        scales = np.asarray(self.scales, float)
        if scales.shape != (6,) or not np.all(np.isfinite(scales)) or np.any(np.abs(scales) > 1.0):
            raise ValueError(f"'axis_scales' must be 6 numbers in [-1, 1] ({', '.join(AXES)}), got {list(self.scales)}")
        return self


def shape(axes, settings: ShapingSettings) -> np.ndarray:
    """The unitless command (6,) for device axes (6,): a deadband that keeps the response continuous
    (an axis just past it gives a command just above 0), then the per-axis scales, then clipped to [-1, 1]."""
    axes = np.asarray(axes, float)
    if axes.shape != (6,) or not np.all(np.isfinite(axes)):
        raise ValueError(f"device axes: expected 6 finite numbers ({', '.join(AXES)}), got {axes.tolist()}")
    axes = np.clip(axes, -1.0, 1.0)
    magnitude = np.maximum(np.abs(axes) - settings.deadband, 0.0) / (1.0 - settings.deadband)
    return np.clip(np.sign(axes) * magnitude * np.asarray(settings.scales, float), -1.0, 1.0)
