"""When the simulation advances: lockstep, its real-time fallback, and wall-clock pacing."""
import pytest

from robot_dyn.sim.pacing import Pacer

P = 0.002


def test_lockstep_waits_for_the_first_reference_and_repeats_the_state():
    p = Pacer("lockstep", P, lockstep_timeout=0.1)
    p.start(0.0)
    assert p.on_timer(5.0) == 0  # no controller yet: time does not pass
    assert p.republish_due(5.0) and not p.republish_due(5.05)


def test_lockstep_advances_once_it_holds_a_reference_for_the_current_tick():
    p = Pacer("lockstep", P, lockstep_timeout=0.1)
    p.start(0.0)
    assert not p.ready(0.0)
    p.on_reference(stamp=0.0, wall=0.0)
    assert p.ready(0.0)
    p.advanced(0.001)
    assert not p.ready(P)  # the next tick needs its own reference
    p.on_reference(stamp=0.0, wall=0.001)  # a repeated old one does not do
    assert not p.ready(P)
    p.on_reference(stamp=2 * P, wall=0.001)  # sent a tick ahead: covers this tick and the next
    assert p.ready(P) and p.ready(2 * P) and not p.ready(3 * P)


def test_silent_controller_makes_lockstep_run_on_in_real_time_then_return():
    p = Pacer("lockstep", P, lockstep_timeout=0.1)
    p.start(0.0)
    p.on_reference(0.0, 0.0)
    p.advanced(0.0)
    assert p.on_timer(0.05) == 0  # within the timeout: still waiting
    assert p.on_timer(0.2) == 0 and p.free_running and p.paced_by_wall_clock  # timed out: real-time pacing starts now
    assert not p.ready(P)  # while free-running, the wall clock decides
    assert p.on_timer(0.2 + 5 * P + 1e-6) == 5
    for _ in range(5):
        p.advanced(0.21)
    p.on_reference(stamp=6 * P, wall=0.211)
    assert not p.free_running and p.ready(6 * P)


def test_a_late_reference_ends_free_running_and_lockstep_waits_for_the_current_tick():
    """A controller that is back but behind answers an old tick: the sim stops and waits for it."""
    p = Pacer("lockstep", P, lockstep_timeout=0.1)
    p.start(0.0)
    p.on_reference(0.0, 0.0)
    p.advanced(0.0)
    assert p.on_timer(0.2) == 0 and p.on_timer(0.2 + 8 * P + 1e-6) == 8
    for _ in range(8):
        p.advanced(0.24)
    p.on_reference(stamp=3 * P, wall=0.25)  # an old tick: no advance...
    assert not p.ready(9 * P)
    assert not p.free_running and p.on_timer(0.3) == 0  # ...but no more free-running: waiting again
    p.on_reference(stamp=9 * P, wall=0.31)  # the current tick's answer
    assert p.ready(9 * P)
    p.advanced(0.31)
    assert p.on_timer(0.31 + 0.1 + 1e-6) == 0 and p.free_running  # silent again: the timeout restarted at 0.31


def test_realtime_backlog_is_capped_dropped_once_and_counted_once():
    p = Pacer("realtime", P, lockstep_timeout=0.1, max_catch_up=10)
    p.start(0.0)
    assert p.paced_by_wall_clock and not p.ready(0.0)
    assert p.on_timer(3 * P + 1e-6) == 3
    for _ in range(3):
        p.advanced(0.0)
    assert p.on_timer(1.0) == 10  # a 1 s stall: 497 ticks due, 10 run, the rest dropped
    for _ in range(10):
        p.advanced(1.0)
    assert p.missed_ticks == 487
    assert p.on_timer(1.0 + 1e-6) == 0  # no burst afterwards
    assert p.missed_ticks == 487


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be 'lockstep' or 'realtime'"):
        Pacer("fast", P, 0.1)
