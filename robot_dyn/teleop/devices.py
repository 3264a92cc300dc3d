"""Teleoperation input devices: each reads six unitless axes and a dead-man state.

Back-ends: a gamepad or joystick (sensor_msgs/Joy from the standard joy_node, read by the node and
mapped here), a 3Dconnexion SpaceMouse (pyspacemouse), and a keyboard in a terminal. The scripted
operator (robot_dyn.teleop.scripted) stands in for a person and needs no device. A device that is
missing fails at start with DeviceUnavailable, whose message says what to install or plug in.
"""
from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass, field

import numpy as np

from robot_dyn.teleop.shaping import AXES


class DeviceUnavailable(RuntimeError):
    """The device cannot be used here; the message says what to install, plug in or run."""


@dataclass(frozen=True)
class DeviceInput:
    axes: np.ndarray  # (6,) unitless in [-1, 1]: [vx, vy, vz, wx, wy, wz] in the command frame
    enabled: bool  # the dead-man is held (or the device has none)


@dataclass(frozen=True)
class JoyMapping:
    """Which sensor_msgs/Joy axis drives each twist component, and which button is the dead-man.

    Defaults suit an Xbox-style pad under joy_node: left stick forward/back -> x and left/right -> y,
    right stick forward/back -> z and left/right -> yaw, held left bumper enables. Signs and per-axis
    speeds are the shaping's scales (robot_dyn.teleop.shaping)."""

    axes: tuple = field(default=(1, 0, 4, -1, -1, 3))  # index into Joy.axes per twist component, -1: none
    deadman_button: int = 4  # index into Joy.buttons that must be held; -1: no dead-man

    def validated(self) -> "JoyMapping":
        if len(self.axes) != 6 or not all(isinstance(i, int) and i >= -1 for i in self.axes):
            raise ValueError(f"'joy_axes' must be 6 axis indices (-1: none) for {', '.join(AXES)}, got {list(self.axes)}")
        if not (isinstance(self.deadman_button, int) and self.deadman_button >= -1):
            raise ValueError(f"'deadman_button' must be a button index or -1, got {self.deadman_button!r}")
        return self

    def read(self, axes, buttons) -> DeviceInput:
        """A Joy message's axes and buttons as a DeviceInput; ValueError names a message too short for the mapping."""
        used = [i for i in self.axes if i >= 0]
        if used and max(used) >= len(axes):
            raise ValueError(f"joy axes: the mapping reads axis {max(used)} but the message has {len(axes)} axes "
                             "(set joy_axes for this device)")
        if self.deadman_button >= len(buttons):
            raise ValueError(f"joy buttons: the dead-man is button {self.deadman_button} but the message has "
                             f"{len(buttons)} buttons (set deadman_button, -1 for none)")
        values = np.array([float(axes[i]) if i >= 0 else 0.0 for i in self.axes])
        enabled = self.deadman_button < 0 or bool(buttons[self.deadman_button])
        return DeviceInput(values, enabled)


class SpaceMouse:
    """A 3Dconnexion SpaceMouse through pyspacemouse (HID). Its six axes map one to one (x, y, z, roll,
    pitch, yaw); `deadman_button` (-1: none) must be held, as on a gamepad."""

    def __init__(self, deadman_button: int = -1):
        try:
            import pyspacemouse
        except ImportError as exc:
            raise DeviceUnavailable("the SpaceMouse back-end needs pyspacemouse: `pip install pyspacemouse` "
                                    "(and the hidapi library: `apt install libhidapi-hidraw0`)") from exc
        if not pyspacemouse.open():
            raise DeviceUnavailable("no SpaceMouse found: plug one in, and give your user access to its "
                                    "/dev/hidraw* device (a udev rule for 3Dconnexion, vendor 256f or 046d)")
        self._device, self.deadman_button = pyspacemouse, deadman_button

    def read(self) -> DeviceInput:
        state = self._device.read()
        axes = np.array([state.x, state.y, state.z, state.roll, state.pitch, state.yaw], float)
        enabled = self.deadman_button < 0 or (self.deadman_button < len(state.buttons) and bool(state.buttons[self.deadman_button]))
        return DeviceInput(axes, enabled)

    def close(self) -> None:
        self._device.close()


KEYS = {  # key -> (axis, direction); base frame: x forward, y left, z up
    "w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0),
    "i": (3, 1.0), "k": (3, -1.0), "j": (4, 1.0), "l": (4, -1.0), "u": (5, 1.0), "o": (5, -1.0),
}
KEY_HELP = ("w/s: x  a/d: y  r/f: z  i/k: roll  j/l: pitch  u/o: yaw  space: stop  "
            "(a key moves for hold_s after its last press; hold it down to keep moving)")


class Keyboard:
    """Keys in the terminal the node runs in. A key drives its axis at full scale for `hold` seconds
    after its last press, longer than a terminal's key-repeat delay (0.25-0.5 s), so a held key moves
    the arm smoothly and a released one stops it within `hold`; space stops at once. Releasing all
    keys is the dead-man."""

    def __init__(self, hold: float = 0.6, stream=None):
        self.stream = stream if stream is not None else sys.stdin
        if not self.stream.isatty():
            raise DeviceUnavailable("the keyboard back-end needs an interactive terminal: run "
                                    "`ros2 run robot_dyn teleop --ros-args -p device:=keyboard` (or `python -m "
                                    "robot_dyn.nodes.teleop_node --ros-args -p device:=keyboard`) in one, not under launch")
        import termios
        import tty

        self._fd = self.stream.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self.hold = hold
        self._until = np.full(6, -np.inf)  # time each axis stops
        self._direction = np.zeros(6)

    def read(self, now: float) -> DeviceInput:
        while select.select([self._fd], [], [], 0.0)[0]:
            key = os.read(self._fd, 1).decode(errors="ignore").lower()
            if key == " ":
                self._until[:] = -np.inf
            elif key in KEYS:
                axis, direction = KEYS[key]
                self._until[axis], self._direction[axis] = now + self.hold, direction
        active = self._until > now
        return DeviceInput(np.where(active, self._direction, 0.0), bool(active.any()))

    def close(self) -> None:
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
