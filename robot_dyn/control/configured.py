"""The controller's parts from its parameters (configs/controller.yaml, bringup/schema.py CONTROLLER): the
outer loop's configuration, the safety filter and the goal planner. The controller node builds its loop
from these, and so does anything that runs the same controller in one process (robot_dyn.tasks.in_process),
so the two cannot drift apart."""
from __future__ import annotations

from robot_dyn.control.ik import IKGains
from robot_dyn.control.mpc import MPCSettings, ReferenceMPC
from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.control.planner_process import PlannerProcess
from robot_dyn.control.twist import TwistSettings
from robot_dyn.control.wrench import WrenchSettings
from robot_dyn.safety.filter import SETTING_NAMES, FilterSettings, SafetyFilter
from robot_dyn.safety.sets import load_safe_sets

SAFETY_FILTERS = ("off", "nominal", "robust")
GOAL_PLANNERS = ("mpc", "direct")


def outer_loop_config(p: dict) -> OuterLoopConfig:
    ik = IKGains(position=p["ik_position_gain"], velocity=p["ik_velocity_gain"],
                 nullspace_stiffness=p["ik_nullspace_stiffness"], nullspace_damping=p["ik_nullspace_damping"])
    keys = ("feedforward", "robot_compensates_gravity", "joint_speed_scale", "cartesian_speed", "cartesian_acceleration",
            "angular_speed", "angular_acceleration", "path_start_tolerance")
    twist = TwistSettings(
        command_type=p["twist_command_type"], linear_scale=p["twist_linear_scale"], angular_scale=p["twist_angular_scale"],
        max_linear_speed=p["twist_max_linear_speed"], max_angular_speed=p["twist_max_angular_speed"],
        linear_acceleration=p["twist_linear_acceleration"], angular_acceleration=p["twist_angular_acceleration"],
        timeout=p["twist_timeout_s"], max_pose_error=p["twist_max_pose_error_m"])
    wrench = WrenchSettings(max_force=p["wrench_max_force_n"], max_torque=p["wrench_max_torque_nm"],
                            force_rate=p["wrench_force_rate"], torque_rate=p["wrench_torque_rate"],
                            timeout=p["wrench_timeout_s"])
    return OuterLoopConfig(**{k: p[k] for k in keys}, period=1.0 / p["rate_hz"], slowdown_lag=p["slowdown_lag_rad"],
                           pause_lag=p["pause_lag_rad"], hold_lag=p["hold_lag_rad"], ik=ik, twist=twist,
                           wrench=wrench).validated()


def filter_settings(p: dict) -> FilterSettings:
    return FilterSettings(dt=1.0 / p["rate_hz"], **{k: p["safety_" + k] for k in SETTING_NAMES}).validated()


def mpc_settings(p: dict) -> MPCSettings:
    return MPCSettings(dt=1.0 / p["mpc_rate_hz"], horizon=p["mpc_horizon"], gamma=p["mpc_gamma"],
                       distance_margin=p["mpc_distance_margin"], joint_margin=p["mpc_joint_margin"]).validated()


def goal_planner(robot, p: dict, sets) -> ReferenceMPC | PlannerProcess | None:
    """The configured goal planner: the reference MPC over the same safe sets as the filter, in a
    process of its own (mpc_process) or in the tick, or None."""
    if p["goal_planner"] not in GOAL_PLANNERS:
        raise ValueError(f"'goal_planner' must be one of {GOAL_PLANNERS}, got '{p['goal_planner']}'")
    if p["goal_planner"] != "mpc":
        return None
    if p["mpc_process"]:
        return PlannerProcess(robot, sets, mpc_settings(p), lockstep=p["lockstep"])
    return ReferenceMPC(robot, sets, mpc_settings(p))


def safety_filter(robot, p: dict, log, sets) -> SafetyFilter | None:
    """The configured safety filter. A robust filter whose error model cannot be read falls back to
    the prior (said in the log)."""
    from robot_dyn.dynamics.rigid_body import RigidBody
    from robot_dyn.safety.error_model import ErrorModelError, TorqueErrorModel

    kind = p["safety_filter"]
    if kind not in SAFETY_FILTERS:
        raise ValueError(f"'safety_filter' must be one of {SAFETY_FILTERS}, got '{kind}'")
    if kind == "off":
        return None
    if kind == "nominal":
        return SafetyFilter(robot, sets, filter_settings(p), solver="osqp")
    rb = RigidBody(robot)
    model = TorqueErrorModel.prior(rb, robot.stiffness)
    if p["safety_error_model"]:
        try:
            model = TorqueErrorModel.load(p["safety_error_model"], rb)
            log.info(f"safety: torque error model from {p['safety_error_model']} ({model.samples} samples)")
        except ErrorModelError as exc:
            log.warning(f"safety: {exc}; using the prior error model")
    return SafetyFilter(robot, sets, filter_settings(p), solver="clarabel", error_model=model)


def controller_loop(robot, p: dict, log) -> OuterLoop:
    """The controller's outer loop in this process: its configuration, safety filter and goal planner
    (the MPC in the tick, not in a process of its own), with the nominal feedforward where a learned
    one is configured (loading checkpoints is the node's)."""
    config = outer_loop_config(p)
    if config.feedforward not in ("none", "nominal"):
        config.feedforward = "nominal"
    sets = load_safe_sets(robot, p["safety_config"] or None)
    return OuterLoop(robot, config, safety=safety_filter(robot, p, log, sets),
                     planner=goal_planner(robot, {**p, "mpc_process": False}, sets))
