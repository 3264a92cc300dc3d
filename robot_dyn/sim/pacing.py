"""When the simulation advances: lockstep with the outer loop, or paced by the wall clock.

lockstep: each outer tick waits for the reference stamped for it. If none comes within
  `lockstep_timeout` of wall time (the controller died or stalled), the sim runs on at
  real-time pace, so the robot layer's watchdog sees sim time pass. The first reference
  that comes back, for whatever tick, ends that: the sim waits again for the reference of
  its current tick (a controller that has fallen behind answers old ticks first, and may
  never answer one within a tick period, so waiting for an exact answer would keep the
  sim free-running, and every reference stale, for good). Before the very first
  reference the sim does not advance (it repeats its state).
realtime: ticks follow the wall clock.
Catch-up is capped at `max_catch_up` ticks per call; a longer backlog is dropped once and
counted in `missed_ticks` (the sim then runs behind the wall clock rather than in bursts).
"""
from __future__ import annotations

import math


class Pacer:
    def __init__(self, mode: str, tick_period: float, lockstep_timeout: float, max_catch_up: int = 10,
                 republish_period: float = 0.1):
        if mode not in ("lockstep", "realtime"):
            raise ValueError(f"mode must be 'lockstep' or 'realtime', got '{mode}'")
        self.mode, self.period = mode, tick_period
        self.timeout, self.max_catch_up, self.republish_period = lockstep_timeout, max_catch_up, republish_period
        self.referenced = False  # a reference has arrived at least once
        self.answered = False  # lockstep: the reference for the current tick has arrived
        self.anchor: tuple[float, int] | None = None  # (wall s, ticks done) of wall-clock pacing
        self.ticks = 0
        self.last_advance_wall = -math.inf
        self.missed_ticks = 0

    def start(self, wall: float) -> None:
        self.last_advance_wall = wall
        if self.mode == "realtime":
            self.anchor = (wall, 0)

    def on_reference(self, stamp: float, sim_time: float, wall: float) -> bool:
        """A reference arrived at `wall`; True if lockstep should advance one tick now."""
        self.referenced = True
        if self.mode != "lockstep":
            return False
        if self.anchor is not None:  # the controller is back: lockstep again, the timeout restarts
            self.anchor = None
            self.last_advance_wall = wall
        if self.answered or stamp < sim_time - 1e-9:
            return False
        self.answered = True
        return True

    def on_timer(self, wall: float) -> int:
        """Ticks to advance now by the wall clock (0 while lockstep waits for its reference)."""
        if self.mode == "lockstep":
            if not self.referenced:
                return 0
            if self.anchor is None:
                if wall - self.last_advance_wall <= self.timeout:
                    return 0
                self.anchor = (wall, self.ticks)  # the controller went quiet: run on in real time
        wall0, ticks0 = self.anchor
        due = int((wall - wall0) / self.period) - (self.ticks - ticks0)
        if due > self.max_catch_up:
            dropped = due - self.max_catch_up
            self.missed_ticks += dropped
            self.anchor = (wall0, ticks0 - dropped)
            due = self.max_catch_up
        return max(due, 0)

    @property
    def free_running(self) -> bool:
        return self.mode == "lockstep" and self.anchor is not None

    def advanced(self, wall: float) -> None:
        """One tick was advanced."""
        self.ticks += 1
        self.answered = False
        self.last_advance_wall = wall

    def republish_due(self, wall: float) -> bool:
        """Before the first reference: time to repeat the unchanged state (discovery may be late)."""
        if self.referenced or self.mode != "lockstep" or wall - self.last_advance_wall <= self.republish_period:
            return False
        self.last_advance_wall = wall
        return True
