"""A learned model as the outer loop's feedforward, one tick at a time.

As in training, the torque for sample k is predicted from the recurrent state before k,
with the *desired* (q_d, qd_d, qdd_d) as the input of sample k; the state is then advanced
with the *measured* state (q, qd and an acceleration from a causal first-order filter on
the velocity difference). The state advances at the model's training rate (250 Hz by
default), whatever the controller's rate. Gravity is left out when the robot compensates it. Any non-finite or
out-of-limit prediction is replaced by the nominal rigid-body torque for that tick and
counted, so the controller never sends garbage.

Inference runs in numpy on weights exported from the trained torch model: a torch call
costs 30-50 us of overhead on tensors this small, and the tick budget is 300 us.
"""
from __future__ import annotations

import numpy as np

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.inverse_dynamics.models import FRICTION_SMOOTHING, VELOCITY_SCALES, InverseDynamicsModel
from robot_dyn.timing import Decimator


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class GRUStep:
    """One step of the model's residual GRU (torch gate order r, z, n) on numpy arrays."""

    def __init__(self, model: InverseDynamicsModel):
        res = model.residual
        g = {k: v.detach().numpy().copy() for k, v in res.gru.state_dict().items()}
        self.w_ih, self.w_hh = g["weight_ih_l0"], g["weight_hh_l0"]
        self.b_ih, self.b_hh = g["bias_ih_l0"], g["bias_hh_l0"]
        self.w_out, self.b_out = res.head.weight.detach().numpy().copy(), res.head.bias.detach().numpy().copy()
        self.x_mean, self.x_std = res.x_mean.numpy().copy(), res.x_std.numpy().copy()
        self.y_std = res.y_std.numpy().copy()
        self.scope, self.n, self.hidden = res.scope, res.n, res.gru.hidden_size
        self.ids = np.eye(self.n)

    def initial_state(self) -> np.ndarray:
        return np.zeros((self.n if self.scope == "joint" else 1, self.hidden))

    def __call__(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x = [q, qd, qdd] (3n,) -> (residual torque (n,), next state)."""
        z = (x - self.x_mean) / self.x_std
        n = self.n
        if self.scope == "full":
            inp = z[None]
        else:
            qd = x[n:2 * n]
            inp = np.column_stack([z[n:2 * n], z[2 * n:]] + [np.tanh(qd / v) for v in VELOCITY_SCALES] + [self.ids])
        gi = inp @ self.w_ih.T + self.b_ih
        gh = h @ self.w_hh.T + self.b_hh
        H = self.hidden
        r = _sigmoid(gi[:, :H] + gh[:, :H])
        u = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        c = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h_next = (1.0 - u) * c + u * h
        y = (h_next @ self.w_out.T + self.b_out).reshape(-1)
        return y * self.y_std, h_next


class LearnedFeedforward:
    def __init__(self, model: InverseDynamicsModel, rigid_body: RigidBody, robot_compensates_gravity: bool,
                 acceleration_cutoff_hz: float = 30.0):
        self.rb, self.kind = rigid_body, model.kind
        self.compensates_gravity = robot_compensates_gravity
        self.cutoff = acceleration_cutoff_hz
        self.n = rigid_body.n
        self.tau_max = rigid_body.robot.tau_max
        self.pi = None
        if model.kind == "nominal":
            self.pi = rigid_body.inertial_parameters()
        elif model.rigid is not None:
            self.pi = model.identified_parameters()
            self.coulomb, self.viscous = (f.detach().numpy().copy() for f in model.rigid.friction())
        self.gru = GRUStep(model) if model.residual is not None else None
        self.sample_period = 1.0 / model.sample_rate_hz
        self.reset()

    def reset(self) -> None:
        self._h = self._h_before = self.gru.initial_state() if self.gru else None
        self._samples = Decimator(self.sample_period)
        self._last = None  # (t, qd)
        self._qdd = np.zeros(self.n)

    def observe(self, t: float, q: np.ndarray, qd: np.ndarray) -> None:
        """Advance the recurrent state with the measured state at time t (s)."""
        if self._last is not None and t > self._last[0]:
            dt = t - self._last[0]
            alpha = dt / (dt + 1.0 / (2 * np.pi * self.cutoff))
            self._qdd = self._qdd + alpha * ((qd - self._last[1]) / dt - self._qdd)
        self._last = (t, qd.copy())
        if self.gru is not None and self._samples.due(t):
            self._h_before = self._h
            _, self._h = self.gru(np.concatenate([q, qd, self._qdd]), self._h)

    def predict(self, q, qd, qdd) -> np.ndarray:
        """Total joint torque (Nm, gravity included) for this state, from the current recurrent state."""
        tau = np.zeros(self.n)
        if self.pi is not None:
            tau = self.rb.regressor(q, qd, qdd) @ self.pi
            if self.kind != "nominal":
                tau += self.coulomb * np.tanh(qd / FRICTION_SMOOTHING) + self.viscous * qd
        if self.gru is not None:
            tau = tau + self.gru(np.concatenate([q, qd, qdd]), self._h_before)[0]
        return tau

    def torque(self, q_d: np.ndarray, qd_d: np.ndarray, qdd_d: np.ndarray) -> tuple[np.ndarray, bool]:
        """(feedforward torque Nm, True if the learned prediction was used) for the reference."""
        gravity = self.rb.gravity(q_d) if self.compensates_gravity else 0.0
        tau = self.predict(q_d, qd_d, qdd_d) - gravity
        if not np.all(np.isfinite(tau)) or np.any(np.abs(tau) > self.tau_max):
            return np.clip(self.rb.rnea(q_d, qd_d, qdd_d) - gravity, -self.tau_max, self.tau_max), False
        return tau, True
