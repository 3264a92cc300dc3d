"""Velocity following (teleoperation): a stream of commanded end-effector twists as a Cartesian motion.

A person (or a scripted operator) sends twists, not poses. Each command sets the twist the
reference should move at; the reference pose integrates a twist that moves toward the latest
command at bounded acceleration, so a step on a joystick gives a smooth start and a released
stick a smooth stop. A command is good for `timeout` seconds after its stamp: without a newer one
the reference brakes to rest (a dropped teleop link stops the arm smoothly, as MoveIt Servo's
incoming_command_timeout does). The motion then ends where it came to rest, and the next command
starts a new one from the desired pose.

Units and frames: positions m and rotations base <- ee in the base frame; twists [v (m/s); w (rad/s)]
in base-frame axes (commands in the end-effector frame are rotated by the desired orientation when
they arrive: MoveIt Servo's convention, header.frame_id names the frame). Unitless commands
(each component in [-1, 1]) are scaled by configured speeds; metric ones are taken as they are.
Either way the twist is clipped to the configured maximum linear and angular speeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from robot_dyn.control.trajectory import CartesianSample

COMMAND_TYPES = ("unitless", "speed_units")  # MoveIt Servo's names for the two conventions
FRAMES = ("base", "ee")


class TwistRejected(ValueError):
    """A twist command that cannot be followed; the message names the field."""


@dataclass(frozen=True)
class TwistSettings:
    """How commanded twists are read and followed."""

    command_type: str = "unitless"  # 'unitless' ([-1, 1] per component) | 'speed_units' (m/s, rad/s)
    linear_scale: float = 0.15  # m/s for a unitless 1.0
    angular_scale: float = 0.5  # rad/s for a unitless 1.0
    max_linear_speed: float = 0.25  # m/s, the norm of the linear part is clipped to this
    max_angular_speed: float = 1.0  # rad/s
    linear_acceleration: float = 1.0  # m/s^2, how fast the followed twist may change
    angular_acceleration: float = 3.0  # rad/s^2
    timeout: float = 0.1  # s after its stamp a command stops being followed (the reference brakes to rest)
    max_pose_error: float = 0.02  # m (and 5x this in rad): how far the reference may lead a blocked desired pose

    def validated(self) -> "TwistSettings":
        if self.command_type not in COMMAND_TYPES:
            raise ValueError(f"'twist_command_type' must be one of {COMMAND_TYPES}, got '{self.command_type}'")
        for name in ("linear_scale", "angular_scale", "max_linear_speed", "max_angular_speed", "linear_acceleration",
                     "angular_acceleration", "timeout", "max_pose_error"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"'twist_{name}' must be a positive number, got {value!r}")
        return self


def commanded_twist(linear, angular, frame: str, rotation: np.ndarray, settings: TwistSettings) -> tuple[np.ndarray, np.ndarray]:
    """A command as (v m/s, w rad/s) in base-frame axes, clipped to the maximum speeds.

    linear, angular: the message's 3 components each, in `frame` ('base' or 'ee'); rotation: the
    desired orientation base <- ee (3x3), for commands in the end-effector frame."""
    v, w = np.asarray(linear, float), np.asarray(angular, float)
    for name, value in (("twist.linear", v), ("twist.angular", w)):
        if value.shape != (3,) or not np.all(np.isfinite(value)):
            raise TwistRejected(f"{name}: expected 3 finite numbers, got {value.tolist()}")
        if settings.command_type == "unitless" and np.max(np.abs(value)) > 1.0 + 1e-9:
            raise TwistRejected(f"{name}: unitless commands lie in [-1, 1], got {value.tolist()} "
                                "(set twist_command_type to 'speed_units' for m/s and rad/s)")
    if frame not in FRAMES:
        raise TwistRejected(f"header.frame_id: expected the base or the end-effector frame, got '{frame}'")
    if settings.command_type == "unitless":
        v, w = v * settings.linear_scale, w * settings.angular_scale
    if frame == "ee":
        v, w = rotation @ v, rotation @ w
    return _clip_norm(v, settings.max_linear_speed), _clip_norm(w, settings.max_angular_speed)


def _clip_norm(x: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x * (limit / norm) if norm > limit else x


def _toward(x: np.ndarray, target: np.ndarray, step: float) -> np.ndarray:
    """x moved toward target by at most `step` (Euclidean)."""
    gap = target - x
    distance = float(np.linalg.norm(gap))
    return target.copy() if distance <= step else x + gap * (step / distance)


class TwistFollowing:
    """The reference pose moving at a followed twist that tracks the latest command.

    It keeps its own state and advances it as it is sampled, so it must be sampled at
    non-decreasing times (the outer loop's clock, or a motion clock's view of it, is). `t_end` is
    infinite while it moves or holds a live command, and the time it came to rest after its last
    command expired."""

    kind = "twist"

    def __init__(self, t0: float, position, rotation, velocity, angular_velocity, settings: TwistSettings):
        self.settings = settings
        self.t = float(t0)
        self.p, self.R = np.array(position, float), np.array(rotation, float)
        self.v = _clip_norm(np.array(velocity, float), settings.max_linear_speed)
        self.w = _clip_norm(np.array(angular_velocity, float), settings.max_angular_speed)
        self.a, self.alpha = np.zeros(3), np.zeros(3)  # m/s^2, rad/s^2 over the last step
        self.v_command, self.w_command = np.zeros(3), np.zeros(3)
        self.expires = -np.inf  # motion time after which the command is no longer followed
        self.t_end = np.inf
        self.commands = 0

    def command(self, expires: float, velocity: np.ndarray, angular_velocity: np.ndarray) -> None:
        """Follow (v m/s, w rad/s), base-frame axes, until motion time `expires`."""
        self.v_command, self.w_command = np.array(velocity, float), np.array(angular_velocity, float)
        self.expires, self.t_end = float(expires), np.inf
        self.commands += 1

    def advance(self, t: float) -> None:
        """Integrate the pose to time t (s); the followed twist moves toward the command (zero once it expired)."""
        h = t - self.t
        if h <= 0:
            return
        live = t <= self.expires
        v_target = self.v_command if live else np.zeros(3)
        w_target = self.w_command if live else np.zeros(3)
        v = _toward(self.v, v_target, self.settings.linear_acceleration * h)
        w = _toward(self.w, w_target, self.settings.angular_acceleration * h)
        self.a, self.alpha = (v - self.v) / h, (w - self.w) / h
        self.p = self.p + 0.5 * h * (self.v + v)
        self.R = pin.exp3(0.5 * h * (self.w + w)) @ self.R
        self.v, self.w, self.t = v, w, t
        if not live and not self.v.any() and not self.w.any() and self.t_end == np.inf:
            self.t_end = t
            self.a, self.alpha = np.zeros(3), np.zeros(3)

    def sample(self, t: float) -> CartesianSample:
        self.advance(t)
        return CartesianSample(self.p.copy(), self.v.copy(), self.a.copy(), self.R.copy(), self.w.copy(), self.alpha.copy())

    def restrain(self, position: np.ndarray, rotation: np.ndarray) -> bool:
        """Keep the reference pose within max_pose_error of the desired pose (m; 5x in rad), which
        stops following when the safety filter or a joint limit holds the arm back: without this the
        reference would run on, and reversing the stick would first have to unwind it. True if it bit."""
        limit = self.settings.max_pose_error
        gap = self.p - position
        distance = float(np.linalg.norm(gap))
        bit = False
        if distance > limit:
            self.p = position + gap * (limit / distance)
            bit = True
        rotvec = pin.log3(self.R @ rotation.T)
        angle = float(np.linalg.norm(rotvec))
        if angle > 5 * limit:
            self.R = pin.exp3(rotvec * (5 * limit / angle)) @ rotation
            bit = True
        return bit
