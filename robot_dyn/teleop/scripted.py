"""A scripted operator: stands in for a person at the teleop device, for demonstrations and tests.

It sees where the end-effector is (the controller's desired pose, base frame) and pushes a virtual
stick toward the next waypoint, as a person does: a speed proportional to the remaining distance
and capped, a little unsteady (low-pass filtered noise on every axis), a different pace per
waypoint, and a short pause at each. Its output is the same unitless command a device gives, so
its demonstrations go through the same path as a person's: shaping-free, through the controller's
twist mode and the safety filter. Seeded: the same seed gives the same commands for the same poses.

Units: positions m, rotations base <- ee (3x3), time s; `linear_scale` and `angular_scale` are the
controller's twist scales (m/s and rad/s for a unitless 1.0), so the operator aims at speeds it can get.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin


@dataclass(frozen=True)
class Waypoint:
    position: np.ndarray  # (3,) m, base frame
    rotation: np.ndarray | None = None  # (3, 3) base <- ee; None keeps the orientation
    pause: float = 0.0  # s held at the waypoint before the next
    tolerance: float = 0.003  # m (and 10x in rad) that count as there


@dataclass(frozen=True)
class OperatorSettings:
    linear_scale: float = 0.15  # m/s of a unitless 1.0 (the controller's twist_linear_scale)
    angular_scale: float = 0.5  # rad/s of a unitless 1.0
    gain: float = 2.0  # 1/s: commanded speed per remaining distance
    pace: tuple = (0.6, 1.0)  # the stick's largest deflection, drawn per waypoint
    noise: float = 0.05  # std of the stick's unsteadiness, unitless
    noise_time_constant: float = 0.3  # s, how slowly the unsteadiness wanders
    pause: tuple = (0.0, 0.3)  # s, an extra pause drawn per waypoint


class Hand:
    """A person's hand on the stick: a pace (the largest deflection it gives each part, linear and angular)
    and unsteadiness, Ornstein-Uhlenbeck noise (6,) of std `noise` and correlation time `time_constant`
    (s) on the axes it moves. Shared by the scripted operator and the tasks' experts."""

    def __init__(self, rng: np.random.Generator, noise: float, time_constant: float, pace: float = 1.0):
        self.rng, self.noise, self.time_constant, self.pace = rng, noise, time_constant, pace
        self._noise = np.zeros(6)
        self._t = None

    def step(self, t: float) -> float:
        """Advance the unsteadiness to time t (s); returns the time since the last step (0 at the first)."""
        h = 0.0 if self._t is None else max(t - self._t, 0.0)
        self._t = t
        decay = np.exp(-h / self.time_constant)
        self._noise = decay * self._noise + self.noise * np.sqrt(1 - decay**2) * self.rng.standard_normal(6)
        return h

    def stick(self, wanted: np.ndarray) -> np.ndarray:
        """The deflection (6,) for a wanted unitless command: each part capped at the pace, keeping its
        direction, the unsteadiness added where an axis moves, clipped to [-1, 1]."""
        stick = np.array(wanted, float)
        for part in (slice(0, 3), slice(3, 6)):
            norm = np.linalg.norm(stick[part])
            if norm > self.pace:
                stick[part] *= self.pace / norm
        return np.clip(stick + self._noise * (np.abs(stick) > 0.02), -1.0, 1.0)


class ScriptedOperator:
    """Drives through `waypoints` in order; command() gives the unitless base-frame command (6,) for the
    current pose, and None once the last waypoint is reached and its pause is over."""

    def __init__(self, waypoints: list[Waypoint], settings: OperatorSettings | None = None, seed: int = 0):
        if not waypoints:
            raise ValueError("a scripted operator needs at least one waypoint")
        self.waypoints, self.settings = list(waypoints), settings or OperatorSettings()
        self.rng = np.random.default_rng(seed)
        self.index = 0
        self._arrived_at = None  # s, when the current waypoint was reached
        self.hand = Hand(self.rng, self.settings.noise, self.settings.noise_time_constant)
        self._draw()

    @property
    def done(self) -> bool:
        return self.index >= len(self.waypoints)

    def _draw(self) -> None:
        s = self.settings
        self.hand.pace = self.rng.uniform(*s.pace)
        self._extra_pause = self.rng.uniform(*s.pause)

    def command(self, t: float, position, rotation) -> np.ndarray | None:
        """The stick at time t (s) with the end-effector at (position m, rotation 3x3)."""
        if self.done:
            return None
        s = self.settings
        self.hand.step(t)
        target = self.waypoints[self.index]
        error = np.concatenate([target.position - np.asarray(position, float),
                                np.zeros(3) if target.rotation is None else pin.log3(target.rotation @ np.asarray(rotation).T)])
        there = np.linalg.norm(error[:3]) < target.tolerance and np.linalg.norm(error[3:]) < 10 * target.tolerance
        if there or self._arrived_at is not None:
            if self._arrived_at is None:
                self._arrived_at = t
            if t - self._arrived_at < target.pause + self._extra_pause:
                return np.zeros(6)  # pausing, hand off the stick
            self.index, self._arrived_at = self.index + 1, None
            self._draw()
            return np.zeros(6) if self.done else self.command(t, position, rotation)
        return self.hand.stick(np.concatenate([error[:3] / s.linear_scale, error[3:] / s.angular_scale]) * s.gain)


def load_script(path) -> list[dict]:
    """A scripted operator's waypoints from a YAML file: a list under `waypoints`, each with `position`
    (m, base frame) or `offset` (m, from the pose the script starts at), optional `quaternion`
    ([x, y, z, w], base <- ee; else the orientation is kept), `pause_s` and `tolerance_m`.
    ValueError names the file, the waypoint and the field."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the script ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("waypoints"), list) or not data["waypoints"]:
        raise ValueError(f"{path}: expected a non-empty list under 'waypoints'")
    out = []
    for k, item in enumerate(data["waypoints"]):
        where = f"{path}: waypoints[{k}]"
        if not isinstance(item, dict) or ("position" in item) == ("offset" in item):
            raise ValueError(f"{where}: give exactly one of 'position' and 'offset'")
        unknown = set(item) - {"position", "offset", "quaternion", "pause_s", "tolerance_m"}
        if unknown:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
        key = "position" if "position" in item else "offset"
        parsed = {key: _numbers(where, key, item[key], 3)}
        if "quaternion" in item:
            q = _numbers(where, "quaternion", item["quaternion"], 4)
            if abs(np.linalg.norm(q) - 1.0) > 1e-3:
                raise ValueError(f"{where}.quaternion: must be a unit quaternion [x, y, z, w], got {q.tolist()}")
            parsed["quaternion"] = q / np.linalg.norm(q)
        for name, default in (("pause_s", 0.0), ("tolerance_m", 0.003)):
            value = item.get(name, default)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0 or (name == "tolerance_m" and value == 0):
                raise ValueError(f"{where}.{name}: must be a {'positive' if name == 'tolerance_m' else 'non-negative'} number, got {value!r}")
            parsed[name] = float(value)
        out.append(parsed)
    return out


def _numbers(where: str, name: str, value, n: int) -> np.ndarray:
    try:
        array = np.asarray(value, float)
    except (TypeError, ValueError):
        array = np.empty(0)
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{where}.{name}: expected {n} finite numbers, got {value!r}")
    return array


def waypoints_from_script(script: list[dict], start_position) -> list[Waypoint]:
    """The script's waypoints with offsets resolved against the start position (m, base frame)."""
    out = []
    for item in script:
        position = item["position"] if "position" in item else np.asarray(start_position, float) + item["offset"]
        rotation = pin.Quaternion(*item["quaternion"][[3, 0, 1, 2]]).toRotationMatrix() if "quaternion" in item else None
        out.append(Waypoint(position, rotation, item["pause_s"], item["tolerance_m"]))
    return out
