"""The tool's contact force in a task scene averaged over physics steps, as a force sensor's filter
reports it. A stiff contact's force alternates from one physics step to the next, so a sample at each
tick's end (one step in two at 1 kHz physics and 500 Hz ticks) reads about twice the true average at
the peaks; the sim node's /task/contact_wrench and the in-process episodes both average every step."""
from __future__ import annotations

import numpy as np


class ContactForceMean:
    """Sums an episode's contact force (3,) N, base frame, after every physics step (`add`, a
    SimulatedArm after_step hook) and gives the mean since the last `take`."""

    def __init__(self, episode, model, data):
        self.episode, self.model, self.data = episode, model, data
        self._sum, self._steps = np.zeros(3), 0

    def add(self) -> None:
        self._sum += self.episode.contact_force(self.model, self.data)
        self._steps += 1

    def take(self) -> np.ndarray | None:
        """The mean force (3,) N over the steps added since the last take (None if none), and a fresh start."""
        mean = self._sum / self._steps if self._steps else None
        self._sum, self._steps = np.zeros(3), 0
        return mean
