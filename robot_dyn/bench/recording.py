"""robot-dyn bench recording: demonstrations made the way a person makes them, measured.

Per task: episodes in the real-time graph with cameras on, the task's expert driving through the
teleop node, the recorder recording each; then the export. Figures per task (and the worst task as
headline): messages lost (per topic, received but not written, plus gaps in the stamps of the sim's
500 Hz states), stop-to-saved time (the /recorder/stop round trip), the export's time per episode,
the round trip's exactness (the exported states and actions against the recording, resampled), the
teleop latency p99 (controller diagnostics), the expert's success rate (the graph's episodes, and
more seeds in process: robot_dyn/tasks/in_process.py), and whether lerobot's own LeRobotDataset
loaded the export (in an isolated environment: robot_dyn/bench/lerobot_check.py).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from robot_dyn.jobs.demos import record_expert_demo
from robot_dyn.recording.episode_bag import TYPESTORE, episode_facts, header_ns
from robot_dyn.recording.lerobot_export import export_lerobot, read_lerobot, resample_episode
from robot_dyn.tasks import TASK_NAMES, load_task
from robot_dyn.tasks.in_process import run_expert

LEROBOT_PYTHON = os.environ.get("ROBOT_DYN_LEROBOT_PYTHON", ".venv-lerobot/bin/python")


def _lost(path: Path) -> dict:
    """Per topic, messages received but not written, and the gaps in the states' 2 ms stamps."""
    facts = episode_facts(path)
    received = dict(item.split("=") for item in facts["received"].split(",") if item)
    written = dict(item.split("=") for item in facts["written"].split(",") if item)
    lost = {t: int(received[t]) - int(written.get(t, 0)) for t in received if int(received[t]) != int(written.get(t, 0))}
    with Reader(path) as reader:
        states = [c for c in reader.connections if c.topic == "/joint_states"]
        headers = [TYPESTORE.deserialize_cdr(d, c.msgtype).header for c, _, d in reader.messages(connections=states)]
    stamps = np.array([header_ns(h) for h in headers])
    gaps = int(np.sum(np.diff(stamps) // 2_000_000 - 1))
    if gaps:
        lost["/joint_states (stamp gaps)"] = gaps
    return lost


def _episode(task: str, seed: int, workdir: Path, out: Path, log) -> dict:
    demo = record_expert_demo(task, seed, out, workdir)
    controller, sim = demo["stats"]["controller"], demo["stats"]["sim"]
    result = {"path": demo["path"], "success": demo["success"], "save_s": demo["save_s"], "lost": _lost(Path(demo["path"])),
              "teleop_latency_ms_p99": controller.get("teleop_latency_ms_p99", float("nan")),
              "teleop_latency_ms_p50": controller.get("teleop_latency_ms_p50", float("nan")),
              "late_reference_rate": sim.get("late_reference_rate", float("nan"))}
    log(f"bench recording: {task} seed {seed}: success {result['success']}, saved in {result['save_s'] * 1e3:.0f} ms, "
        f"lost {result['lost'] or 'nothing'}")
    return result


def _lerobot_loaded(dataset: Path, expected: dict, log) -> dict:
    """lerobot's LeRobotDataset on the export, in the isolated environment (ROBOT_DYN_LEROBOT_PYTHON)."""
    python = Path(LEROBOT_PYTHON)
    if not python.exists():
        return {"loaded": 0, "error": f"no lerobot environment at {python}: python3.11 -m venv .venv-lerobot && "
                                      ".venv-lerobot/bin/pip install lerobot==0.4.4 (or set ROBOT_DYN_LEROBOT_PYTHON)"}
    npz = dataset.parent / "expected.npz"
    np.savez(npz, **{f"{k}_{e}": v[k] for e, v in expected.items() for k in ("state", "action")})
    script = Path(__file__).with_name("lerobot_check.py")
    log("bench recording: loading the export with lerobot's LeRobotDataset")
    out = subprocess.run([str(python), str(script), str(dataset), str(npz)], capture_output=True, text=True, timeout=900)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"loaded": 0, "error": (out.stderr or out.stdout)[-500:]}


def bench_recording(episodes: int = 3, in_process_seeds: int = 20, tasks=TASK_NAMES, log=lambda *_: None) -> dict:
    result = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.machine(), "python": platform.python_version()},
              "tasks": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    for task in tasks:
        runs = [_episode(task, seed, work / f"{task}-{seed}", work / "recordings", log) for seed in range(episodes)]
        paths = [r["path"] for r in runs]
        log(f"bench recording: {task}: exporting {len(paths)} episodes")
        report = export_lerobot(paths, work / f"{task}-lerobot", fps=10)
        exported = read_lerobot(report.out)
        error = 0.0
        expected = {}
        for e, path in enumerate(paths):
            frames = resample_episode(Path(path), 10)
            expected[e] = {"state": frames.state.astype(np.float32), "action": frames.action.astype(np.float32)}
            error = max(error, float(np.abs(exported[e]["state"] - expected[e]["state"]).max()),
                        float(np.abs(exported[e]["action"] - expected[e]["action"]).max()))
        lerobot = _lerobot_loaded(report.out, expected, log)
        log(f"bench recording: {task}: the expert in process, {in_process_seeds} seeds")
        in_process = [run_expert(load_task(task), seed) for seed in range(in_process_seeds)]
        lost = {}
        for r in runs:
            for topic, n in r["lost"].items():
                lost[topic] = lost.get(topic, 0) + n
        result["tasks"][task] = {
            "episodes": len(runs),
            "dropped_messages": int(sum(lost.values())), "dropped_by_topic": lost,
            "save_s_p99": float(np.percentile([r["save_s"] for r in runs], 99)),
            "save_s_max": float(max(r["save_s"] for r in runs)),
            "export_s_per_episode": float(np.mean(report.seconds_per_episode)),
            "exported_frames": report.frames,
            "roundtrip_max_abs_error": error,
            "teleop_latency_ms_p50": float(np.nanmax([r["teleop_latency_ms_p50"] for r in runs])),
            "teleop_latency_ms_p99": float(np.nanmax([r["teleop_latency_ms_p99"] for r in runs])),
            "late_reference_rate": float(np.nanmax([r["late_reference_rate"] for r in runs])),
            "expert_success_rate": float(np.mean([r["success"] for r in runs])),
            "expert_success_rate_in_process": float(np.mean([r.success for r in in_process])),
            "expert_duration_s_mean_in_process": float(np.mean([r.duration_s for r in in_process])),
            "contact_force_n_p95_in_process": float(np.percentile(np.concatenate(
                [np.linalg.norm(r.contact_force_n, axis=1) for r in in_process]), 95)),
            "contact_force_n_max_in_process": float(max(np.linalg.norm(r.contact_force_n, axis=1).max() for r in in_process)),
            "lerobot_loaded": int(lerobot.get("loaded", 0)), "lerobot": lerobot,
        }
    per_task = result["tasks"].values()
    result.update({
        "dropped_messages": max(t["dropped_messages"] for t in per_task),
        "save_s_p99": max(t["save_s_p99"] for t in per_task),
        "teleop_latency_ms_p99": max(t["teleop_latency_ms_p99"] for t in per_task),
        "expert_success_rate": min(t["expert_success_rate"] for t in per_task),
        "roundtrip_max_abs_error": max(t["roundtrip_max_abs_error"] for t in per_task),
        "lerobot_loaded": min(t["lerobot_loaded"] for t in per_task),
        "targets_met": {
            "no_dropped_messages": max(t["dropped_messages"] for t in per_task) == 0,
            "save_s_p99_below_1s": max(t["save_s_p99"] for t in per_task) < 1.0,
            "teleop_latency_p99_below_20ms": max(t["teleop_latency_ms_p99"] for t in per_task) < 20.0,
            "expert_success_at_least_0_9": min(t["expert_success_rate"] for t in per_task) >= 0.9,
            "lerobot_loaded": min(t["lerobot_loaded"] for t in per_task) == 1,
        },
        "work_dir": str(work),
    })
    return result


