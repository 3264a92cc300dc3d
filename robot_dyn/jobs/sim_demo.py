"""The main job: the node graph in MuJoCo, headless. The arm goes through joint goals and
a Cartesian figure-8; the run folder gets metrics.json, plots, a video and report.md."""
from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np

from robot_dyn import paths
from robot_dyn.jobs.report import (
    align_references, plot_cartesian, plot_joint_tracking, plot_torques, render_replay, rms, write_json,
)
from robot_dyn.jobs.session import SimSession


def load_demo_config(path: Path | None = None) -> dict:
    path = Path(path) if path else paths.config_path("demo.yaml")
    config = paths.read_yaml_mapping(path)
    for key in ("joint_goals_from_home", "figure_eight", "settle_s", "video"):
        if key not in config:
            raise ValueError(f"{path}: missing field '{key}'")
    return config


def run_demo(robot: str = "panda", backend: str = "mujoco", effects: str = "nominal", out_root: Path = Path("runs"),
             video: bool = True, config_path: Path | None = None, overrides: dict | None = None,
             hardware_emulation: str | None = None, log=print) -> Path:
    """hardware_emulation 'franka': the deployment rehearsal (robot fr3, the hardware graph against the emulated
    joint_trajectory_controller, real time; robot_dyn.bringup.graph.rehearsal_graph)."""
    config = load_demo_config(config_path)
    if hardware_emulation:
        robot = "fr3"
    suffix = f"-{hardware_emulation}-emulation" if hardware_emulation else ""
    run_dir = Path(out_root) / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{robot}-{backend}{suffix}"
    run_dir.mkdir(parents=True, exist_ok=False)
    log(f"run folder: {run_dir}")
    wall0 = time.monotonic()
    with SimSession(robot, run_dir / "logs", backend=backend, effects=effects, overrides=overrides,
                    record_references=True, hardware_emulation=hardware_emulation) as s:
        node_params = {n.name: n.parameters for n in s.nodes}
        write_json(run_dir / "config.json", {"demo": config, "nodes": node_params})
        log(f"graph up ({' + '.join(node_params)}, DDS domain {s.graph.domain_id}, {node_params['sim']['mode']}) "
            f"after {time.monotonic() - wall0:.1f} s")
        goals = []
        offsets = config["joint_goals_from_home"]
        for i, offset in enumerate(offsets, 1):
            goal = np.clip(s.robot.home + np.asarray(offset, float), s.robot.q_min + 0.05, s.robot.q_max - 0.05)
            result = s.joint_goal(goal, settle=config["settle_s"])
            goals.append({"goal_rad": goal.tolist(), **result})
            log(f"[{i}/{len(offsets) + 1}] joint goal {i}: {result['duration_s']:.2f} s, final error "
                f"{1e3 * result['final_error_rad_max']:.3f} mrad")
        f8 = s.figure_eight(**config["figure_eight"])
        log(f"[{len(offsets) + 1}/{len(offsets) + 1}] figure-8: tracking RMS {1e3 * f8['tracking_rms_m']:.4f} mm, "
            f"max {1e3 * f8['tracking_max_m']:.4f} mm")
        s.wait(config["settle_s"])
        rtf = s.real_time_factor()
        client = s.client
        t, q, qd, tau = client.state_arrays()
        t_ref = np.array([r[0] for r in client.references])
        q_ref_raw = np.array([r[1] for r in client.references])
        events = {"robot_layer": list(client.robot_events), "controller": list(client.controller_events)}
        node_stats = s.node_stats()

    mask = t >= t_ref[0]
    t, q, tau = t[mask], q[mask], tau[mask]
    q_ref = align_references(t, t_ref, q_ref_raw)
    metrics = {
        "robot": robot, "backend": backend, "effects": effects, "mode": node_params["sim"]["mode"],
        "hardware_emulation": hardware_emulation or "",
        "figure_eight": {k: f8[k] for k in ("tracking_rms_m", "tracking_max_m", "samples")} | config["figure_eight"],
        "joint_goals": goals,
        "joint_tracking_rms_rad": [rms(col) for col in (q_ref - q).T],
        "joint_tracking_max_rad": np.abs(q_ref - q).max(axis=0).tolist(),
        "torque_peak_nm": np.abs(tau).max(axis=0).tolist(),
        "torque_peak_share_of_limit": float((np.abs(tau).max(axis=0) / s.robot.tau_max).max()),
        "graph_rtf": rtf,
        "sim_time_s": float(t[-1] - t[0]),
        "ticks": {
            "inner": {k.removeprefix("inner_tick_"): v for k, v in node_stats["sim"].items() if k.startswith("inner_tick_")},
            "outer": {k.removeprefix("outer_tick_"): v for k, v in node_stats["controller"].items() if k.startswith("outer_tick_")},
        },
        "sim_node": {k: node_stats["sim"].get(k) for k in ("rtf", "physics_rtf", "rejected_references", "missed_ticks")},
        "events": events,
    }
    write_json(run_dir / "metrics.json", metrics)
    plot_joint_tracking(run_dir / "joint_tracking.png", s.robot, t, q, q_ref)
    plot_torques(run_dir / "torques.png", s.robot, t, tau)
    plot_cartesian(run_dir / "figure8.png", f8["t"], f8["p_actual"], f8["p_desired"], f8["plane"])
    if video:
        v = config["video"]
        frames = render_replay(run_dir / "replay.mp4", s.robot, t, q, v["fps"], v["width"], v["height"], trace=f8["p_desired"])
        log(f"video: {frames} frames -> replay.mp4")
    (run_dir / "report.md").write_text(report_text(metrics, video))
    log(f"done in {time.monotonic() - wall0:.0f} s wall; report: {run_dir / 'report.md'}")
    return run_dir


def report_text(m: dict, video: bool) -> str:
    f8, ticks = m["figure_eight"], m["ticks"]
    emulation = m.get("hardware_emulation")
    holds = sum("Aborted due to command timeout" in e for e in m["events"]["robot_layer"])
    lines = [
        f"# robot_dyn simulation run: {m['robot']} in {m['backend']} ({m['effects']} effects, {m['mode']})",
        "",
        *([f"Deployment rehearsal: the hardware graph against the emulated {emulation} controller "
           f"(joint_trajectory_controller, effort interface, gains from hardware/franka/fr3_impedance_controllers.yaml). "
           f"JTC holds after cmd_timeout: {holds} times. References the adapter refused are in logs/hardware_adapter.log.",
           ""] if emulation else []),
        "| figure | value |",
        "|---|---|",
        f"| figure-8 tracking RMS (r = {f8['radius']} m, T = {f8['period']} s) | {1e3 * f8['tracking_rms_m']:.4f} mm |",
        f"| figure-8 tracking max | {1e3 * f8['tracking_max_m']:.4f} mm |",
        f"| joint goals, worst final error | {1e3 * max(g['final_error_rad_max'] for g in m['joint_goals']):.3f} mrad |",
        f"| joint tracking RMS, worst joint | {1e3 * max(m['joint_tracking_rms_rad']):.3f} mrad |",
        f"| peak torque, share of the limit | {100 * m['torque_peak_share_of_limit']:.0f} % |",
        f"| real-time factor of the graph ({m['mode']} over DDS) | {m['graph_rtf']:.2f} |",
        f"| inner tick ({'emulated JTC' if emulation else 'impedance law'}) p50 / p99 | {ticks['inner'].get('us_p50', float('nan')):.1f} / {ticks['inner'].get('us_p99', float('nan')):.1f} us |",
        f"| outer tick (IK + feedforward + publish) p50 / p99 | {ticks['outer'].get('us_p50', float('nan')):.0f} / {ticks['outer'].get('us_p99', float('nan')):.0f} us |",
        f"| rejected {'trajectories (emulated JTC)' if emulation else 'references'} | {m['sim_node']['rejected_references']} |",
        "",
        "Tracking error is the distance between forward kinematics of the measured joint positions and the",
        "desired path at the same sim time. Plots: `joint_tracking.png`, `torques.png`, `figure8.png`"
        + (", video: `replay.mp4`." if video else "."),
        "Everything measured is in `metrics.json`; node logs and parameter files are in `logs/`.",
        "",
    ]
    return "\n".join(lines)
