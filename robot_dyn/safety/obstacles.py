"""Moving obstacles from a stream of shape descriptions (the controller feeds it MarkerArrays).

Each obstacle has a key (namespace, id). An update adds or moves it; its velocity is the
finite difference of its last two positions (m/s), so the filter's barrier rates see a
moving obstacle coming. Updates with a bad shape or frame are rejected with a reason
and change nothing; an obstacle not refreshed within its lifetime is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robot_dyn.safety.sets import Obstacle, SafetyConfigError, obstacle_from_fields

SPHERE, CYLINDER = "sphere", "cylinder"


@dataclass
class ObstacleUpdate:
    """One shape in the base frame: a sphere (radius) or an upright-in-its-frame cylinder
    (radius, half_length along `axis`), centred at `center` (m). lifetime 0 = until deleted."""

    key: tuple
    shape: str
    center: np.ndarray
    radius: float
    half_length: float = 0.0
    axis: np.ndarray | None = None
    stamp: float = 0.0  # s
    lifetime: float = 0.0  # s


class ObstacleTracker:
    def __init__(self, max_obstacles: int = 16):
        self.max_obstacles = max_obstacles
        self._items: dict[tuple, tuple[Obstacle, float, float]] = {}  # key -> (obstacle, stamp, lifetime)

    def update(self, u: ObstacleUpdate) -> None:
        """Add or move one obstacle; raises SafetyConfigError naming what is wrong (nothing changes)."""
        name = f"{u.key[0]}/{u.key[1]}" if u.key[0] else str(u.key[1])
        if u.shape == SPHERE:
            new = obstacle_from_fields(name, "sphere", u.radius, center=u.center, where="marker")
        elif u.shape == CYLINDER:
            center = np.asarray(u.center, float)
            axis = np.asarray(u.axis, float)
            if not (np.isfinite(u.half_length) and u.half_length > 0) or axis.shape != (3,) or not np.isfinite(axis).all():
                raise SafetyConfigError(f"marker '{name}': a cylinder needs a positive height and a finite axis")
            # the capsule through the cylinder's axis with its radius covers the cylinder
            new = obstacle_from_fields(name, "capsule", u.radius, start=center - u.half_length * axis,
                                       end=center + u.half_length * axis, where="marker")
        else:
            raise SafetyConfigError(f"marker '{name}': shape '{u.shape}' is not supported (sphere or cylinder)")
        if not np.isfinite(u.stamp) or u.lifetime < 0:
            raise SafetyConfigError(f"marker '{name}': bad stamp or lifetime")
        if u.key not in self._items and len(self._items) >= self.max_obstacles:
            raise SafetyConfigError(f"marker '{name}': already tracking {self.max_obstacles} obstacles (the limit)")
        old = self._items.get(u.key)
        if old is not None and u.stamp > old[1]:
            velocity = ((new.start + new.end) - (old[0].start + old[0].end)) / 2 / (u.stamp - old[1])
            new = replace(new, velocity=velocity)
        self._items[u.key] = (new, u.stamp, u.lifetime)

    def delete(self, key: tuple | None) -> None:
        """Remove one obstacle (key) or all (None)."""
        if key is None:
            self._items.clear()
        else:
            self._items.pop(key, None)

    def current(self, now: float) -> tuple[Obstacle, ...]:
        """The obstacles still alive at time `now` (s)."""
        expired = [k for k, (_, stamp, life) in self._items.items() if life > 0 and now - stamp > life]
        for k in expired:
            del self._items[k]
        return tuple(obs for obs, _, _ in self._items.values())
