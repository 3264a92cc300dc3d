"""The feedforward's torque error as a Gaussian model, and the tracking error it bounds.

The joint torque the arm needs differs from what the controller's model supplies
(feedforward plus the robot's own nominal gravity compensation) by

    delta_tau = Y(q, qd, qdd) delta_pi + eps,   delta_pi ~ N(mu, Sigma),  eps_i ~ N(0, sigma_i^2)

where Y is the rigid-body joint torque regressor (pinocchio) and delta_pi the error of the
inertial parameters. This is Bayesian linear regression, i.e. a Gaussian process on the
inverse-dynamics residual with the kernel Y(x) Sigma Y(x')^T + diag(sigma^2): its mean
and spread grow where the data says little (large accelerations, far postures), and eps
takes what a rigid body cannot say (friction, hysteresis). The prior (no data) is a
relative error of every inertial parameter; `fit` conditions it on a recorded
inverse-dynamics dataset (robot-dyn collect inverse-dynamics).

Y is affine in qdd, so at a state (q, qd) the error on joint i is affine in the commanded
acceleration a: mean m_i . [a; 1] and std ||L_i [a; 1]||. Under joint impedance with
stiffness K the quasi-static tracking error is q - q_d = -delta_tau / K: its mean is affine
in a and its std a second-order cone in a.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from robot_dyn.dynamics.rigid_body import RigidBody

FORMAT = "robot_dyn.torque_error_model"


class ErrorModelError(ValueError):
    """An error model that cannot be used (bad file, wrong robot); the message says why."""


@dataclass
class TorqueErrorAt:
    """The model at one state: per joint i, mean m_i . [a; 1] (Nm) and std sqrt([a; 1]^T cov_i [a; 1]) (Nm)."""

    mean: np.ndarray  # (n, n+1)
    cov: np.ndarray  # (n, n+1, n+1), covariance of joint i's error in [a; 1], positive definite
    stiffness: np.ndarray  # (n,) Nm/rad, the impedance that turns torque error into position error
    _chol: np.ndarray | None = field(default=None, repr=False)

    @property
    def chol(self) -> np.ndarray:
        """(n, n+1, n+1) upper factors, chol_i^T chol_i = cov_i: for a cone program; computed on first use
        (most ticks of the robust filter need only stds, and the factor is a third of the model's cost)."""
        if self._chol is None:
            self._chol = np.linalg.cholesky(self.cov).transpose(0, 2, 1)
        return self._chol

    def std(self, a: np.ndarray) -> np.ndarray:
        """Per joint, the torque error's std (Nm) at the commanded acceleration a (rad/s^2)."""
        x = np.append(a, 1.0)
        return np.sqrt(np.maximum((self.cov @ x) @ x, 0.0))

    def tracking_error(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quasi-static tracking error q - q_d (rad) for the commanded acceleration a: (mean, std).

        The impedance law balances the missing torque with its spring, K (q_d - q) = delta_tau,
        so the arm lags by delta_tau / K."""
        return -(self.mean @ np.append(a, 1.0)) / self.stiffness, self.std(a) / self.stiffness


class TorqueErrorModel:
    """delta_pi ~ N(mean, cov) over the stacked inertial parameters, eps ~ N(0, noise_std^2)."""

    def __init__(self, model: RigidBody, mean: np.ndarray, cov: np.ndarray, noise_std: np.ndarray,
                 stiffness: np.ndarray, samples: int = 0):
        p, n = 10 * model.n, model.n
        for name, value, shape in (("mean", mean, (p,)), ("cov", cov, (p, p)), ("noise_std", noise_std, (n,)),
                                   ("stiffness", stiffness, (n,))):
            if np.shape(value) != shape or not np.all(np.isfinite(value)):
                raise ErrorModelError(f"torque error model '{name}': expected finite values of shape {shape}")
        if np.any(np.asarray(stiffness) <= 0):
            raise ErrorModelError("torque error model 'stiffness' must be positive")
        self.model = model
        self.mean, self.noise_std, self.stiffness = np.asarray(mean, float), np.asarray(noise_std, float), np.asarray(stiffness, float)
        self.cov = 0.5 * (cov + cov.T)
        self.samples = samples
        # Sigma^(1/2) (eigen-decomposition: the posterior may be singular in unidentifiable directions)
        w, v = np.linalg.eigh(self.cov)
        self._root = (v * np.sqrt(np.clip(w, 0.0, None))).T  # (p, p), root^T root = cov
        self._eye = np.eye(n + 1)[:, :n]  # rows: unit accelerations e_j, then zero
        self._jitter = 1e-9 * np.eye(n + 1)  # Nm^2: adds at most 3e-5 Nm per unit of [a; 1] to a std

    @classmethod
    def prior(cls, model: RigidBody, stiffness, relative_std: float = 0.1, noise_std=0.5) -> "TorqueErrorModel":
        """Every inertial parameter off by relative_std of its URDF value (1 sigma), plus noise_std Nm."""
        pi = model.inertial_parameters()
        scale = relative_std * (np.abs(pi) + 1e-3)
        n = model.n
        return cls(model, np.zeros(10 * n), np.diag(scale**2), np.broadcast_to(np.asarray(noise_std, float), (n,)).copy(),
                   np.asarray(stiffness, float))

    @classmethod
    def fit(cls, prior: "TorqueErrorModel", q, qd, qdd, tau_error, max_samples: int = 20000, seed: int = 0) -> "TorqueErrorModel":
        """Condition the prior on measured torque errors (N, n) at states (N, n) each.

        The noise level of each joint is re-estimated from the residual after the parameter fit,
        so what the rigid body cannot explain (friction) widens the bound honestly."""
        model, n = prior.model, prior.model.n
        arrays = [np.asarray(x, float) for x in (q, qd, qdd, tau_error)]
        if any(x.ndim != 2 or x.shape[1] != n for x in arrays) or len({len(x) for x in arrays}) != 1:
            raise ErrorModelError(f"fit: q, qd, qdd and tau_error must all be (N, {n})")
        if not all(np.all(np.isfinite(x)) for x in arrays):
            raise ErrorModelError("fit: non-finite values in the data")
        q, qd, qdd, err = arrays
        idx = np.random.default_rng(seed).permutation(len(q))[:max_samples]
        Y = np.stack([model.regressor(q[k], qd[k], qdd[k]) for k in idx])  # (N, n, p)
        E = err[idx]
        prior_prec = np.linalg.inv(prior.cov)
        noise = prior.noise_std.copy()
        for _ in range(2):  # fit, re-estimate the noise from the residual, fit again
            Yw = Y / noise[None, :, None]
            A = prior_prec + np.einsum("kip,kiq->pq", Yw, Yw)
            rhs = prior_prec @ prior.mean + np.einsum("kip,ki->p", Yw, E / noise[None, :])
            cov = np.linalg.inv(A)
            mean = cov @ rhs
            residual = E - np.einsum("kip,p->ki", Y, mean)
            noise = np.maximum(np.sqrt(np.mean(residual**2, axis=0)), 1e-3)
        return cls(model, mean, cov, noise, prior.stiffness, samples=len(idx))

    def torque_error(self, q: np.ndarray, qd: np.ndarray) -> TorqueErrorAt:
        """Mean and std of the torque error, affine in the commanded acceleration, at (q, qd)."""
        m, n = self.model, self.model.n
        # (n, p, n+1): joint i's features of [a; 1]; Y is affine in qdd, so its column j of the
        # acceleration part is Y(q, qd, e_j) - Y(q, qd, 0), and the last one Y(q, qd, 0)
        phi = np.empty((n, 10 * n, n + 1))
        phi[:, :, n] = y_free = m.regressor(q, qd, self._eye[n])  # velocity and gravity terms
        for j in range(n):
            phi[:, :, j] = m.regressor(q, qd, self._eye[j]) - y_free
        mean = self.mean @ phi
        root_phi = self._root @ phi  # std_i = ||root_phi[i] [a;1]||
        # joint i's covariance in [a; 1] (n+1 square), with the noise
        cov = root_phi.transpose(0, 2, 1) @ root_phi
        cov[:, n, n] += self.noise_std**2
        cov += self._jitter  # unidentifiable directions leave cov singular; this keeps it definite
        return TorqueErrorAt(mean, cov, self.stiffness)

    # --- files ---------------------------------------------------------------
    def save(self, folder: Path, source: str = "") -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"mean": self.mean, "cov": self.cov, "noise_std": self.noise_std, "stiffness": self.stiffness},
                  str(folder / "error_model.safetensors"))
        meta = {"format": FORMAT, "version": 1, "robot": self.model.robot.name, "samples": self.samples, "source": source}
        (folder / "error_model.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path, model: RigidBody) -> "TorqueErrorModel":
        folder = Path(folder)
        try:
            meta = json.loads((folder / "error_model.json").read_text())
            tensors = load_file(str(folder / "error_model.safetensors"))
        except Exception as exc:
            raise ErrorModelError(f"{folder}: cannot read the torque error model ({exc})") from None
        if meta.get("format") != FORMAT:
            raise ErrorModelError(f"{folder}/error_model.json: format is {meta.get('format')!r}, expected {FORMAT!r}")
        if meta.get("robot") != model.robot.name:
            raise ErrorModelError(f"{folder}: error model is for robot {meta.get('robot')!r}, not {model.robot.name!r}")
        missing = {"mean", "cov", "noise_std", "stiffness"} - set(tensors)
        if missing:
            raise ErrorModelError(f"{folder}/error_model.safetensors lacks {sorted(missing)}")
        return cls(model, tensors["mean"], tensors["cov"], tensors["noise_std"], tensors["stiffness"], meta.get("samples", 0))
