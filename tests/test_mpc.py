"""The reference MPC (robot_dyn/control/mpc.py): real cvxpy + Clarabel solves, closed over its own plans."""
import dataclasses

import numpy as np
import pytest

from robot_dyn.control.mpc import MPCSettings, ReferenceMPC
from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.control.trajectory import CartesianMove, CartesianPath, JointMotion
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots import load_robot
from robot_dyn.safety.barriers import SphereKinematics, barrier_rows
from robot_dyn.safety.sets import Obstacle, load_safe_sets


@pytest.fixture(scope="module")
def robot():
    return load_robot("panda")


@pytest.fixture(scope="module")
def mpc(robot):
    return ReferenceMPC(robot, load_safe_sets(robot))


def run_plans(mpc, motion, q0, seconds, obstacle_at=None):
    """Follow each plan for one plan step (the plan's own double integrator), replanning; returns the
    positions every 2 ms and the results."""
    q, qd = q0.copy(), np.zeros_like(q0)
    dt, t, path, results = mpc.settings.dt, 0.0, [], []
    mpc.reset()
    while t < seconds:
        obstacles = (obstacle_at(t),) if obstacle_at else None
        r = mpc.plan(t, q, qd, motion, obstacles)
        assert r.plan is not None, r.status
        results.append(r)
        for s in np.arange(0.002, dt + 1e-9, 0.002):
            path.append((t + s, r.plan.sample(t + s)[0]))
        q, qd, _ = r.plan.sample(t + dt)
        t += dt
    return path, results


def test_joint_goal_in_free_space_is_reached_within_limits(robot, mpc):
    goal = robot.home + np.array([0.4, 0.2, -0.2, 0.3, 0.1, -0.2, 0.3])
    motion = JointMotion.plan(0.0, robot.home, np.zeros(7), np.zeros(7), goal, 1.2)
    path, results = run_plans(mpc, motion, robot.home, 2.5)
    assert np.max(np.abs(path[-1][1] - goal)) < 2e-3
    s = mpc.settings
    for r in results:
        assert np.all(np.abs(r.plan.v) <= s.limit_scale * robot.qd_max + 1e-5)
        assert np.all(np.abs(r.plan.a) <= s.limit_scale * robot.qdd_max + 1e-5)
        assert r.slack < 1e-6 and not r.active


def test_goal_inside_an_obstacle_is_approached_and_not_entered(robot, mpc):
    model = RigidBody(robot)
    goal = robot.home + np.array([0.5, 0.3, 0.0, 0.3, 0.0, 0.0, 0.0])
    centre = model.ee_pose(goal)[0]
    ball = Obstacle("ball", centre, centre.copy(), 0.08, np.zeros(3))
    sets = load_safe_sets(robot)
    kin = SphereKinematics(robot, sets)
    motion = JointMotion.plan(0.0, robot.home, np.zeros(7), np.zeros(7), goal, 1.5)
    path, results = run_plans(mpc, motion, robot.home, 3.0, obstacle_at=lambda t: ball)
    h = [barrier_rows(kin, sets, (ball,), q, np.zeros(7), 0.0).h.min() for _, q in path]
    margin = mpc.settings.distance_margin
    assert min(h) > margin - 1e-3  # the plan keeps its margin (linearised rows: within 1 mm)
    assert h[-1] < margin + 0.01  # and it got close: the goal is inside
    assert any("ball" in label for r in results for label in r.active)


def test_moving_obstacle_is_avoided_along_its_predicted_path(robot, mpc):
    """A ball moving at 0.1 m/s toward the arm's path; h uses where the ball will be."""
    model = RigidBody(robot)
    sets = load_safe_sets(robot)
    kin = SphereKinematics(robot, sets)
    goal = robot.home + np.array([0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    p_mid = model.ee_pose(robot.home + np.array([0.3, 0, 0, 0, 0, 0, 0]))[0]
    velocity = np.array([0.0, 0.0, -0.1])
    start = p_mid + np.array([0.0, 0.0, 0.25])

    def ball(t):
        c = start + velocity * t
        return Obstacle("ball", c, c.copy(), 0.06, velocity)

    motion = JointMotion.plan(0.0, robot.home, np.zeros(7), np.zeros(7), goal, 1.0)
    path, _ = run_plans(mpc, motion, robot.home, 2.5, obstacle_at=ball)
    h = [barrier_rows(kin, sets, (ball(t),), q, np.zeros(7), 0.0).h.min() for t, q in path]
    assert min(h) > 0.0


def test_pose_goal_below_the_table_stops_above_it(robot, mpc):
    model = RigidBody(robot)
    sets = load_safe_sets(robot)
    kin = SphereKinematics(robot, sets)
    p0, R0 = model.ee_pose(robot.home)
    goal = np.array([p0[0] + 0.05, p0[1], sets.table_height - 0.05])
    motion = CartesianMove(0.0, 2.0, p0, R0, goal, R0)
    path, _ = run_plans(mpc, motion, robot.home, 3.5)
    h = [barrier_rows(kin, sets, (), q, np.zeros(7), 0.0).h.min() for _, q in path]
    assert min(h) > mpc.settings.distance_margin - 1e-3
    assert model.ee_pose(path[-1][1])[0][2] < p0[2] - 0.2  # it went most of the way down


def test_bad_input_gives_no_plan_and_a_reason(robot, mpc):
    motion = JointMotion.plan(0.0, robot.home, np.zeros(7), np.zeros(7), robot.home, 1.0)
    bad = robot.home.copy()
    bad[2] = np.nan
    r = mpc.plan(0.0, bad, np.zeros(7), motion)
    assert r.plan is None and "finite" in r.status
    r = mpc.plan(0.0, robot.home[:6], np.zeros(7), motion)
    assert r.plan is None and "size" in r.status
    z = np.zeros((2, 3))
    path = CartesianPath([0.0, 1.0], z, z, z, np.tile(np.eye(3), (2, 1, 1)), z)
    r = mpc.plan(0.0, robot.home, np.zeros(7), path)
    assert r.plan is None and "CartesianPath" in r.status


def test_settings_are_checked_and_structure_is_fixed(robot, mpc):
    with pytest.raises(ValueError, match="gamma"):
        MPCSettings(gamma=1.5).validated()
    with pytest.raises(ValueError, match="horizon"):
        MPCSettings(horizon=0).validated()
    with pytest.raises(ValueError, match=r"\['horizon'\]"):
        mpc.update(settings=dataclasses.replace(mpc.settings, horizon=20))
    margin = mpc.settings.distance_margin
    mpc.update(settings=dataclasses.replace(mpc.settings, distance_margin=0.03))
    assert mpc.settings.distance_margin == 0.03
    mpc.update(settings=dataclasses.replace(mpc.settings, distance_margin=margin))
    sets = load_safe_sets(robot)
    with pytest.raises(ValueError, match="spheres"):
        mpc.update(sets=dataclasses.replace(sets, spheres=sets.spheres[:-1]))


def test_outer_loop_follows_the_plan_to_a_joint_goal(robot):
    """OuterLoop with the planner: the desired state reaches the goal; planning stops there."""
    planner = ReferenceMPC(robot, load_safe_sets(robot))
    loop = OuterLoop(robot, OuterLoopConfig(period=0.002), planner=planner)
    loop.start(0.0, robot.home)
    goal = robot.home + np.array([0.3, -0.2, 0.1, 0.2, 0.0, 0.2, -0.1])
    duration = loop.command_joint_goal(0.0, goal)
    plans = 0
    for k in range(1, int((duration + 1.5) / 0.002)):
        before = loop.plan_result
        loop.tick(k * 0.002)
        plans += loop.plan_result is not before
    assert np.max(np.abs(loop.q_d - goal)) < 1e-3
    assert loop.planner_failures == 0
    assert plans < (duration + 1.5) / planner.settings.dt  # it stopped replanning once at the goal


def test_planner_process_plans_like_the_mpc_in_process_and_never_blocks(robot, mpc):
    """The MPC in its own process: the same plan as in process, one request at a time, a reset
    drops the answer for the old goal, bad settings raise in the caller, and its death is reported."""
    import time

    from robot_dyn.control.planner_process import PlannerProcess

    goal = robot.home + np.array([0.4, 0.2, -0.2, 0.3, 0.1, -0.2, 0.3])
    motion = JointMotion.plan(0.0, robot.home, np.zeros(7), np.zeros(7), goal, 1.2)
    planner = PlannerProcess(robot, load_safe_sets(robot), mpc.settings)
    try:
        def answer():
            deadline = time.monotonic() + 30
            while (result := planner.poll()) is None:
                assert time.monotonic() < deadline, "no plan within 30 s"
                time.sleep(0.001)
            return result

        mpc.reset()
        expected = mpc.plan(0.0, robot.home, np.zeros(7), motion)
        assert planner.submit(0.0, robot.home, np.zeros(7), motion)
        assert planner.poll() is None  # sending a request did not wait for the solve (milliseconds of work)
        assert not planner.submit(0.0, robot.home, np.zeros(7), motion)  # one at a time
        result = answer()
        assert result.status == expected.status
        np.testing.assert_allclose(result.plan.a, expected.plan.a, atol=1e-6)

        assert planner.submit(0.04, *result.plan.sample(0.04)[:2], motion)
        planner.reset()  # a new goal: the answer on its way is for the old one
        deadline = time.monotonic() + 30
        while planner.submit(0.0, robot.home, np.zeros(7), motion) is False:
            assert planner.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        assert answer().plan.t0 == 0.0

        with pytest.raises(ValueError, match="fixed at start"):
            planner.update(settings=dataclasses.replace(mpc.settings, horizon=5))
        planner._process.kill()
        planner._process.join()
        assert planner.submit(0.0, robot.home, np.zeros(7), motion)
        died = answer()
        assert died.plan is None and "exited" in died.status
        assert not planner.submit(0.0, robot.home, np.zeros(7), motion)
    finally:
        planner.close()


def test_planner_process_in_lockstep_hands_over_each_plan_one_period_after_asking(robot, mpc):
    """In lockstep the plan is held back until one replanning period of sim time has passed, and
    waited for then: how busy the machine is cannot change when the outer loop takes it."""
    import time

    from robot_dyn.control.planner_process import PlannerProcess

    goal = robot.home + np.array([0.4, 0.2, -0.2, 0.3, 0.1, -0.2, 0.3])
    motion = JointMotion.plan(0.0, robot.home, np.zeros(7), np.zeros(7), goal, 1.2)
    planner = PlannerProcess(robot, load_safe_sets(robot), mpc.settings, lockstep=True)
    dt = mpc.settings.dt
    try:
        assert planner.submit(1.0, robot.home, np.zeros(7), motion)
        time.sleep(1.0)  # the answer is there by now (a plan takes tens of ms)
        assert planner.poll(1.0 + dt - 0.002) is None  # ... but not due: a tick before the period is up
        assert planner.poll(1.0 + 0.5 * dt) is None
        result = planner.poll(1.0 + dt)  # due: taken (the process's pipe had it)
        assert result is not None and result.plan is not None and result.plan.t0 == 1.0

        assert planner.submit(1.0 + dt, *result.plan.sample(1.0 + dt)[:2], motion)
        t0, waited = time.monotonic(), planner.waited_s
        late = planner.poll(1.0 + 2 * dt)  # due at once: poll waits for the solve
        assert late is not None and late.plan is not None and late.plan.t0 == pytest.approx(1.0 + dt)
        assert 0.0 < planner.waited_s - waited <= time.monotonic() - t0 < 2.0  # the wait is counted

        # a new goal while a plan is on its way, with time starting over (a new run): the old
        # answer is dropped as soon as it is there and planning goes on
        assert planner.submit(5.0, robot.home, np.zeros(7), motion)
        planner.reset()
        assert planner.poll(0.0) is None  # the old goal's answer, dropped
        assert planner.submit(0.0, robot.home, np.zeros(7), motion)
        assert planner.poll(dt).plan.t0 == 0.0
    finally:
        planner.close()
