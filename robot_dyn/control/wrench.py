"""Wrench feedforward: a commanded Cartesian force and torque at the end-effector, superposed on the
impedance through the Jacobian transpose (tau = J(q_d)^T [F; M]).

What a search (robot_dyn.search) or a person pressing a part home needs besides a motion: a
force that does not come from a position error. The reference keeps the arm where the motion puts
it; the feedforward adds the force. Bounded three ways, so a bad command cannot push the arm hard:
the force's norm to `max_force` (and, with a safety filter, to the contact force its joint limits
are kept against, robot_dyn.safety.filter.FilterSettings.external_force), the torque's to
`max_torque`; the applied wrench moves toward the commanded one at `force_rate` / `torque_rate` (no
torque step at the joints); a command lapses `timeout` s after its stamp and the applied wrench
ramps back to zero (a dropped link stops pushing, as a dropped twist stream stops moving).

Units and frames: force N, torque Nm, at the end-effector frame's origin (the flange), in base-frame
axes (commands in the end-effector frame are rotated by the desired orientation when they arrive).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_dyn.control.twist import FRAMES, _clip_norm, _toward


class WrenchRejected(ValueError):
    """A wrench command that cannot be applied; the message names the field."""


@dataclass(frozen=True)
class WrenchSettings:
    max_force: float = 20.0  # N, the commanded force's norm is clipped to this
    max_torque: float = 2.0  # Nm, the commanded torque's norm is clipped to this
    force_rate: float = 200.0  # N/s, how fast the applied force may change
    torque_rate: float = 20.0  # Nm/s
    timeout: float = 0.1  # s after its stamp a command lapses (the applied wrench ramps to zero)

    def validated(self) -> "WrenchSettings":
        for name in ("max_force", "max_torque", "force_rate", "torque_rate", "timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"'wrench_{name}' must be a positive number, got {value!r}")
        return self


def commanded_wrench(force, torque, frame: str, rotation: np.ndarray, max_force: float,
                     max_torque: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """A command as (F N, M Nm) in base-frame axes, clipped to the bounds, and whether clipping bit.

    force, torque: the message's 3 components each, in `frame` ('base' or 'ee'); rotation: the desired
    orientation base <- ee (3x3), for commands in the end-effector frame."""
    f, m = np.asarray(force, float), np.asarray(torque, float)
    for name, value in (("wrench.force", f), ("wrench.torque", m)):
        if value.shape != (3,) or not np.all(np.isfinite(value)):
            raise WrenchRejected(f"{name}: expected 3 finite numbers, got {np.ravel(value).tolist()}")
    if frame not in FRAMES:
        raise WrenchRejected(f"header.frame_id: expected the base or the end-effector frame, got '{frame}'")
    if frame == "ee":
        f, m = rotation @ f, rotation @ m
    clipped = bool(np.linalg.norm(f) > max_force or np.linalg.norm(m) > max_torque)
    return _clip_norm(f, max_force), _clip_norm(m, max_torque), clipped


class WrenchFeedforward:
    """The commanded wrench and the applied one, which follows it at bounded rates.

    advance(t) must be called at non-decreasing times (the outer loop's ticks)."""

    def __init__(self, settings: WrenchSettings | None = None):
        self.settings = (settings or WrenchSettings()).validated()
        self.reset(-np.inf)

    def reset(self, t: float) -> None:
        """Nothing commanded, nothing applied (a restart: no force pushes an arm the loop just re-found)."""
        self.t = t
        self.force_command, self.torque_command = np.zeros(3), np.zeros(3)
        self.force, self.torque = np.zeros(3), np.zeros(3)  # applied, N and Nm, base-frame axes
        self.expires = -np.inf

    def command(self, expires: float, force: np.ndarray, torque: np.ndarray) -> None:
        """Apply (F N, M Nm), base-frame axes, already bounded (commanded_wrench), until loop time `expires`."""
        self.force_command, self.torque_command = np.array(force, float), np.array(torque, float)
        self.expires = float(expires)

    @property
    def active(self) -> bool:
        """A wrench is applied or commanded (the reference cannot be held as a constant)."""
        return bool(self.force.any() or self.torque.any() or (self.t <= self.expires
                                                                and (self.force_command.any() or self.torque_command.any())))

    def advance(self, t: float) -> np.ndarray:
        """The applied wrench [F; M] (6,) at loop time t: toward the command while it is live, else zero."""
        h = max(t - self.t, 0.0) if np.isfinite(self.t) else 0.0
        live = t <= self.expires
        self.force = _toward(self.force, self.force_command if live else np.zeros(3), self.settings.force_rate * h)
        self.torque = _toward(self.torque, self.torque_command if live else np.zeros(3), self.settings.torque_rate * h)
        self.t = t
        return np.concatenate([self.force, self.torque])
