"""Search paths: where the peg's tip goes, relative to the nominal hole, while it searches.

A SearchPath is a time-sampled curve of offsets from the nominal hole on the fixture's surface
(2D: x, y in the base frame's axes, m), starting at the origin (the nominal hole, where a search
begins). Four generators, the strategies of the search benchmark:
- spiral: the industrial baseline, an Archimedean spiral at a constant angular frequency (about
  0.15 Hz) and pitch (about 1.3 mm per turn);
- random_walk: the naive baseline, a constant-speed walk with a random heading, kept inside the
  uncertainty radius;
- sampling: points drawn from the learned exploration distribution (robot_dyn.search.model),
  toured greedily nearest-first and joined by a smooth spline, traversed at constant speed;
- ergodic: spectral multiscale coverage (Mathew and Mezic 2011), a feedback law that drives the
  time-averaged Fourier coefficients of the path to those of the learned distribution
  (robot_dyn.search.ergodic).
Each is a pure function of its parameters (and a seeded generator), so a search can be replayed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SearchPath:
    """Offsets (N, d) m from the nominal hole at times t (N,) s from the search's start; metric: the
    ergodic metric over time where the generator logs one (N,), else empty."""

    t: np.ndarray
    offsets: np.ndarray
    strategy: str
    metric: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        self.t, self.offsets = np.asarray(self.t, float), np.asarray(self.offsets, float)
        if self.t.ndim != 1 or self.offsets.ndim != 2 or len(self.t) != len(self.offsets) or len(self.t) < 2:
            raise ValueError(f"search path: t (N,) and offsets (N, d) with N >= 2, got {self.t.shape} and {self.offsets.shape}")
        if np.any(np.diff(self.t) <= 0) or not np.all(np.isfinite(self.offsets)):
            raise ValueError("search path: times must increase and offsets be finite")

    @property
    def duration(self) -> float:
        return float(self.t[-1] - self.t[0])

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Offset (d,) m and velocity (d,) m/s at time t (s from the start; held at the end)."""
        t = float(np.clip(t, self.t[0], self.t[-1]))
        k = int(np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(self.t) - 2))
        h = self.t[k + 1] - self.t[k]
        velocity = (self.offsets[k + 1] - self.offsets[k]) / h
        return self.offsets[k] + velocity * (t - self.t[k]), velocity

    def length(self) -> float:
        """Path length, m."""
        return float(np.linalg.norm(np.diff(self.offsets, axis=0), axis=1).sum())


def spiral_path(duration: float, frequency: float = 0.15, pitch: float = 0.0013, dt: float = 0.02,
                phase: float = 0.0, direction: float = 1.0) -> SearchPath:
    """Archimedean spiral r = pitch * turns at `frequency` turns/s (Hz) from the origin: the industrial
    search (about 0.15 Hz and 1.3 mm pitch)."""
    t = np.arange(0.0, duration + dt / 2, dt)
    turns = frequency * t
    angle = direction * 2 * np.pi * turns + phase
    r = pitch * turns
    return SearchPath(t, np.column_stack([r * np.cos(angle), r * np.sin(angle)]), "spiral")


def random_walk_path(duration: float, speed: float, radius: float, rng: np.random.Generator, dt: float = 0.02,
                     turn_rate: float = 3.0) -> SearchPath:
    """A walk at `speed` m/s whose heading diffuses at `turn_rate` rad/sqrt(s), turned back toward the
    origin whenever it would leave the disc of `radius` m: the naive baseline."""
    n = int(np.ceil(duration / dt)) + 1
    offsets = np.zeros((n, 2))
    heading = rng.uniform(0, 2 * np.pi)
    for k in range(1, n):
        heading += turn_rate * np.sqrt(dt) * rng.standard_normal()
        step = speed * dt * np.array([np.cos(heading), np.sin(heading)])
        if np.linalg.norm(offsets[k - 1] + step) > radius:  # reflect: head back in, at a random angle
            inward = -offsets[k - 1] / max(np.linalg.norm(offsets[k - 1]), 1e-12)
            heading = np.arctan2(inward[1], inward[0]) + rng.uniform(-np.pi / 3, np.pi / 3)
            step = speed * dt * np.array([np.cos(heading), np.sin(heading)])
        offsets[k] = offsets[k - 1] + step
    return SearchPath(np.arange(n) * dt, offsets, "random")


def tour_path(points: np.ndarray, speed: float, dt: float = 0.02, strategy: str = "sampling", nearest_first: bool = True,
              speed_profile=None) -> SearchPath:
    """A smooth path from the origin through `points` (M, d) m, visited nearest-first (else in their
    order), traversed at `speed` m/s (times speed_profile(arc length m), if given): a shape-preserving
    cubic (scipy's PCHIP per axis over the chord length: smooth, and never past its neighbouring
    points, unlike an interpolating spline, which swings wide where points crowd), resampled by arc length."""
    from scipy.interpolate import PchipInterpolator

    points = np.asarray(points, float)
    order = list(range(len(points)))
    if nearest_first:  # greedy nearest neighbour: a short tour without solving a TSP
        here, left, order = np.zeros(points.shape[1]), order, []
        while left:
            nearest = min(left, key=lambda i: np.linalg.norm(points[i] - here))
            order.append(nearest)
            left.remove(nearest)
            here = points[nearest]
    stops = np.vstack([np.zeros(points.shape[1]), points[order]])
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(stops, axis=0), axis=1))])
    keep = np.concatenate([[True], np.diff(chord) > 1e-6])  # repeated points would break the interpolation
    stops, chord = stops[keep], chord[keep]
    spline = PchipInterpolator(chord, stops, axis=0)
    fine = spline(np.linspace(0.0, chord[-1], max(200, int(chord[-1] / 1e-4))))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(fine, axis=0), axis=1))])
    pace = speed * (np.ones_like(arc) if speed_profile is None else np.asarray(speed_profile(arc), float))
    # the time at each arc length, then the arc length at each time step
    at = np.concatenate([[0.0], np.cumsum(np.diff(arc) / (0.5 * (pace[1:] + pace[:-1])))])
    t = np.arange(0.0, at[-1] + dt / 2, dt)
    s = np.interp(t, at, arc)
    return SearchPath(t, np.column_stack([np.interp(s, arc, fine[:, j]) for j in range(fine.shape[1])]), strategy)


def wandering_path(duration: float, speed: float, spread: float, rng: np.random.Generator, dt: float = 0.02) -> SearchPath:
    """How a person searches (the scripted operator's demonstrations): toward one point after another
    drawn from their belief about the hole, a Gaussian of std `spread` m around the nominal one
    (clipped at 2 spread), in the order they come to mind, along curves, at `speed` m/s give or take
    a third (faster across, slower where they look closely)."""
    count = max(4, int(duration * speed / spread) + 2)
    points = rng.normal(0.0, spread, size=(count, 2))
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    points = np.where(norms > 2 * spread, points * (2 * spread / np.maximum(norms, 1e-12)), points)
    wavelength, phase = rng.uniform(0.006, 0.012), rng.uniform(0, 2 * np.pi)
    path = tour_path(points, speed, dt, "wandering", nearest_first=False,
                     speed_profile=lambda arc: 1.0 + 0.35 * np.sin(2 * np.pi * arc / wavelength + phase))
    return path if path.duration >= duration else wandering_path(2 * duration, speed, spread, rng, dt)


def sampling_path(model, duration: float, speed: float, rng: np.random.Generator, dt: float = 0.02,
                  spacing: float = 0.002) -> SearchPath:
    """Points drawn from the learned exploration distribution (model.sample), enough for the path to
    last `duration` s at `speed` m/s with about `spacing` m between them, toured nearest-first."""
    count = max(2, int(duration * speed / spacing))
    path = tour_path(model.sample(count, rng), speed, dt)
    while path.duration < duration:  # the tour was shorter than planned: tour a fresh draw after it
        more = tour_path(model.sample(count, rng) - path.offsets[-1], speed, dt)
        path = SearchPath(np.concatenate([path.t, path.t[-1] + more.t[1:]]),
                          np.vstack([path.offsets, path.offsets[-1] + more.offsets[1:]]), "sampling")
    return path
