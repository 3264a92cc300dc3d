"""A task episode run in one process: the scene in MuJoCo, the robot layer, the outer loop and the
task's expert at its teleop rate, with no ROS in between.

The same parts as the graph (robot_dyn.sim.simulated_arm, robot_dyn.control.outer_loop with its
twist mode, the expert's unitless commands), in lockstep: what the tests use to check a task and
its expert deterministically, and what bulk demonstration generation runs. The expert sees the
measured tool tip (forward kinematics of the measured joints) and the desired pose, as in the graph.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.simulated_arm import SimulatedArm


@dataclass
class EpisodeResult:
    success: bool
    duration_s: float  # sim time until the expert was done (or the time limit)
    score: dict  # the task's score at the end
    contact_force_n: np.ndarray = field(repr=False)  # (T, 3) per outer tick, world frame
    wall_s: float = 0.0
    phases: list = field(default_factory=list)  # the expert's phases, in order


def run_expert(task, seed: int, robot: str = "panda", time_limit: float = 60.0, settle: float = 0.5) -> EpisodeResult:
    """Episode `seed` of `task` (robot_dyn.tasks.load_task) solved by its expert; `settle` s after it is done."""
    start = time.perf_counter()
    arm_robot = with_tool(load_robot(robot), task.tool)
    episode = task.episode(seed)
    backend = make_backend("mujoco", arm_robot, scene=episode.scene)
    arm = SimulatedArm(arm_robot, backend, ImpedanceSettings.from_robot(arm_robot), arm_robot.home)
    loop = OuterLoop(arm_robot, OuterLoopConfig())
    loop.start(0.0, arm_robot.home)
    expert = task.expert(seed)
    forces, phases = [], []

    def record(t, q):
        forces.append(episode.score(backend.model, backend.data)["contact_force_n"])

    period = 1.0 / task.teleop_rate_hz
    while arm.time < time_limit and not expert.done:
        p, R = loop.model.ee_pose(arm.state()[1])
        pd, Rd = loop.desired_pose()
        objects = episode.objects(backend.model, backend.data)
        command = expert.command(arm.time, task.tool.tip(p, R), R, task.tool.tip(pd, Rd), objects)
        if not phases or phases[-1] != expert.phase:
            phases.append(expert.phase)
        if command is None:
            break
        loop.command_twist(loop.time, loop.time, command[:3], command[3:], "base")
        arm.follow(loop.tick, period, observe=loop.observe, after_tick=record)
    duration = arm.time
    arm.follow(loop.tick, settle, observe=loop.observe, after_tick=record)
    score = episode.score(backend.model, backend.data)
    return EpisodeResult(bool(score["success"]), duration, score, np.array(forces), time.perf_counter() - start, phases)
