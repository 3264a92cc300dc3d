"""robot-dyn bench control: inner and outer tick times, the middleware's share, physics and graph
real-time factors, figure-8 tracking, and real-time running (late references, robot-layer holds,
idle CPU, with and without a busy core) per robot, with a machine-speed calibration measured in
the same run so that figures from different machines compare as ratios."""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_dyn.control.impedance import ImpedanceSettings, RobotLayer, impedance_torque
from robot_dyn.control.outer_loop import OuterLoop
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.robots import load_robot
from robot_dyn.safety.sets import load_safe_sets
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


def calibration(seconds: float = 1.0) -> dict:
    """The machine's speed, measured now: a fixed Python loop (ns an iteration) and the Panda's
    physics alone (sim_rtf). Other figures divided by these compare across machines."""
    n = 200_000
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        x = 0.0
        for i in range(n):
            x += i * 0.5
        best = min(best, (time.perf_counter() - t0) / n * 1e9)
    return {"python_loop_ns": best, "sim_rtf_panda": physics_rtf("panda", seconds),
            "what": "python_loop_ns: ns an iteration of a plain float loop (best of ~1 s; higher = slower machine); "
                    "sim_rtf_panda: MuJoCo's Panda alone, simulated seconds a second (lower = slower)"}


def outer_tick_core(robot_name: str, cycles: int = 1) -> dict:
    """The controller's compute in process, as the node builds it (robust safety filter, nominal
    feedforward; the goal MPC runs in a process of its own in the node, so here goals follow their
    own reference): two joint goals and a figure-8, timed while moving, against one RNEA call."""
    from robot_dyn.nodes import controller_node as cn

    robot = load_robot(robot_name)
    p = dict(cn.DEFAULTS, robot=robot_name)
    safety = cn.safety_filter(robot, p, logging.getLogger(__name__), load_safe_sets(robot, None))
    loop = OuterLoop(robot, cn.outer_loop_config(p), safety=safety)
    loop.start(0.0, robot.home)
    timer, t = TickTimer(), 0.0

    def run_until_done():
        nonlocal t
        while loop.motion is not None:
            t += 0.002
            t0 = time.perf_counter()
            loop.tick(t)
            timer.add(time.perf_counter() - t0)

    goal = np.clip(robot.home + np.array([0.6, 0.4, -0.3, 0.5, 0.3, -0.4, 0.6]), robot.q_min + 0.1, robot.q_max - 0.1)
    for q in (goal, robot.home):
        loop.command_joint_goal(t, q)
        run_until_done()
    p0, R0 = loop.desired_pose()
    loop.command_cartesian_path(t, figure_eight(p0, 0.1, 4.0, cycles, 1.0, t0=t, rotation=R0))
    run_until_done()
    zeros = np.zeros(robot.n_joints)
    rnea = _time_calls(lambda i: loop.model.rnea(robot.home, zeros, zeros), 2000)
    core = timer.summary("outer_core_")
    return core | {"baseline_rnea_us_p50": rnea["us_p50"], "outer_core_vs_rnea_p50": core["outer_core_us_p50"] / rnea["us_p50"]}


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


def _goal(robot) -> np.ndarray:
    return np.clip(robot.home + np.array([0.6, 0.4, -0.3, 0.5, 0.3, -0.4, 0.6]), robot.q_min + 0.1, robot.q_max - 0.1)


def graph_run(robot_name: str, workdir: Path) -> dict:
    """The whole graph over DDS in lockstep (1 kHz physics, 500 Hz outer loop): two joint goals and the
    figure-8. The controller's callback (outer_tick: decode the state, compute, encode and send the
    reference) and its compute alone (outer_compute) are its own measures; reference_round_trip is
    the sim's, from a state going out to the reference computed from it coming in."""
    from robot_dyn.jobs.session import SimSession

    with SimSession(robot_name, workdir) as s:
        for q in (_goal(s.robot), s.robot.home):
            s.joint_goal(q, settle=0.2)
        f8 = s.figure_eight(radius=0.1, period=4.0, cycles=2, ramp=1.0)
        rtf = s.real_time_factor()
        stats = s.node_stats()
    c, sim = stats["controller"], stats["sim"]
    keys = ("outer_tick_us_p50", "outer_tick_us_p99", "outer_compute_us_p50", "outer_compute_us_p99")
    return {"tracking_rms_m": f8["tracking_rms_m"], "tracking_max_m": f8["tracking_max_m"], "graph_rtf": rtf,
            **{k: c.get(k) for k in keys}, "graph_inner_tick_us_p99": sim.get("inner_tick_us_p99"),
            "reference_round_trip_us_p50": sim.get("reference_round_trip_us_p50"),
            "reference_round_trip_us_p99": sim.get("reference_round_trip_us_p99")}


class BusyCore:
    """A process that keeps one core busy (a plain loop) while in the with-block: an ordinary one, as
    from another terminal (its own session, so its own autogroup). Enter it before a SimSession: the
    session's graph client runs under SCHED_IDLE, and a loop started under it inherited that and
    hardly competed."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def _cpu_seconds(process) -> float:
    """CPU time (s) of a process and its children (the controller's MPC process)."""
    import psutil

    p = psutil.Process(process.pid)
    total = sum(p.cpu_times()[:2])
    for child in p.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def realtime_run(robot_name: str, workdir: Path, seconds: float, busy: bool, hold_s: float = 5.0) -> dict:
    """The graph in realtime mode for `seconds` of joint goals and figure-8s (optionally with one core
    busy), then holding still. Late references and robot-layer holds are counted by the sim over the
    moving window (its /diagnostics before and after); idle CPU is each node's share of one core while
    holding (the controller with its MPC process)."""
    from robot_dyn.jobs.session import SimSession

    with BusyCore() if busy else contextlib.nullcontext(), SimSession(robot_name, workdir, mode="realtime") as s:
        before = s.client.next_diagnostics("sim: robot layer")
        start, goals, late_s, tracking = s.client.sim_time, 0, 0.0, []
        while s.client.sim_time - start < seconds:
            for q in (_goal(s.robot), s.robot.home):
                result = s.joint_goal(q, settle=0.3)
                goals += result["final_error_rad_max"] < 1e-3
                late_s = max(late_s, result["late_s"])
            f8 = s.figure_eight(radius=0.1, period=4.0, cycles=1, ramp=1.0)
            tracking.append(f8["tracking_rms_m"])
            late_s = max(late_s, f8["late_s"])
        moving_s = s.client.sim_time - start
        after = s.client.next_diagnostics("sim: robot layer")
        cpu0 = {name: _cpu_seconds(p) for name, p in s.graph.procs.items()}
        wall0 = time.monotonic()
        s.wait(hold_s)
        idle = {name: (_cpu_seconds(p) - cpu0[name]) / (time.monotonic() - wall0) for name, p in s.graph.procs.items()}
        stats = s.node_stats()
    states = int(after["states_published"]) - int(before["states_published"])
    late = int(after["late_references"]) - int(before["late_references"])
    return {"moving_s": moving_s, "states": states, "late_references": late, "late_reference_rate": late / max(states, 1),
            "layer_hold_events": int(after["layer_hold_events"]) - int(before["layer_hold_events"]),
            "motions": 3 * len(tracking), "joint_goals_reached": goals, "joint_goals": 2 * len(tracking),
            "most_late_s": late_s, "tracking_rms_m": float(max(tracking)),
            "idle_cpu_fraction": idle, "rejected_references": stats["sim"].get("rejected_references"),
            "outer_tick_us_p99": stats["controller"].get("outer_tick_us_p99"),
            "outer_compute_us_p99": stats["controller"].get("outer_compute_us_p99")}


def bench_control(robots=("panda", "iiwa14"), quick: bool = False, log=lambda *_: None) -> dict:
    from robot_dyn.nodes.middleware_probe import round_trips

    n_inner, physics_s, realtime_s = (5000, 2.0, 15.0) if quick else (50000, 10.0, 60.0)
    result = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version()}, "robots": {}}
    log("bench control: calibration and middleware")
    result["calibration"] = calibration()
    result |= round_trips(1000 if quick else 3000)
    with tempfile.TemporaryDirectory(prefix="robot_dyn_bench_") as tmp:
        for name in robots:
            log(f"bench control: {name}, in process")
            entry = inner_tick(name, n_inner) | outer_tick_core(name)
            entry["sim_rtf"] = physics_rtf(name, physics_s)
            log(f"bench control: {name}, lockstep graph")
            entry |= graph_run(name, Path(tmp) / name)
            entry["graph_vs_sim_rtf"] = entry["graph_rtf"] / entry["sim_rtf"]
            entry["middleware_us_p50"] = result["middleware_round_trip_us_p50"]
            realtime = {}
            for variant, busy in (("quiet", False), ("busy_core", True)):
                log(f"bench control: {name}, real time ({variant}, {realtime_s:.0f} s)")
                realtime[variant] = realtime_run(name, Path(tmp) / f"{name}-{variant}", realtime_s, busy)
            entry["realtime"] = realtime
            entry["late_reference_rate"] = max(r["late_reference_rate"] for r in realtime.values())
            entry["layer_hold_events"] = max(r["layer_hold_events"] for r in realtime.values())
            entry["idle_cpu_fraction"] = max(realtime["quiet"]["idle_cpu_fraction"].values())
            result["robots"][name] = entry
    worst = {  # headline figures: the worst robot for each
        "inner_tick_us_p50": max, "inner_tick_us_p99": max, "outer_tick_us_p50": max, "outer_tick_us_p99": max,
        "outer_compute_us_p50": max, "outer_compute_us_p99": max, "outer_core_us_p50": max, "outer_core_us_p99": max,
        "graph_rtf": min, "sim_rtf": min, "tracking_rms_m": max, "tracking_max_m": max,
        "late_reference_rate": max, "layer_hold_events": max, "idle_cpu_fraction": max,
    }
    for key, pick in worst.items():
        result[key] = pick(r[key] for r in result["robots"].values())
    result["targets_met"] = {
        "inner_tick_p99_below_50us": result["inner_tick_us_p99"] < 50,
        "outer_tick_p99_at_most_1ms": result["outer_tick_us_p99"] <= 1000,
        "graph_rtf_at_least_1_5": result["graph_rtf"] >= 1.5,
        "tracking_rms_below_1mm": result["tracking_rms_m"] < 1e-3,
        "late_references_below_0_1_percent": result["late_reference_rate"] < 1e-3,
        "no_layer_holds": result["layer_hold_events"] == 0,
        "idle_cpu_below_30_percent": result["idle_cpu_fraction"] < 0.3,
    }
    return result
