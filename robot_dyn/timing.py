"""Tick-time statistics kept by loops and reported by nodes, jobs and benchmarks."""
from __future__ import annotations

import numpy as np


class TickTimer:
    """Keeps the last `window` durations (s) and reports percentiles in microseconds."""

    def __init__(self, window: int = 20000):
        self._values = np.zeros(window)
        self._count = 0

    def add(self, seconds: float) -> None:
        self._values[self._count % self._values.size] = seconds
        self._count += 1

    @property
    def count(self) -> int:
        return self._count

    def summary(self, prefix: str = "", recent: int | None = None) -> dict:
        """{prefix+'us_p50', prefix+'us_p99', prefix+'us_max', prefix+'count'} over the window, or over the
        last `recent` durations (diagnostics: percentiles of the whole window took 0.3 ms a timer, which
        held a 500 Hz loop's next answer up); 'count' is always the total. Empty if nothing was timed."""
        stored = min(self._count, self._values.size)
        if recent is not None and recent < stored:
            end = self._count % self._values.size
            values = np.take(self._values, np.arange(end - recent, end), mode="wrap") * 1e6
        else:
            values = self._values[:stored] * 1e6
        if values.size == 0:
            return {f"{prefix}count": 0}
        p50, p99 = np.percentile(values, [50, 99])
        return {
            f"{prefix}us_p50": float(p50),
            f"{prefix}us_p99": float(p99),
            f"{prefix}us_max": float(values.max()),
            f"{prefix}count": int(self._count),
        }


class Decimator:
    """Lets through one sample per `period` (s) of a faster, possibly jittery stamped stream.

    Ticks when t reaches the previous tick + period (less a quarter period of jitter), so a
    1 kHz stream at period 2 ms gives exactly every other sample; a stamp earlier than the
    last tick (a restarted clock) always passes.
    """

    def __init__(self, period: float):
        self.period = period
        self.last = -float("inf")

    def due(self, t: float) -> bool:
        if t < self.last or t >= self.last + 0.75 * self.period:
            self.last = t
            return True
        return False
