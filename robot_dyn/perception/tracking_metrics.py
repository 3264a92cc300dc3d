"""Scoring a tracker against ground-truth points, the same way for every tracker.

A tracker's output is reduced to "tracked points" (T, M, 3), m, world frame: M points of the
object followed over T frames (Gaussian centres, or the points of a point-cloud tracker). The
ground truth is another set of points (T, V, 3) -- for the rope, its V simulation vertices,
which lie on the rope's centreline while cameras (and so every tracker) see its surface,
about one radius (7 mm) away.

Attachment (`attach`): at frame 0 each ground-truth point is tied to its k nearest tracked
points, with inverse-distance weights. Propagation (`propagate`): at frame t the weighted
least-squares rigid motion (Kabsch) of those k tracked points from frame 0 to frame t moves the
ground-truth point. The attachment is made with the ground truth of frame 0, so the constant
surface-to-centreline offset cancels, and because the offset turns with the local patch's
rotation it stays right when the rope bends or turns; a translation-only attachment would err
by up to offset x angle (~3.5 mm for a 0.5 rad turn). The patch of k neighbours must not be
collinear (then the rotation about that line is undetermined); on a rope's visible surface
it is a strip, not a line.

Errors (`score`): |propagated - truth| for every point and frame after the first:
median_3d_error_mm (over all of them), survival_rate (share of ground-truth points whose
error stays within 5 cm in every frame), and context: the error's mean and 90th percentile,
the final frame's median, and the median over only the points that have moved more than 1 cm
from where they started (most of a pushed rope stays put, which the plain median hides).
`no_motion` scores a tracker that reports no motion, the floor any tracker must beat.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SURVIVAL_RADIUS = 0.05  # m
MOVING = 0.01  # m, a ground-truth point counts as moving once it is this far from its start


@dataclass(frozen=True)
class Attachment:
    """Ground-truth points tied to tracked points: indices (V, k) into the tracked points,
    weights (V, k) summing to 1, and each ground-truth point at frame 0 (V, 3) m."""

    indices: np.ndarray
    weights: np.ndarray
    points0: np.ndarray


def _check_points(name: str, a, dims: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != dims or a.shape[-1] != 3:
        want = "(M, 3)" if dims == 2 else "(T, M, 3)"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def attach(truth0: np.ndarray, tracked0: np.ndarray, k: int = 16) -> Attachment:
    """Tie each ground-truth point truth0 (V, 3) to its k nearest of tracked0 (M, 3), frame 0."""
    truth0, tracked0 = _check_points("truth0", truth0, 2), _check_points("tracked0", tracked0, 2)
    if len(tracked0) < 3:
        raise ValueError(f"tracked0: need at least 3 tracked points to attach to, got {len(tracked0)}")
    k = min(k, len(tracked0))
    d = np.linalg.norm(truth0[:, None] - tracked0[None], axis=-1)
    idx = np.argsort(d, axis=1)[:, :k]
    w = 1.0 / (np.take_along_axis(d, idx, 1) + 1e-4)
    return Attachment(idx, w / w.sum(1, keepdims=True), truth0)


def propagate(attachment: Attachment, tracked: np.ndarray) -> np.ndarray:
    """The attached ground-truth points (T, V, 3) moved with the tracked points (T, M, 3)."""
    return rigid_patches(attachment, tracked)[0]


def rigid_patches(attachment: Attachment, tracked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The attached points moved with the tracked points (T, M, 3): their positions (T, V, 3) and each one's
    patch rotation (T, V, 3, 3) from frame 0 (what turns an attached frame or Gaussian with the patch)."""
    tracked = _check_points("tracked", tracked, 3)
    idx, w = attachment.indices, attachment.weights[None, :, :, None]  # (1, V, k, 1)
    P0 = tracked[0][idx][None]  # (1, V, k, 3)
    Pt = tracked[:, idx]  # (T, V, k, 3)
    c0, ct = (w * P0).sum(2), (w * Pt).sum(2)  # weighted centroids (.., V, 3)
    H = np.einsum("tvki,tvkj->tvij", w * (P0 - c0[:, :, None]), Pt - ct[:, :, None])  # (T, V, 3, 3)
    U, _, Vt = np.linalg.svd(H)
    D = np.ones(U.shape[:-1])
    D[..., -1] = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    R = np.swapaxes(Vt, -1, -2) @ (D[..., None] * np.swapaxes(U, -1, -2))  # Kabsch: frame 0 -> t
    return ct + np.einsum("tvij,tvj->tvi", R, attachment.points0[None] - c0), R


def errors(tracked: np.ndarray, truth: np.ndarray, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per-point errors (T - 1, V) m of tracked points (T, M, 3) against ground truth (T, V, 3)
    in every frame after the first, and which of them belong to moving points (T - 1, V) bool."""
    tracked, truth = _check_points("tracked", tracked, 3), _check_points("truth", truth, 3)
    if len(tracked) != len(truth) or len(truth) < 2:
        raise ValueError(f"tracked and truth must cover the same frames (at least 2), "
                         f"got {len(tracked)} and {len(truth)}")
    estimate = propagate(attach(truth[0], tracked[0], k), tracked)
    err = np.linalg.norm(estimate - truth, axis=-1)[1:]
    return err, np.linalg.norm(truth - truth[:1], axis=-1)[1:] > MOVING


def summarise(errs: list[np.ndarray], moving: list[np.ndarray]) -> dict:
    """Pooled figures (mm, shares) over one or more episodes' `errors` (see the module notes)."""
    flat = np.concatenate([e.ravel() for e in errs])
    flat_moving = np.concatenate([e[m] for e, m in zip(errs, moving)])
    return {
        "median_3d_error_mm": float(np.median(flat) * 1e3),
        "survival_rate": float(np.mean(np.concatenate([e.max(axis=0) for e in errs]) <= SURVIVAL_RADIUS)),
        "mean_3d_error_mm": float(flat.mean() * 1e3),
        "p90_3d_error_mm": float(np.percentile(flat, 90) * 1e3),
        "final_median_3d_error_mm": float(np.median(np.concatenate([e[-1] for e in errs])) * 1e3),
        "moving_median_3d_error_mm": float(np.median(flat_moving) * 1e3) if flat_moving.size else None,
        "n_points": int(sum(e.shape[1] for e in errs)),
        "n_point_frames": int(flat.size),
    }


def score(tracked: np.ndarray, truth: np.ndarray, k: int = 16) -> dict:
    """Errors of tracked points (T, M, 3) against ground truth (T, V, 3), one episode; mm."""
    return summarise(*([a] for a in errors(tracked, truth, k)))


def no_motion(truth: np.ndarray) -> dict:
    """The score of a tracker that reports no motion at all (every point stays where it started)."""
    truth = _check_points("truth", truth, 3)
    return score(np.repeat(truth[:1], len(truth), axis=0), truth)
