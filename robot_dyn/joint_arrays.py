"""Per-joint settings given as one number (all joints) or one number per joint."""
from __future__ import annotations

import numpy as np


def joint_vector(name: str, raw, n: int, minimum: str = "none") -> np.ndarray:
    """(n,) float array from a number or n numbers; ValueError naming `name` otherwise.

    minimum: "none", "nonnegative" (>= 0) or "positive" (> 0).
    """
    kind = {"none": "finite", "nonnegative": "finite non-negative", "positive": "positive"}[minimum]
    error = ValueError(f"'{name}' must be one or {n} {kind} numbers, got {raw!r}")
    try:
        values = np.full(n, float(raw)) if np.isscalar(raw) else np.asarray(raw, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise error from None
    if values.size == 1 and n != 1:
        values = np.full(n, values[0])
    if values.shape != (n,) or not np.all(np.isfinite(values)):
        raise error
    if (minimum == "nonnegative" and np.any(values < 0)) or (minimum == "positive" and np.any(values <= 0)):
        raise error
    return values
