"""LuGre joint friction (Canudas de Wit et al., IEEE TAC 1995): an effect with memory.

A bristle deflection z per joint (rad) gives presliding hysteresis, and the Stribeck
curve gives stick-slip, both of which a rigid-body model plus memoryless friction
cannot express:
    dz/dt = v - sigma0 |v| z / g(v),   g(v) = Fc + (Fs - Fc) exp(-(v / vs)^2)
    F     = sigma0 z + sigma1 dz/dt + sigma2 v      (Nm, opposing motion)
Written here because no maintained Python package provides it for a simulator loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LuGreParameters:
    """Per-joint arrays: coulomb Fc and static Fs (Nm), stribeck_velocity vs (rad/s),
    stiffness sigma0 (Nm/rad), damping sigma1 (Nm s/rad), viscous sigma2 (Nm s/rad; the sim's
    viscous friction is MuJoCo joint damping instead, so the effects profile sets it to 0)."""

    coulomb: np.ndarray
    static: np.ndarray
    stribeck_velocity: np.ndarray
    stiffness: np.ndarray
    damping: np.ndarray
    viscous: np.ndarray


def stribeck(params: LuGreParameters, v: np.ndarray) -> np.ndarray:
    """g(v) (Nm): the steady-state friction magnitude at joint velocity v."""
    return params.coulomb + (params.static - params.coulomb) * np.exp(-(v / params.stribeck_velocity) ** 2)


def lugre_step(params: LuGreParameters, z: np.ndarray, v: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Advance the bristle state over dt at velocity v; returns (z_next, friction torque F).

    The z equation is stiff (sigma0 large), so it is integrated implicitly in z, which is
    unconditionally stable: z+ = (z + v dt) / (1 + sigma0 |v| dt / g(v)).
    """
    g = stribeck(params, v)
    z_next = (z + v * dt) / (1.0 + params.stiffness * np.abs(v) * dt / g)
    dz = (z_next - z) / dt
    return z_next, params.stiffness * z_next + params.damping * dz + params.viscous * v
