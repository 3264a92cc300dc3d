"""A task episode run in one process: the scene in MuJoCo, the robot layer, the outer loop and the
task's expert at its teleop rate, with no ROS in between.

The same parts as the graph (robot_dyn.sim.simulated_arm; the controller's outer loop, safety filter and
goal planner built from configs/controller.yaml by robot_dyn.control.configured, as the controller node
builds them; the expert's unitless commands), in lockstep: what the tests use to check a task and
its expert deterministically, and what bulk demonstration generation runs. The expert sees the
measured tool tip (forward kinematics of the measured joints) and the desired pose, as in the graph.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from robot_dyn import paths
from robot_dyn.bringup import schema
from robot_dyn.bringup.graph import load_node_parameters
from robot_dyn.control.configured import controller_loop
from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.simulated_arm import ReferenceRejected, SimulatedArm
from robot_dyn.tasks.contact_force import ContactForceMean

TELEOP_RATE_HZ = schema.TELEOP["rate_hz"][0]  # the teleop node's command rate


@dataclass
class EpisodeResult:
    success: bool
    duration_s: float  # sim time until the expert was done (or the time limit)
    score: dict  # the task's score at the end
    # (T, 3) N, world frame, per outer tick: the mean over the tick's physics steps (a stiff contact's force
    # alternates from step to step; a sample of one step in two doubled the reported force)
    contact_force_n: np.ndarray = field(repr=False)
    wall_s: float = 0.0
    phases: list = field(default_factory=list)  # the expert's phases, in order
    refused: str = ""  # the robot layer's refusal that ended the episode (refusal_ends_episode), else empty


class EpisodeObserver:
    """What run_expert shows an observer; each hook does nothing here: subclasses keep what they need."""

    def start(self, arm, loop, episode) -> None:
        pass

    def state(self, t, q, qd, tau) -> None:
        pass

    def reference(self, ref) -> None:
        pass

    def command(self, t, command) -> None:
        pass

    def after_tick(self, t) -> None:
        pass


def controller_parameters() -> dict:
    """The graph's controller parameters: the schema's defaults and configs/controller.yaml."""
    return {**schema.defaults(schema.CONTROLLER), **load_node_parameters(paths.config_path("controller.yaml"), "controller")}


def run_expert(task, seed: int, robot: str = "panda", time_limit: float = 60.0, settle: float = 0.5,
               observer=None, scene_extensions=(), expert=None, stop_when_solved: bool = False,
               refusal_ends_episode: bool = False, start_q=None) -> EpisodeResult:
    """Episode `seed` of `task` (robot_dyn.tasks.load_task) solved by its expert; `settle` s after it is done.

    expert: who commands (default task.expert(seed)): command(t, tip, R, desired tip, objects) -> the
    unitless twist (6,) or None when done, and `phase` and `done` (robot_dyn.tasks.expert.Phased); a
    policy (robot_dyn.imitation.rollout) is one. An expert's `wrench` (6,) N, Nm, base frame, when it
    has one and it is not None, goes to the controller with each command (a search's force). stop_when_solved: end the episode at the first decision
    that finds the task's success (how policies are scored), else when the expert is done.
    refusal_ends_episode: a reference the robot layer refuses ends the episode (a failure, the arm held: what
    a policy that drives the arm into a discontinuity meets), instead of raising ReferenceRejected.
    start_q: the arm's joint positions at rest at the start (rad; default the robot's home).

    observer (optional) sees what the graph's nodes would publish: observer.start(arm, loop, episode) once,
    then per outer tick observer.state(t, q, qd, tau) (the measured state the tick answers, as the sim
    sends it) and observer.reference(ref), observer.after_tick(t) after the tick's physics, and
    observer.command(t, command) per expert command. scene_extensions: more MuJoCo scene extensions
    (a camera rig)."""
    start = time.perf_counter()
    arm_robot = with_tool(load_robot(robot), task.tool)
    episode = task.episode(seed)
    backend = make_backend("mujoco", arm_robot, scene=[episode.scene, *scene_extensions])
    q0 = arm_robot.home if start_q is None else np.asarray(start_q, float)
    arm = SimulatedArm(arm_robot, backend, ImpedanceSettings.from_robot(arm_robot), q0)
    loop = controller_loop(arm_robot, controller_parameters(), logging.getLogger("robot_dyn.in_process"))
    loop.start(0.0, q0)
    expert = task.expert(seed) if expert is None else expert
    forces, phases = [], []
    contact = ContactForceMean(episode, backend.model, backend.data)
    if observer is not None:
        observer.start(arm, loop, episode)

    def observe(t, q, qd):
        loop.observe(t, q, qd)
        if observer is not None:
            observer.state(t, q, qd, arm.tau.copy())

    def tick(t):
        reference = loop.tick(t)
        if observer is not None:
            observer.reference(reference)
        return reference

    def after_tick(t, q):
        forces.append(contact.take())
        if observer is not None:
            observer.after_tick(t)

    period = 1.0 / TELEOP_RATE_HZ  # the teleop node's rate: each decision is repeated until the next
    decisions = max(1, int(round(TELEOP_RATE_HZ / task.teleop_rate_hz)))
    published = 0  # commands sent
    command = None
    refused = ""
    try:
        while arm.time < time_limit and not expert.done:
            if published % decisions == 0:  # the expert decides at its task's rate
                p, R = loop.model.ee_pose(arm.state()[1])
                pd, Rd = loop.desired_pose()
                if stop_when_solved and episode.score(backend.model, backend.data)["success"]:
                    break
                objects = episode.objects(backend.model, backend.data)
                command = expert.command(arm.time, task.tool.tip(p, R), R, task.tool.tip(pd, Rd), objects)
                if not phases or phases[-1] != expert.phase:
                    phases.append(expert.phase)
                if command is None:
                    break
            published += 1
            loop.command_twist(loop.time, loop.time, command[:3], command[3:], "base")
            wrench = getattr(expert, "wrench", None)
            if wrench is not None:
                loop.command_wrench(loop.time, loop.time, wrench[:3], wrench[3:], "base")
            if observer is not None:
                observer.command(arm.time, command)
            arm.follow(tick, period, observe=observe, after_tick=after_tick, after_step=contact.add)
        duration = arm.time
        arm.follow(tick, settle, observe=observe, after_tick=after_tick, after_step=contact.add)
    except ReferenceRejected as exc:
        if not refusal_ends_episode:
            raise
        refused, duration = str(exc), arm.time
    score = episode.score(backend.model, backend.data)
    success = bool(score["success"]) and not refused
    return EpisodeResult(success, duration, score, np.array(forces), time.perf_counter() - start, phases, refused)
