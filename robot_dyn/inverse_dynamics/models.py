"""Inverse-dynamics models behind one interface: joint torque from a state sequence.

- nominal: the URDF rigid-body model (pinocchio RNEA);
- identified: rigid body with log-Cholesky (always physically consistent) inertial
  parameters plus Coulomb (tanh-smoothed) and viscous joint friction, through pinocchio's
  joint torque regressor: tau = Y(q, qd, qdd) pi(theta) + friction(qd);
- blackbox: a GRU on the state history;
- hybrid: identified rigid body + GRU residual, trained end to end.

Inputs per sample x = [q, qd, qdd] (rad, rad/s, rad/s^2, URDF joint order), output tau (Nm),
the total joint torque (gravity included). Checkpoints are safetensors + a JSON config;
loading checks robot, joints and tensor shapes and raises CheckpointError naming the field.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.inverse_dynamics.dataset import urdf_hash
from robot_dyn.inverse_dynamics.physical import dynamic_to_log_cholesky, log_cholesky_to_dynamic

KINDS = ("nominal", "identified", "blackbox", "hybrid")
CHECKPOINT_VERSION = 1
FRICTION_SMOOTHING = 0.01  # rad/s: Coulomb friction as Fc tanh(qd / 0.01)
# Joint-local residual: tanh(qd / v) features resolve the low-velocity (stick-slip) regime that a
# velocity normalised by its spread (~0.4 rad/s) squashes near zero.
VELOCITY_SCALES = (0.01, 0.1)


class CheckpointError(ValueError):
    """A checkpoint that must not be used; the message names the file and the field."""


def regressors(model: RigidBody, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
    """Joint torque regressors (N, n, 10n) for N samples."""
    return np.stack([model.regressor(a, b, c) for a, b, c in zip(q, qd, qdd)])


class RigidBodyTorque(nn.Module):
    """Y pi(theta) + Fc tanh(qd / eps) + Fv qd, with pi from log-Cholesky theta (n, 10)."""

    def __init__(self, pi0: np.ndarray, n_joints: int):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(dynamic_to_log_cholesky(pi0).reshape(n_joints, 10)))
        # softplus(raw) >= 0: Coulomb (Nm) and viscous (Nm s/rad) friction, starting at 0.1 where
        # softplus still has gradient (starting near 0 left friction unidentified).
        self.friction_raw = nn.Parameter(torch.full((2, n_joints), float(np.log(np.expm1(0.1))), dtype=torch.float64))

    def parameters_pi(self) -> torch.Tensor:
        return log_cholesky_to_dynamic(self.theta).reshape(-1)

    def friction(self) -> tuple[torch.Tensor, torch.Tensor]:
        coulomb, viscous = nn.functional.softplus(self.friction_raw)
        return coulomb, viscous

    def forward(self, Y: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        coulomb, viscous = self.friction()
        return Y @ self.parameters_pi() + coulomb * torch.tanh(qd / FRICTION_SMOOTHING) + viscous * qd


class Residual(nn.Module):
    """GRU on normalised states -> torque (Nm) through a linear read-out and an output scale.

    scope 'full': one GRU sees [q, qd, qdd] of all joints (the black box, which must learn
    gravity and coupling). scope 'joint': one GRU, shared by the joints, sees each joint's own
    history of (qd, qdd, tanh(qd / v) for v in VELOCITY_SCALES) and its joint id, and predicts
    that joint's torque: the effects a rigid-body model lacks (stick-slip, presliding
    hysteresis, rotor inertia) are joint-local, and this keeps the residual from memorising
    positions of the training trajectories.
    """

    def __init__(self, n_joints: int, hidden: int, scope: str = "full"):
        super().__init__()
        if scope not in ("full", "joint"):
            raise ValueError(f"residual scope must be 'full' or 'joint', got '{scope}'")
        self.n, self.scope = n_joints, scope
        inputs, outputs = (3 * n_joints, n_joints) if scope == "full" else (2 + len(VELOCITY_SCALES) + n_joints, 1)
        self.gru = nn.GRU(inputs, hidden, batch_first=True, dtype=torch.float64)
        self.head = nn.Linear(hidden, outputs, dtype=torch.float64)
        self.register_buffer("x_mean", torch.zeros(3 * n_joints, dtype=torch.float64))
        self.register_buffer("x_std", torch.ones(3 * n_joints, dtype=torch.float64))
        self.register_buffer("y_std", torch.ones(n_joints, dtype=torch.float64))

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """x (B, T, 3n) -> (torque (B, T, n), hidden)."""
        z = (x - self.x_mean) / self.x_std
        if self.scope == "full":
            out, h = self.gru(z, h)
            return self.head(out) * self.y_std, h
        B, T, n = z.shape[0], z.shape[1], self.n
        qd = x[..., n:2 * n]
        features = [z[..., n:2 * n], z[..., 2 * n:]] + [torch.tanh(qd / v) for v in VELOCITY_SCALES]
        per_joint = torch.stack(features, -1)  # (B, T, n, 2 + scales)
        ids = torch.eye(n, dtype=z.dtype).expand(B, T, n, n)
        inp = torch.cat([per_joint, ids], -1).permute(0, 2, 1, 3).reshape(B * n, T, per_joint.shape[-1] + n)
        out, h = self.gru(inp, h)
        y = self.head(out).reshape(B, n, T).permute(0, 2, 1)
        return y * self.y_std, h


class InverseDynamicsModel(nn.Module):
    """One of KINDS for one robot. forward(x, Y) on sequences; predict() on numpy arrays."""

    def __init__(self, kind: str, rigid_body: RigidBody, hidden: int = 64, init_scale: float = 1.0,
                 sample_rate_hz: float = 250.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}, got '{kind}'")
        self.kind, self.hidden, self.rb_model = kind, hidden, rigid_body
        self.sample_rate_hz = sample_rate_hz  # the rate the recurrent part was trained at
        n = rigid_body.n
        pi0 = rigid_body.inertial_parameters()
        # init_scale scales every body's mass and inertia alike (still consistent): a wrong start.
        self.rigid = RigidBodyTorque(pi0 * init_scale, n) if kind in ("identified", "hybrid") else None
        self.residual = Residual(n, hidden, "full" if kind == "blackbox" else "joint") if kind in ("blackbox", "hybrid") else None
        self.register_buffer("pi_nominal", torch.tensor(pi0))

    @property
    def uses_regressor(self) -> bool:
        return self.kind in ("nominal", "identified", "hybrid")

    def forward(self, x: torch.Tensor, Y: torch.Tensor | None, h=None):
        """x (B, T, 3n), Y (B, T, n, 10n) or None -> (tau (B, T, n), recurrent state)."""
        n = x.shape[-1] // 3
        tau = torch.zeros(x.shape[:-1] + (n,), dtype=x.dtype)
        if self.kind == "nominal":
            tau = Y @ self.pi_nominal
        if self.rigid is not None:
            tau = tau + self.rigid(Y, x[..., n:2 * n])
        if self.residual is not None:
            res, h = self.residual(x, h)
            tau = tau + res
        return tau, h

    @torch.no_grad()
    def predict(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """Torque (N, n) along one sequence, recurrent state carried from its start."""
        x = torch.tensor(np.concatenate([q, qd, qdd], axis=1))[None]
        Y = torch.tensor(regressors(self.rb_model, q, qd, qdd))[None] if self.uses_regressor else None
        return self(x, Y)[0][0].numpy()

    def identified_parameters(self) -> np.ndarray | None:
        """The rigid part's 10n dynamic parameters (pinocchio order), if the model has one."""
        return None if self.rigid is None else self.rigid.parameters_pi().detach().numpy()

    # --- checkpoints ---------------------------------------------------------
    def config(self) -> dict:
        robot = self.rb_model.robot
        return {"format": "robot_dyn.inverse_dynamics.model", "version": CHECKPOINT_VERSION, "kind": self.kind,
                "hidden": self.hidden, "sample_rate_hz": self.sample_rate_hz, "robot": robot.name,
                "joint_names": list(robot.joint_names), "urdf_sha256": urdf_hash(robot.urdf_xml)}

    def save(self, path: Path, extra: dict | None = None) -> Path:
        """path/model.safetensors + path/config.json."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
        (path / "config.json").write_text(json.dumps({**self.config(), **(extra or {})}, indent=2) + "\n")
        return path


def load_model(path: Path, rigid_body: RigidBody) -> InverseDynamicsModel:
    """Load a checkpoint folder for `rigid_body`'s robot; CheckpointError on any mismatch or corruption."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no config.json (is this a model checkpoint folder?)") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path / 'config.json'}: malformed JSON: {exc}") from exc
    robot = rigid_body.robot
    checks = (
        ("format", config.get("format") == "robot_dyn.inverse_dynamics.model", "is not an inverse-dynamics model"),
        ("version", config.get("version") == CHECKPOINT_VERSION, f"must be {CHECKPOINT_VERSION}"),
        ("kind", config.get("kind") in KINDS, f"must be one of {KINDS}"),
        ("robot", config.get("robot") == robot.name, f"is '{config.get('robot')}', this controller runs '{robot.name}'"),
        ("joint_names", config.get("joint_names") == list(robot.joint_names),
         f"has {len(config.get('joint_names') or [])} joints {config.get('joint_names')}, expected {list(robot.joint_names)}"),
        ("urdf_sha256", config.get("urdf_sha256") == urdf_hash(robot.urdf_xml),
         f"differs: the model was trained with another version of {robot.urdf_path.name}"),
        ("sample_rate_hz", isinstance(config.get("sample_rate_hz"), (int, float)) and config["sample_rate_hz"] > 0,
         "must be a positive number"),
    )
    for field, ok, why in checks:
        if not ok:
            raise CheckpointError(f"{path / 'config.json'}: field '{field}' {why}")
    model = InverseDynamicsModel(config["kind"], rigid_body, int(config.get("hidden", 64)),
                                 sample_rate_hz=float(config["sample_rate_hz"]))
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path / 'model.safetensors'}: unreadable: {exc}") from exc
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise CheckpointError(f"{path / 'model.safetensors'}: tensors {sorted(set(tensors) ^ set(expected))} missing or unexpected")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path / 'model.safetensors'}: tensor '{name}' has shape {tuple(tensor.shape)}, "
                                  f"expected {tuple(expected[name].shape)}")
        if not torch.all(torch.isfinite(tensor)):
            raise CheckpointError(f"{path / 'model.safetensors'}: tensor '{name}' has NaN or infinite values")
    model.load_state_dict(tensors)
    model.eval()
    return model
