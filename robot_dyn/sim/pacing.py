"""When the simulation advances: lockstep with the outer loop, or paced by the wall clock.

lockstep: the sim advances from tick k to k+1 once it holds a reference stamped for tick k or
  later. The controller sends each reference as soon as it has computed it, a tick ahead (the
  reference for tick k+1 from the state of tick k), and the sim keeps it until its time: the
  sim's step and the controller's compute then overlap, and every run is the same whatever the
  machine's load. If no reference comes within `lockstep_timeout` of wall time (the controller
  died or stalled), the sim runs on at real-time pace, so the robot layer's watchdog sees sim
  time pass; the first reference that comes back, for whatever tick, ends that. Before the very
  first reference the sim does not advance (it repeats its state).
realtime: ticks follow the wall clock: tick k is due k periods after the start (the node's timer
  fires at the tick period, so each firing advances one tick).
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
        self.newest = -math.inf  # s, the newest reference stamp received
        self.anchor: tuple[float, int] | None = None  # (wall s, ticks done) of wall-clock pacing
        self.ticks = 0
        self.last_advance_wall = -math.inf
        self.missed_ticks = 0

    @property
    def referenced(self) -> bool:
        """A reference has arrived at least once."""
        return self.newest > -math.inf

    def start(self, wall: float) -> None:
        self.last_advance_wall = wall
        if self.mode == "realtime":
            self.anchor = (wall, 0)

    def on_reference(self, stamp: float, wall: float) -> None:
        """A reference stamped `stamp` (s) arrived at `wall`."""
        self.newest = max(self.newest, stamp)
        if self.mode == "lockstep" and self.anchor is not None:  # the controller is back: lockstep again
            self.anchor = None
            self.last_advance_wall = wall

    def ready(self, sim_time: float) -> bool:
        """Lockstep: the sim holds a reference for its current tick (or a later one) and may advance."""
        return self.mode == "lockstep" and self.anchor is None and self.newest >= sim_time - 1e-9

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
        # ticks whose time has come, to the nearest: a timer firing at the tick period, a little late or
        # early, then advances exactly one tick each time (with the floor, one that fired a hair before
        # a tick's time advanced none, and the next one two, back to back)
        due = int((wall - wall0) / self.period + 0.5) - (self.ticks - ticks0)
        if due > self.max_catch_up:
            dropped = due - self.max_catch_up
            self.missed_ticks += dropped
            self.anchor = (wall0, ticks0 - dropped)
            due = self.max_catch_up
        return max(due, 0)

    @property
    def free_running(self) -> bool:
        return self.mode == "lockstep" and self.anchor is not None

    @property
    def paced_by_wall_clock(self) -> bool:
        """Ticks follow the wall clock now (realtime, or a lockstep sim running on without references)."""
        return self.anchor is not None

    def advanced(self, wall: float) -> None:
        """One tick was advanced."""
        self.ticks += 1
        self.last_advance_wall = wall

    def republish_due(self, wall: float) -> bool:
        """Before the first reference: time to repeat the unchanged state (discovery may be late)."""
        if self.referenced or self.mode != "lockstep" or wall - self.last_advance_wall <= self.republish_period:
            return False
        self.last_advance_wall = wall
        return True
