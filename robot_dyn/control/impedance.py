"""The inner loop: joint impedance law, torque limits and the stale-reference watchdog.

tau = tau_ff + K (q_d - q) + D (qd_d - qd), clipped to |tau| <= tau_max and
|d tau/dt| <= dtau_max. This runs at physics rate inside the sim node (on a
real arm the same law runs in the arm's real-time controller, see hardware/).
Units: rad, rad/s, rad/s^2, Nm, Nm/s, seconds.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from robot_dyn.joint_arrays import joint_vector
from robot_dyn.robots.description import RobotDescription


def impedance_torque(q, qd, q_d, qd_d, tau_ff, stiffness, damping) -> np.ndarray:
    """The unclipped impedance law tau_ff + K (q_d - q) + D (qd_d - qd), diagonal gains."""
    return tau_ff + stiffness * (q_d - q) + damping * (qd_d - qd)


def limit_torque(tau, tau_prev, tau_max, dtau_max, dt) -> np.ndarray:
    """Clip tau to the torque-rate limit around tau_prev, then to the torque limit."""
    step = dtau_max * dt
    # np.minimum/np.maximum: several times cheaper than np.clip on 7-vectors.
    tau = np.minimum(np.maximum(tau, tau_prev - step), tau_prev + step)
    return np.minimum(np.maximum(tau, -tau_max), tau_max)


# References may ask for up to this multiple of the acceleration limits (the outer loop's IK
# transients); more is rejected, since the layer extrapolates with it between ticks.
ACCELERATION_MARGIN = 2.0
# A reference stamped up to this far in the future is kept and applied at its stamp: the controller
# sends its references a few ticks ahead (reference_lead_ticks, 8 ms at 500 Hz), plus clock jitter.
FUTURE_TOLERANCE = 0.010


class ReferenceRejected(ValueError):
    """A reference that must not reach the motors; the message names the field."""


@dataclass(frozen=True)
class ImpedanceReference:
    """One outer-loop reference: desired joint state and feedforward at time `stamp` (s).

    Arrays are in the robot's joint order once validated.
    """

    stamp: float
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    tau_ff: np.ndarray


@dataclass
class ImpedanceSettings:
    """Gains and limits of the robot layer; all may change at run time."""

    stiffness: np.ndarray
    damping: np.ndarray
    safe_stiffness: np.ndarray
    safe_damping: np.ndarray
    tau_max: np.ndarray
    dtau_max: np.ndarray
    stale_timeout: float = 0.05
    # How far a reference is extrapolated (q_d + qd_d t + qdd_d t^2/2) before it is held constant.
    # A reference is a constant-acceleration segment, which is what the outer loop integrates
    # between its ticks: along a figure-8 and two joint goals the segment 8 ms on stayed within
    # 2 urad of the loop's own reference 8 ms later (Panda; tests/test_impedance.py). So a
    # controller held off its core rides through: with the 8 ms reference lead, a silence of up to
    # 16 ms moves the arm as the missing references would have (4 ms, the old value, left 12 ms,
    # and the layer held 1-2 times a minute with one core busy). Never near the stale timeout.
    extrapolation_horizon: float = 0.008
    # A reference farther than this from the measured position (rad, any joint) is a
    # discontinuity and is rejected: a saturated spring with the torque-rate limit lags
    # enough to go unstable (steps of 0.15 rad on all joints diverged in simulation, 0.1 rad did not).
    max_position_error: float = 0.05

    @classmethod
    def from_robot(cls, robot: RobotDescription, **overrides) -> "ImpedanceSettings":
        values = dict(
            stiffness=robot.stiffness.copy(),
            damping=robot.damping.copy(),
            safe_stiffness=robot.safe_stiffness.copy(),
            safe_damping=robot.safe_damping.copy(),
            tau_max=robot.tau_max.copy(),
            dtau_max=robot.dtau_max.copy(),
        )
        values.update(overrides)
        return cls(**values)

    def validated(self, n: int) -> "ImpedanceSettings":
        """Checked copy: every vector has n finite non-negative entries, timeouts positive."""
        out = {}
        for name in ("stiffness", "damping", "safe_stiffness", "safe_damping", "tau_max", "dtau_max"):
            out[name] = joint_vector(name, getattr(self, name), n, "nonnegative")
        for name, unit in (("stale_timeout", "s"), ("extrapolation_horizon", "s"), ("max_position_error", "rad")):
            raw = getattr(self, name)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"'{name}' must be a positive number ({unit}), got {raw!r}") from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"'{name}' must be a positive number ({unit}), got {raw!r}")
            out[name] = value
        return ImpedanceSettings(**out)


def validate_reference(
    robot: RobotDescription,
    stamp: float,
    names,
    positions,
    velocities=(),
    accelerations=(),
    efforts=(),
) -> ImpedanceReference:
    """Check a raw reference and reorder it into the robot's joint order.

    Empty velocities, accelerations or efforts mean zeros (as in JointTrajectory).
    Raises ReferenceRejected naming the offending field.
    """
    n = robot.n_joints
    if not math.isfinite(stamp):
        raise ReferenceRejected(f"header.stamp is not finite ({stamp})")
    order = _joint_order(robot.joint_names, tuple(names))
    fields = []
    for field_name, raw, optional in (
        ("positions", positions, False),
        ("velocities", velocities, True),
        ("accelerations", accelerations, True),
        ("effort", efforts, True),
    ):
        values = np.asarray(raw, dtype=float).reshape(-1)
        if values.size == 0 and optional:
            fields.append(np.zeros(n))
            continue
        if values.size != n:
            raise ReferenceRejected(f"{field_name}: {values.size} values for {n} joints")
        values = values[order]
        if not np.isfinite(values).all():
            bad = [robot.joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]
            raise ReferenceRejected(f"{field_name}: NaN or infinite value for joints {bad}")
        fields.append(values)
    q, qd, qdd, tau_ff = fields
    if (q < robot.q_min).any() or (q > robot.q_max).any():
        outside = np.flatnonzero((q < robot.q_min) | (q > robot.q_max))
        details = ", ".join(
            f"{robot.joint_names[i]}={q[i]:.4f} not in [{robot.q_min[i]:.4f}, {robot.q_max[i]:.4f}]" for i in outside
        )
        raise ReferenceRejected(f"positions: outside joint limits: {details}")
    for field_name, values, limit, text in (
        ("velocities", qd, robot.qd_max, "above the velocity limit"),
        ("accelerations", qdd, ACCELERATION_MARGIN * robot.qdd_max, f"above {ACCELERATION_MARGIN:g}x the acceleration limit"),
        ("effort", tau_ff, robot.tau_max, "feedforward above the torque limit"),
    ):
        if (np.abs(values) > limit).any():
            joints = [robot.joint_names[i] for i in np.flatnonzero(np.abs(values) > limit)]
            raise ReferenceRejected(f"{field_name}: {text} at joints {joints}")
    return ImpedanceReference(stamp, q, qd, qdd, tau_ff)


@functools.lru_cache(maxsize=16)
def _joint_order(joint_names: tuple, names: tuple) -> np.ndarray:
    """Indices that put `names`' values into `joint_names`' order (a reference stream repeats its
    names, so this is worked out once per stream); ReferenceRejected names what is wrong."""
    unknown = [j for j in names if j not in joint_names]
    if unknown:
        raise ReferenceRejected(f"joint_names: unknown joints {unknown}; this robot has {list(joint_names)}")
    if len(set(names)) != len(names):
        raise ReferenceRejected(f"joint_names: duplicate joint names in {list(names)}")
    if len(names) != len(joint_names):
        missing = [j for j in joint_names if j not in names]
        raise ReferenceRejected(f"joint_names: {len(names)} joints given, {len(joint_names)} expected (missing {missing})")
    return np.array([names.index(j) for j in joint_names])


@dataclass
class RobotLayer:
    """The stateful 1 kHz layer: holds the latest valid reference and computes the torque.

    Modes: 'hold' (no valid fresh reference: hold the measured position captured
    when hold began, safe gains, zero feedforward) and 'track'. The layer starts
    in 'hold'. A reference stamped later than the layer's time waits in `pending`
    and applies from its stamp on: a controller may send its references a few
    ticks ahead, so that one late tick of its own does not starve the layer.
    Events (rejections, mode changes) are appended to `events` as
    (time, text) for the host to log; the host drains them. `hold_events` counts
    the times the layer stopped following the reference for lack of a fresh one:
    its extrapolation horizon passed (it stops at the horizon's point) or it went stale.
    """

    robot: RobotDescription
    settings: ImpedanceSettings
    mode: str = "hold"
    reference: ImpedanceReference | None = None
    pending: list = field(default_factory=list)  # references for later, by stamp
    events: list = field(default_factory=list)

    def __post_init__(self):
        self.settings = self.settings.validated(self.robot.n_joints)
        self._tau_prev = np.zeros(self.robot.n_joints)
        self._q_hold: np.ndarray | None = None
        self._q_measured: np.ndarray | None = None
        self.rejected = 0
        self.hold_events = 0
        self._starved = False  # not following the reference for lack of a fresh one

    def observe(self, q: np.ndarray) -> None:
        """The measured position before the first torque() call (references are checked against it)."""
        self._q_measured = np.array(q, float)

    def update_settings(self, settings: ImpedanceSettings) -> None:
        """Swap gains/limits at run time (validated first; on error the old ones stay)."""
        self.settings = settings.validated(self.robot.n_joints)

    def submit(self, now: float, stamp: float, names, positions, velocities=(), accelerations=(), efforts=()) -> bool:
        """Offer a raw reference at time `now`; returns False (and records why) if rejected. One stamped
        later than now is kept until its stamp (and checked against the measured position then)."""
        try:
            reference = validate_reference(self.robot, stamp, names, positions, velocities, accelerations, efforts)
            age = now - reference.stamp
            if age > self.settings.stale_timeout:
                raise ReferenceRejected(f"header.stamp: reference is stale ({age * 1e3:.1f} ms old)")
            if age < -FUTURE_TOLERANCE:
                raise ReferenceRejected(f"header.stamp: reference is {-age * 1e3:.1f} ms in the future")
            if self._q_measured is None:
                raise ReferenceRejected("no measured joint position yet: references cannot be checked against the arm")
            if age < -1e-9:  # for later (1e-9: float time stamps)
                self.pending = [r for r in self.pending if r.stamp < reference.stamp - 1e-9] + [reference]
                return True
            self._check_continuity(reference)
        except ReferenceRejected as exc:
            self._reject(now, exc)
            return False
        self.reference = reference
        return True

    def _check_continuity(self, reference: ImpedanceReference) -> None:
        gap = np.abs(reference.q - self._q_measured)
        j = int(np.argmax(gap))
        if gap[j] > self.settings.max_position_error:
            raise ReferenceRejected(
                f"positions: {self.robot.joint_names[j]} is {gap[j]:.3f} rad from the measured position "
                f"(max_position_error {self.settings.max_position_error} rad): a discontinuity"
            )

    def _reject(self, now: float, exc: ReferenceRejected) -> None:
        self.rejected += 1
        self.events.append((now, f"reference rejected: {exc}"))

    def _apply_pending(self, now: float) -> None:
        """The kept references whose time has come apply, in order (each checked against the arm)."""
        while self.pending and self.pending[0].stamp <= now + 1e-9:
            reference = self.pending.pop(0)
            try:
                self._check_continuity(reference)
            except ReferenceRejected as exc:
                self._reject(now, exc)
                continue
            self.reference = reference

    def torque(self, now: float, q: np.ndarray, qd: np.ndarray, dt: float) -> np.ndarray:
        """Joint torque command (Nm, excluding any robot-side gravity compensation) for this tick."""
        s = self.settings
        self._q_measured = q
        if self.pending:
            self._apply_pending(now)
        ref = self.reference
        age = now - ref.stamp if ref is not None else math.inf
        if age < s.stale_timeout - 1e-9:  # stale from stale_timeout on (1e-9: float time stamps)
            if self.mode != "track":
                self.mode = "track"
                self.events.append((now, "tracking references"))
            if age <= s.extrapolation_horizon + 1e-9:  # 1e-9: float time stamps
                self._starved = False
                t = max(age, 0.0)
                q_d = ref.q + t * (ref.qd + 0.5 * t * ref.qdd)
                qd_d = ref.qd + t * ref.qdd
            else:  # late (ticks missed): stop at the horizon's point rather than keep the old velocity
                self._starve(now, f"reference late (age {age * 1e3:.1f} ms): stopping at its extrapolation horizon")
                t = s.extrapolation_horizon
                q_d = ref.q + t * (ref.qd + 0.5 * t * ref.qdd)
                qd_d = 0.0
            tau = impedance_torque(q, qd, q_d, qd_d, ref.tau_ff, s.stiffness, s.damping)
        else:
            if self.mode != "hold" or self._q_hold is None:
                self._q_hold = q.copy()
                if self.mode != "hold":
                    self._starve(now, None)
                    self.events.append((now, f"reference stale (age {age * 1e3:.1f} ms): holding position"))
                self.mode = "hold"
            tau = impedance_torque(q, qd, self._q_hold, 0.0, 0.0, s.safe_stiffness, s.safe_damping)
        tau = limit_torque(tau, self._tau_prev, s.tau_max, s.dtau_max, dt)
        self._tau_prev = tau
        return tau

    def _starve(self, now: float, text: str | None) -> None:
        """Count the start of a spell without a fresh reference (and say why, once)."""
        if not self._starved:
            self._starved = True
            self.hold_events += 1
            if text:
                self.events.append((now, text))

    def drain_events(self) -> list:
        events, self.events = self.events, []
        return events
