"""Sparse control particles from tracked Gaussians, and the tool particle, for particle-based
(graph neural network) dynamics models.

Following Zhang, Zhang, Li (CoRL 2024), the object is represented for dynamics by N particles
taken from the tracked Gaussians by farthest-point sampling (FPS): FPS spreads them evenly over
the object whatever the Gaussians' density, and `min_spacing` stops the sampling early on a
small object instead of packing particles closer than the model's interaction radius. A
particle is a Gaussian, so its trajectory is that Gaussian's tracked centre over the episode.

The tool (the pusher) is one more particle, placed by the robot's forward kinematics, not by
vision: the end-effector position plus a fixed offset along the end-effector's z axis (for
the episodes' pusher, the tip sphere's centre, `pusher.length` beyond the flange).

Units: metres, world frame (z up).
"""
from __future__ import annotations

import numpy as np


def sample_particles(means: np.ndarray, n: int, min_spacing: float = 0.0, seed: int = 0) -> np.ndarray:
    """Indices (N,) into `means` (G, 3) of N <= n particles picked by farthest-point sampling.

    The first is drawn at random (seeded); each next one is the point farthest from those
    picked, until n are picked or the farthest is closer than min_spacing (m) to them. Every
    pair of particles is then at least min_spacing apart."""
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] != 3 or len(means) == 0:
        raise ValueError(f"means must have shape (G, 3) with G >= 1, got {means.shape}")
    if not np.all(np.isfinite(means)):
        raise ValueError("means contains NaN or inf")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of particles) must be a positive integer, got {n!r}")
    if not np.isfinite(min_spacing) or min_spacing < 0:
        raise ValueError(f"min_spacing must be a non-negative number (m), got {min_spacing!r}")
    first = int(np.random.default_rng(seed).integers(len(means)))
    picked = [first]
    dist = np.linalg.norm(means - means[first], axis=1)
    while len(picked) < min(n, len(means)):
        nxt = int(np.argmax(dist))
        if dist[nxt] < min_spacing or dist[nxt] == 0:
            break
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(means - means[nxt], axis=1))
    return np.array(picked, dtype=np.int64)


def particle_trajectories(means: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Trajectories (T, N, 3) m of the particles `indices` (N,) of tracked means (T, G, 3)."""
    means = np.asarray(means)
    if means.ndim != 3 or means.shape[2] != 3:
        raise ValueError(f"means must have shape (T, G, 3), got {means.shape}")
    return means[:, np.asarray(indices)]


def tool_particle(ee_position: np.ndarray, ee_rotation: np.ndarray | None = None, offset: float = 0.0) -> np.ndarray:
    """The tool particle(s), (..., 3) m: the end-effector position (..., 3) from forward kinematics
    plus `offset` m along the end-effector's z axis (ee_rotation (..., 3, 3), world <- ee)."""
    p = np.asarray(ee_position, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"ee_position must end in 3 coordinates, got shape {p.shape}")
    if offset == 0.0:
        return p.copy()
    if ee_rotation is None:
        raise ValueError("ee_rotation is needed for a non-zero tool offset")
    R = np.asarray(ee_rotation, dtype=np.float64)
    if R.shape != p.shape[:-1] + (3, 3):
        raise ValueError(f"ee_rotation must have shape {p.shape[:-1] + (3, 3)}, got {R.shape}")
    return p + R[..., :, 2] * offset
