"""Physics backends: the arm holds still under the robot layer; unmodelled effects are real."""
import numpy as np
import pytest

from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import SceneObject, make_backend
from robot_dyn.sim.effects import UnmodelledEffects, load_profile
from robot_dyn.sim.simulated_arm import SimulatedArm


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
@pytest.mark.parametrize("name", ["panda", "fr3", "iiwa14"])
def test_arm_holds_with_robot_side_gravity_compensation(backend, name):
    robot = load_robot(name)
    arm = SimulatedArm(robot, make_backend(backend, robot), ImpedanceSettings.from_robot(robot), robot.home)
    arm.advance(1000)
    assert arm.time == pytest.approx(1.0)
    assert np.max(np.abs(arm.state()[1] - robot.home)) < 1e-6


def test_without_gravity_compensation_the_arm_sags():
    robot = load_robot("panda")
    arm = SimulatedArm(robot, make_backend("mujoco", robot, compensates_gravity=False),
                       ImpedanceSettings.from_robot(robot), robot.home)
    arm.advance(500)
    assert np.max(np.abs(arm.state()[1] - robot.home)) > 1e-2


def test_realistic_profile_adds_what_the_nominal_model_lacks():
    robot = load_robot("panda")
    effects = load_profile("realistic")
    assert effects.any and effects.payload_mass > 0
    sim = make_backend("mujoco", robot, effects)
    assert np.all(sim.model.dof_frictionloss > 0) and np.all(sim.model.dof_armature > 0)
    nominal = make_backend("mujoco", robot).model.body_mass
    assert np.all(sim.model.body_mass[1:-1] != nominal[1:-1])  # every link perturbed
    assert sim.model.body_mass[-1] > nominal[-1] * 0.85 + 0.5 - 1e-9  # last link carries the fused payload
    # The payload is unmodelled: holding under nominal gravity compensation, the arm sags.
    arm = SimulatedArm(robot, sim, ImpedanceSettings.from_robot(robot), robot.home)
    arm.advance(1000)
    assert np.max(np.abs(arm.state()[1] - robot.home)) > 1e-3


def test_effects_and_profiles_are_validated():
    with pytest.raises(ValueError, match="no effects profile 'noisy'"):
        load_profile("noisy")
    with pytest.raises(ValueError, match="'unmodelled effect armature' must be one or 7"):
        UnmodelledEffects(armature=(0.1, 0.1)).per_joint("armature", 7)
    robot = load_robot("panda")
    with pytest.raises(ValueError, match="'armature' is not supported by the pybullet backend"):
        make_backend("pybullet", robot, UnmodelledEffects(armature=0.1))
    with pytest.raises(ValueError, match="unknown sim backend 'gazebo'"):
        make_backend("gazebo", robot)
    with pytest.raises(ValueError, match="1 kHz or finer"):
        make_backend("mujoco", robot, dt=0.002)


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_scene_object_falls_onto_the_floor(backend):
    robot = load_robot("panda")
    arm = SimulatedArm(robot, make_backend(backend, robot), ImpedanceSettings.from_robot(robot), robot.home)
    arm.backend.add_object(SceneObject("cube", "box", (0.03, 0.03, 0.03), (0.6, 0.3, 0.3), mass=0.2))
    arm.advance(800)
    if backend == "mujoco":
        z = arm.backend.data.body("cube").xpos[2]
        assert z == pytest.approx(0.03, abs=3e-3)
    assert np.max(np.abs(arm.state()[1] - robot.home)) < 1e-6
