"""The goal MPC in a process of its own, so that the outer loop's tick never waits for a solve.

A plan takes 12-30 ms (cvxpy + Clarabel) against a 2 ms tick. A thread does not solve that:
the solver holds the GIL for milliseconds at a time, and a 500 Hz loop next to a planner
thread ran up to 5.9 ms late (p99 3.2 ms) whatever `sys.setswitchinterval` said. So the
ReferenceMPC lives in a child process (multiprocessing, 'spawn': forking a process that runs
rclpy's threads is not safe) and the tick only sends a request and polls for the answer.

PlannerProcess has the planner interface OuterLoop uses, the same as ReferenceMPC's:
`settings`, `submit(t, q, qd, motion, obstacles) -> bool`, `poll(t) -> MPCResult | None`,
`reset()`, `update(sets=, settings=)`. The difference is timing: a plan for the state at t
arrives a solve later (the plan is stamped t and sampled at the time it is used), and while
one is being solved no other is taken (submit returns False). A reset (new goal) discards
whatever answer was still coming for the old goal.

`lockstep=True` is for a sim that waits for the controller: there, how late a plan comes in
sim time depends on how busy the machine is, so the arm's motion would too. With it, a plan
is taken exactly one replanning period `dt` of sim time after it was asked for: poll(t)
holds an early answer back and waits (up to `LOCKSTEP_WAIT` wall seconds) for a late one.
The sim then sees a planner that just meets its period (in real time a plan takes 12-30 ms
against 40 ms, so this is the worst case), runs repeat, and a loaded machine only makes the
run slower. Never on a real robot: there the tick must not wait.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection

from robot_dyn.control.mpc import MPCResult, MPCSettings, ReferenceMPC, checked_update

LOCKSTEP_WAIT = 2.0  # wall s a lockstep poll waits for a due plan; past it the tick goes on without


def _serve(conn: Connection, robot, sets, settings: MPCSettings, background: bool) -> None:
    """The child: build (and compile) the MPC, then answer requests until told to stop or the parent goes.
    It ignores SIGINT: a Ctrl-C in a terminal reaches the whole process group, and the parent node
    stops the child itself as it shuts down. In the background (real time) it yields its core to the
    loop: its solves (5-10 ms, 25 a second) otherwise held the controller or the sim off a core
    often enough to make 1-2 % of references late; SCHED_BATCH keeps its wakeups from preempting
    them, and niceness 10 gives it a tenth of a contended core, so a plan still comes, later."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if background and hasattr(os, "SCHED_BATCH"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        os.nice(10)
    try:
        mpc = ReferenceMPC(robot, sets, settings)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("failed", repr(exc)))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        kind = message[0]
        if kind == "plan":
            generation, args = message[1], message[2:]
            conn.send(("plan", generation, mpc.plan(*args)))
        elif kind == "reset":
            mpc.reset()
        elif kind == "update":
            mpc.update(sets=message[1], settings=message[2])  # checked by the parent already
        elif kind == "stop":
            return


class PlannerProcess:
    """A ReferenceMPC in a child process; see the module notes. close() when done."""

    def __init__(self, robot, sets, settings: MPCSettings | None = None, start_timeout: float = 120.0,
                 lockstep: bool = False):
        self.sets = sets
        self.lockstep = lockstep
        self.settings = (settings or MPCSettings()).validated()
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        # in lockstep the tick waits for the plan it asked for: the planner keeps the controller's priority
        self._process = context.Process(target=_serve, args=(child, robot, sets, self.settings, not lockstep),
                                        name="robot_dyn-mpc", daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(start_timeout):
            self.close()
            raise RuntimeError(f"the MPC process did not start within {start_timeout:.0f} s")
        answer = self._conn.recv()
        if answer[0] != "ready":
            self.close()
            raise RuntimeError(f"the MPC process could not build the MPC: {answer[1]}")
        self._generation = 0  # bumped by reset(): answers for older goals are dropped
        self._pending = False  # a request is being solved
        self._asked_at = 0.0  # s, the time of the state the pending request plans from
        self.waited_s = 0.0  # wall s spent in lockstep waiting for due plans (the caller's tick times leave it out)
        self.exit_reported = False  # the process died and poll() has said so: no more plans

    def submit(self, t, q, qd, motion, obstacles=None) -> bool:
        """Ask for a plan from the desired state (q, qd) at t; False while the last one is still
        being solved, or when the process has died (poll() then says so once)."""
        if self._pending or self.exit_reported:
            return False
        try:
            self._conn.send(("plan", self._generation, t, q, qd, motion, obstacles))
        except (BrokenPipeError, OSError):
            pass  # the process is gone: poll() finds that out and says so
        self._pending, self._asked_at = True, t
        return True

    def poll(self, t: float | None = None) -> MPCResult | None:
        """The plan asked for, once it is there (None before, and for an answer to an old goal).
        In lockstep, the plan once it is due at t (`dt` after it was asked for), and not before."""
        if not self._pending:
            return None
        wait = 0.0
        if self.lockstep and t is not None:
            if t < self._asked_at + self.settings.dt - 1e-9:
                return None
            wait = LOCKSTEP_WAIT
        try:
            started = time.perf_counter()
            ready = self._conn.poll(wait)
            if wait:
                self.waited_s += time.perf_counter() - started
            if not ready:
                if self._process.is_alive():
                    return None
                raise EOFError
            _, generation, result = self._conn.recv()
        except (EOFError, OSError):
            self.exit_reported, self._pending = True, False
            return MPCResult(None, f"the MPC process exited (code {self._process.exitcode})", 0.0)
        self._pending = False
        return result if generation == self._generation else None

    def reset(self) -> None:
        self._generation += 1
        self._asked_at = -float("inf")  # the old goal's answer is due now (time may also start over): taken, dropped
        if not self.exit_reported:
            try:
                self._conn.send(("reset",))
            except (BrokenPipeError, OSError):
                pass  # the next poll() reports the exit

    def update(self, sets=None, settings: MPCSettings | None = None) -> None:
        """As ReferenceMPC.update; a bad value raises here, in the caller's process."""
        self.sets, self.settings = checked_update(self.sets, self.settings, sets, settings)
        self._conn.send(("update", sets, settings))

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
            self._process.join(2.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
