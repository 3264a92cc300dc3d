"""Time scaling: a motion's clock slows and pauses while the arm lags its reference, so the
reference never runs further ahead of the arm than the robot layer accepts, and the motion ends later."""
import numpy as np
import pytest

from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.control.time_scaling import RESUME_RATE, SLOWDOWN_RATE, MotionClock
from robot_dyn.control.trajectory import JointMotion
from robot_dyn.robots import load_robot

DT = 0.002
ROBOT = load_robot("panda")


def test_the_clock_keeps_time_exactly_until_the_arm_lags():
    clock = MotionClock(0.015, 0.03)
    for _ in range(1000):
        clock.observe(0.014)  # below the slowdown lag
        assert not clock.advance(DT)
    assert clock.rate == 1.0 and clock.delay == 0.0  # bit for bit the loop's own time


def test_the_rate_follows_the_lag_within_its_rate_limits():
    clock = MotionClock(0.015, 0.03)
    clock.observe(0.0225)  # halfway between slowdown and pause: rate 0.5
    assert clock.advance(DT)  # began to slow
    assert clock.rate == pytest.approx(1.0 - SLOWDOWN_RATE * DT)
    for _ in range(100):
        clock.advance(DT)
    assert clock.rate == pytest.approx(0.5)
    clock.observe(0.05)  # beyond the pause lag: the motion stops
    for _ in range(100):
        clock.advance(DT)
    assert clock.rate == 0.0
    delay = clock.delay
    clock.advance(DT)
    assert clock.delay == pytest.approx(delay + DT)  # paused: the motion's time stands still
    clock.observe(0.0)  # the arm caught up: it resumes, at most RESUME_RATE per second
    clock.advance(DT)
    assert clock.rate == pytest.approx(RESUME_RATE * DT)
    assert clock.peak_lag == 0.05 and clock.slowed


def test_a_scaled_motion_moves_at_its_rate():
    motion = JointMotion.plan(0.0, ROBOT.home, np.zeros(7), np.zeros(7), ROBOT.home + 0.3, 1.0)
    clock = MotionClock(0.015, 0.03)
    clock.rate, clock.delay = 0.5, 0.2
    q, qd, qdd = clock.view(motion, 0.6).sample(0.6)
    q0, qd0, qdd0 = motion.sample(0.4)  # the motion's own time: 0.6 - 0.2
    np.testing.assert_allclose([q, qd, qdd], [q0, 0.5 * qd0, 0.25 * qdd0])
    q1 = clock.view(motion, 0.6).sample(0.7)[0]  # a planner's look ahead: at the current rate
    np.testing.assert_allclose(q1, motion.sample(0.45)[0])


def _follow(loop, arm_lag_s, seconds):
    """Tick the loop with a measured arm that trails the reference by arm_lag_s seconds of it
    (a slow or stalled arm). Returns the largest lead of the reference over the arm (rad)."""
    history, lead, t = [], 0.0, loop.time
    for _ in range(int(seconds / DT)):
        t += DT
        ref = loop.tick(t)
        history.append(ref.q)
        q = history[max(0, len(history) - 1 - int(arm_lag_s / DT))]
        loop.observe(t + DT, q, np.zeros(7))
        lead = max(lead, float(np.max(np.abs(loop.q_d - q))))
    return lead


def test_a_goal_slows_while_the_arm_lags_and_still_ends_on_its_goal():
    goal = ROBOT.home + np.array([0.6, 0.4, -0.3, 0.5, 0.3, -0.4, 0.6]) * 0.8
    on_time = OuterLoop(ROBOT)
    on_time.start(0.0, ROBOT.home)
    duration = on_time.command_joint_goal(0.0, goal)
    fixed = OuterLoop(ROBOT, OuterLoopConfig(time_scaling=False))
    fixed.start(0.0, ROBOT.home)
    fixed.command_joint_goal(0.0, goal)
    lead_fixed = _follow(fixed, 0.06, duration)  # the arm 60 ms behind: the schedule runs away from it
    assert lead_fixed > 0.05  # the robot layer would refuse such a reference
    scaled = OuterLoop(ROBOT)
    scaled.start(0.0, ROBOT.home)
    scaled.command_joint_goal(0.0, goal)
    lead = _follow(scaled, 0.06, 3 * duration)
    assert lead < 0.045, lead  # paused at 30 mrad, stopped within the robot layer's 50 mrad
    assert np.max(np.abs(scaled.q_d - goal)) < 1e-4  # and it still got there
    assert scaled.events and scaled.events[0].startswith("joint goal slowed at t=")
    done = [n for n in scaled.notices if "done" in n]
    assert done and " s late: slowed while the arm lagged its reference" in done[0]
    late = float(done[0].split(", ")[1].split(" s late")[0])
    assert late > 0.1
