"""Unmodelled effects: what the simulated arm has that its URDF model does not.

They give learned models something real to learn: joint friction (Coulomb and
viscous), rotor armature, perturbed link masses/inertias and an unknown payload.
Named profiles live in configs/sim_effects.yaml ('nominal' has none,
'realistic' turns them all on).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from robot_dyn import paths
from robot_dyn.joint_arrays import joint_vector


@dataclass(frozen=True)
class UnmodelledEffects:
    """Per-joint values may be a scalar (all joints) or a list in URDF joint order."""

    coulomb_friction: float | tuple = 0.0  # Nm, MuJoCo frictionloss
    viscous_friction: float | tuple = 0.0  # Nm s/rad
    armature: float | tuple = 0.0  # kg m^2, reflected rotor inertia
    link_mass_scale_std: float = 0.0  # each link's mass and inertia scaled by N(1, std), clipped to [0.5, 1.5]
    payload_mass: float = 0.0  # kg, rigidly attached at the end-effector frame
    payload_com: tuple = (0.0, 0.0, 0.0)  # m, in the end-effector frame
    seed: int = 0  # draws of the link perturbation
    # LuGre friction (sim/friction.py), an effect with memory; off while lugre_coulomb is 0.
    lugre_coulomb: float | tuple = 0.0  # Nm
    lugre_static: float | tuple = 0.0  # Nm, >= coulomb: breakaway (stick-slip)
    lugre_stribeck_velocity: float | tuple = 0.05  # rad/s
    lugre_stiffness: float | tuple = 300.0  # Nm/rad, presliding (bristle) stiffness
    lugre_damping: float | tuple = 0.5  # Nm s/rad, bristle damping

    def per_joint(self, name: str, n: int) -> np.ndarray:
        return joint_vector(f"unmodelled effect {name}", getattr(self, name), n, "nonnegative")

    def link_scales(self, n_links: int) -> np.ndarray:
        """Mass/inertia scale per moving link (deterministic in `seed`)."""
        if self.link_mass_scale_std <= 0:
            return np.ones(n_links)
        rng = np.random.default_rng(self.seed)
        return np.clip(rng.normal(1.0, self.link_mass_scale_std, n_links), 0.5, 1.5)

    def lugre(self, n: int):
        """LuGreParameters for n joints, or None when LuGre friction is off."""
        from robot_dyn.sim.friction import LuGreParameters

        coulomb = self.per_joint("lugre_coulomb", n)
        if not np.any(coulomb > 0):
            return None
        static = self.per_joint("lugre_static", n)
        if np.any(static < coulomb) or np.any(static <= 0):
            raise ValueError("unmodelled effect 'lugre_static' must be positive and at least 'lugre_coulomb' on every "
                             "joint when LuGre friction is on")
        velocity = self.per_joint("lugre_stribeck_velocity", n)
        if np.any(velocity <= 0):
            raise ValueError("unmodelled effect 'lugre_stribeck_velocity' must be positive")
        return LuGreParameters(coulomb, static, velocity, self.per_joint("lugre_stiffness", n),
                               self.per_joint("lugre_damping", n), np.zeros(n))

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) != f.default for f in fields(self) if f.name != "seed")


def load_profile(name: str) -> UnmodelledEffects:
    """The named profile from configs/sim_effects.yaml; unknown names and fields are errors."""
    path = paths.config_path("sim_effects.yaml")
    profiles = paths.read_yaml_mapping(path)
    if name not in profiles:
        raise ValueError(f"{path}: no effects profile '{name}'; known profiles: {sorted(profiles)}")
    values = profiles[name] or {}
    allowed = {f.name for f in fields(UnmodelledEffects)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{path}: profile '{name}' has unknown fields {unknown}; allowed: {sorted(allowed)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return UnmodelledEffects(**values)
