"""LuGre friction: Stribeck steady state, presliding hysteresis, stick-slip in the simulator."""
import numpy as np

from robot_dyn.sim.friction import LuGreParameters, lugre_step, stribeck

P = LuGreParameters(*(np.array([v]) for v in (0.5, 0.8, 0.05, 300.0, 0.5, 0.0)))


def test_steady_sliding_friction_follows_the_stribeck_curve():
    for v in (0.01, 0.05, 0.3):
        z = np.zeros(1)
        for _ in range(3000):
            z, F = lugre_step(P, z, np.array([v]), 1e-3)
        np.testing.assert_allclose(F, stribeck(P, np.array([v])) + P.damping * 0, rtol=1e-3)
    assert stribeck(P, np.array([0.0]))[0] == 0.8 and abs(stribeck(P, np.array([1.0]))[0] - 0.5) < 1e-9


def test_presliding_is_hysteretic():
    """A small displacement oscillation gives a force/displacement loop with non-zero area (memory)."""
    dt, t = 1e-3, np.arange(0, 2.0, 1e-3)
    x = 2e-3 * np.sin(2 * np.pi * t)
    v = np.gradient(x, dt)
    z, forces = np.zeros(1), []
    for vk in v:
        z, F = lugre_step(P, z, np.array([vk]), dt)
        forces.append(F[0])
    cycle = slice(1000, 2000)  # second period
    area = abs(np.trapezoid(np.array(forces)[cycle], x[cycle]))
    assert area > 1e-4
    # Memory: the same position and velocity sign give different forces on the way out and back.
    assert abs(forces[1100] - forces[1400]) > 0.1


def test_lugre_friction_in_mujoco_holds_a_small_push():
    """Static friction (0.9 Nm breakaway) holds the arm against a 0.3 Nm push; no friction does not."""
    from robot_dyn.robots import load_robot
    from robot_dyn.sim.backend import make_backend
    from robot_dyn.sim.effects import UnmodelledEffects

    robot = load_robot("panda")
    moved = {}
    for label, effects in (("lugre", UnmodelledEffects(lugre_coulomb=0.6, lugre_static=0.9)), ("none", UnmodelledEffects())):
        sim = make_backend("mujoco", robot, effects)
        sim.reset(robot.home)
        push = np.zeros(7)
        push[0] = 0.3
        for _ in range(500):
            sim.step(push)
        moved[label] = abs(sim.joint_state()[0][0] - robot.home[0])
    assert moved["lugre"] < 5e-3 < moved["none"], moved
