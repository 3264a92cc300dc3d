"""Robust vs nominal filter under model mismatch, in MuJoCo (issue 4, item 3).

The first payload scenario of the safety benchmark: the arm carries an unmodelled payload
with half its stiffness and is driven straight down onto the table, the filter the only
guard (2 mm margin). The compliant arm sags below its reference; the nominal filter keeps
the reference at the margin, so the arm goes through the table. The robust filter, with an
error model fitted to torque errors recorded on the same robot, keeps the arm itself out.
"""
import dataclasses

from robot_dyn.bench.safety import make_scenarios, record_torque_errors, run_scenario
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots import load_robot
from robot_dyn.safety.error_model import TorqueErrorModel
from robot_dyn.sim.effects import load_profile


def test_under_an_unmodelled_payload_in_mujoco_the_nominal_filter_lets_the_arm_through_and_the_robust_does_not():
    robot = load_robot("panda")
    scenario = make_scenarios(robot, 7, 0)[5]
    assert scenario.kind == "mismatch" and not scenario.planned
    realistic = load_profile("realistic")
    effects = dataclasses.replace(realistic, payload_mass=realistic.payload_mass + 0.75)
    q, qd, qdd, err = record_torque_errors(robot, effects, 8.0, 0)
    model = TorqueErrorModel.fit(TorqueErrorModel.prior(RigidBody(robot), robot.stiffness), q, qd, qdd, err)
    models = {"mismatch": model, "realistic": model}
    nominal = run_scenario(scenario, "nominal", robot, models)
    robust = run_scenario(scenario, "robust", robot, models)
    assert nominal["violation"] and nominal["min_barrier_m"] < -0.001, nominal
    assert not robust["violation"] and robust["min_barrier_m"] > 0.0, robust
