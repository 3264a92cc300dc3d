"""robot-dyn bench control: inner/outer tick time, physics and graph real-time factors, and
figure-8 tracking per robot."""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_dyn.control.impedance import ImpedanceSettings, RobotLayer, impedance_torque
from robot_dyn.control.outer_loop import OuterLoop
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import make_backend
from robot_dyn.timing import TickTimer


def _time_calls(fn, n: int) -> dict:
    timer = TickTimer(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        timer.add(time.perf_counter() - t0)
    return timer.summary()


def inner_tick(robot_name: str, n: int) -> dict:
    """The robot layer's torque() (validation done, limits and watchdog included) against the bare law."""
    robot = load_robot(robot_name)
    layer = RobotLayer(robot, ImpedanceSettings.from_robot(robot))
    rng = np.random.default_rng(0)
    q = rng.uniform(robot.q_min, robot.q_max, (n, robot.n_joints))
    qd = rng.normal(0, 0.1, (n, robot.n_joints))
    layer.observe(robot.home)
    if not layer.submit(0.0, 0.0, robot.joint_names, robot.home):  # time the tracking law, not hold mode
        raise RuntimeError(f"benchmark reference rejected: {layer.drain_events()[-1][1]}")
    full = _time_calls(lambda i: layer.torque(1e-4 * (i % 100), q[i], qd[i], 1e-3), n)
    zeros = np.zeros(robot.n_joints)
    bare = _time_calls(lambda i: impedance_torque(q[i], qd[i], robot.home, zeros, zeros, robot.stiffness, robot.damping), n)
    return {"inner_tick_us_p50": full["us_p50"], "inner_tick_us_p99": full["us_p99"], "layer_mode": layer.mode,
            "baseline_bare_law_us_p50": bare["us_p50"], "inner_vs_bare_law_p50": full["us_p50"] / bare["us_p50"]}


def outer_tick_core(robot_name: str, seconds: float) -> dict:
    """OuterLoop.tick (IK + feedforward) along a figure-8, in process, against one pinocchio RNEA call."""
    robot = load_robot(robot_name)
    loop = OuterLoop(robot)
    loop.start(0.0, robot.home)
    p0, R0 = loop.desired_pose()
    loop.command_cartesian_path(0.0, figure_eight(p0, 0.1, 4.0, 1, 1.0, t0=0.0, rotation=R0))
    n = int(seconds * 500)
    core = _time_calls(lambda i: loop.tick(i * 0.002), n)
    zeros = np.zeros(robot.n_joints)
    rnea = _time_calls(lambda i: loop.model.rnea(robot.home, zeros, zeros), n)
    return {"outer_core_us_p50": core["us_p50"], "outer_core_us_p99": core["us_p99"],
            "baseline_rnea_us_p50": rnea["us_p50"], "outer_core_vs_rnea_p50": core["us_p50"] / rnea["us_p50"]}


def physics_rtf(robot_name: str, seconds: float, backend: str = "mujoco") -> float:
    """Real-time factor of the physics step alone (zero torque, gravity compensated)."""
    robot = load_robot(robot_name)
    sim = make_backend(backend, robot)
    sim.reset(robot.home)
    steps = int(seconds / sim.dt)
    zero = np.zeros(robot.n_joints)
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.step(zero)
    return steps * sim.dt / (time.perf_counter() - t0)


def graph_run(robot_name: str, workdir: Path) -> dict:
    """The whole graph over DDS in lockstep (1 kHz physics, 500 Hz outer loop) tracing the figure-8."""
    from robot_dyn.jobs.session import SimSession

    with SimSession(robot_name, workdir) as s:
        f8 = s.figure_eight(radius=0.1, period=4.0, cycles=2, ramp=1.0)
        rtf = s.real_time_factor()
        stats = s.node_stats()
    return {"tracking_rms_m": f8["tracking_rms_m"], "tracking_max_m": f8["tracking_max_m"], "graph_rtf": rtf,
            "outer_tick_us_p50": stats["controller"].get("outer_tick_us_p50"),
            "outer_tick_us_p99": stats["controller"].get("outer_tick_us_p99"),
            "graph_inner_tick_us_p99": stats["sim"].get("inner_tick_us_p99")}


def bench_control(robots=("panda", "iiwa14"), quick: bool = False, log=lambda *_: None) -> dict:
    n_inner, outer_s, physics_s = (5000, 4.0, 2.0) if quick else (50000, 20.0, 10.0)
    result = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()}, "robots": {}}
    with tempfile.TemporaryDirectory(prefix="robot_dyn_bench_") as tmp:
        for name in robots:
            log(f"bench control: {name}")
            entry = inner_tick(name, n_inner) | outer_tick_core(name, outer_s)
            entry["sim_rtf"] = physics_rtf(name, physics_s)
            entry |= graph_run(name, Path(tmp) / name)
            entry["graph_vs_sim_rtf"] = entry["graph_rtf"] / entry["sim_rtf"]
            result["robots"][name] = entry
    worst = {  # headline figures: the worst robot for each
        "inner_tick_us_p50": max, "inner_tick_us_p99": max, "outer_tick_us_p50": max, "outer_tick_us_p99": max,
        "graph_rtf": min, "sim_rtf": min, "tracking_rms_m": max, "tracking_max_m": max,
    }
    for key, pick in worst.items():
        result[key] = pick(r[key] for r in result["robots"].values())
    result["targets_met"] = {
        "inner_tick_p99_below_50us": result["inner_tick_us_p99"] < 50,
        "outer_tick_p99_below_1ms": result["outer_tick_us_p99"] < 1000,
        "graph_rtf_at_least_1": result["graph_rtf"] >= 1.0,
        "tracking_rms_below_1mm": result["tracking_rms_m"] < 1e-3,
    }
    return result
