"""What the tasks' scripted experts share: a phase (and since when), done, and a time after which a
person gives up. The experts (insert_expert, pusht_expert) are Phased subclasses; their command()
starts with `if self.gives_up(t): return None`."""
from __future__ import annotations


class Phased:
    """A phase machine on the command's clock (s); 'done' ends it."""

    def __init__(self, first_phase: str, give_up_s: float):
        self.phase, self.phase_since = first_phase, None
        self.entered_at: dict[str, float] = {}  # phase -> the time (s) it was first entered
        self.give_up_s = give_up_s  # s after the first command
        self._began = None  # s, the first command's time

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def _enter(self, phase: str, t: float) -> None:
        self.phase, self.phase_since = phase, t
        self.entered_at.setdefault(phase, t)

    def gives_up(self, t: float) -> bool:
        """Start the clocks at the first command; True (and done) once give_up_s have passed: the episode
        is a failure, as a person's who stops trying."""
        if self.phase_since is None:
            self.phase_since = t
        if self._began is None:
            self._began = t
        if t - self._began > self.give_up_s:
            self._enter("done", t)
            return True
        return False
