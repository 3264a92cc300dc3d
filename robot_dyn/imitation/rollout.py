"""Policy rollouts in one process, and their evaluation: success rate with a 95 % interval, score, timing.

A rollout is robot_dyn.tasks.in_process.run_expert with the policy in the expert's place: the same scene,
robot layer, controller loop and safety filter, the policy's commands at the task's teleop rate (its
10 Hz). The policy sees what it was trained on and nothing else: its cameras rendered at its rate
(the recording's image size, no shadows, as the demonstrations were recorded) and the measured joint
positions; not the object poses the scripted expert sees. An episode ends at the first decision that
finds the task solved, or at the time limit, or when the robot layer refuses a reference (the arm
holds: the policy drove it into a discontinuity); the last two are failures.

evaluate() runs rollouts over seeds in worker processes (one torch thread each) and returns the
success rate with its Wilson 95 % interval, the mean final score, and the policy's inference p99.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_dyn.tasks.in_process import EpisodeObserver

EVAL_SEED_OFFSET = 100_000  # evaluation seeds: this + k, never a demonstration's (those start at 0)


@dataclass
class RolloutResult:
    seed: int
    success: bool
    score: float
    duration_s: float  # sim time
    wall_s: float
    infer_ms: list = field(default_factory=list)
    refused: str = ""  # the robot layer's refusal that ended it (the arm held), else empty
    video: list = field(default_factory=list, repr=False)  # (H, W, 3) uint8 frames of the first camera


class PolicyCameras(EpisodeObserver):
    """An in-process episode's observer (run_expert) that renders the policy's cameras at its rate and keeps
    the latest images (camera name -> (H, W, 3) uint8)."""

    def __init__(self, rig, rate_hz: float, keep_video: bool = False):
        self.rig, self.rate_hz, self.keep_video = rig, rate_hz, keep_video
        self.latest, self.video = {}, []

    def start(self, arm, loop, episode) -> None:
        from robot_dyn.perception.live import SimCameraCapture

        self.arm = arm
        self.capture = SimCameraCapture(arm.backend.model, self.rig, objects=(), rate_hz=self.rate_hz, start_time=arm.time)
        self._render()  # the first decision comes before the first tick

    def _render(self) -> None:
        capture = self.capture.capture(self.arm.backend.data)
        self.latest = {f.name: f.rgb for f in capture.frames}
        if self.keep_video:
            self.video.append(capture.frames[0].rgb)

    def after_tick(self, t) -> None:
        if self.capture.due(t):
            self._render()

    def close(self) -> None:
        if hasattr(self, "capture"):
            self.capture.close()


class PolicyAgent:
    """The policy in the expert's place (run_expert's `expert`): it ignores what the scripted expert sees
    and steps the runner on the latest images and the measured joints."""

    phase, done = "policy", False

    def __init__(self, runner, cameras: PolicyCameras):
        self.runner, self.cameras = runner, cameras

    def command(self, t, tip, R, desired_tip, objects) -> np.ndarray:
        _, q, _, _ = self.cameras.arm.state()
        return self.runner.step(self.cameras.latest, q)


def policy_rig(meta: dict, task_name: str):
    """The policy's cameras as its demonstrations recorded them (robot_dyn.tasks.demo_rig at the recorded
    image size); ValueError when the task's rig lacks one."""
    from robot_dyn.tasks import DEMO_CAMERAS as CAMERAS
    from robot_dyn.tasks import demo_rig

    size = meta.get("camera_size") or (CAMERAS["camera_width"], CAMERAS["camera_height"])
    try:
        return demo_rig(task_name, tuple(size), meta["cameras"])
    except ValueError as exc:
        raise ValueError(f"policy refused: {exc}") from None


def rollout(policy, seed: int, time_limit: float = 30.0, keep_video: bool = False, sample_seed: int = 0) -> RolloutResult:
    """One episode of the policy's task (robot_dyn.imitation.policy.Policy, loaded) from task seed `seed`."""
    from robot_dyn.imitation.policy import PolicyRunner, check_compatible
    from robot_dyn.robots import load_robot
    from robot_dyn.tasks import load_task
    from robot_dyn.tasks.in_process import run_expert

    meta = policy.meta
    task = load_task(meta["task"])
    robot = load_robot(meta["robot"] or "panda")
    check_compatible(meta, joint_names=robot.joint_names)
    if abs(float(meta["fps"]) - task.teleop_rate_hz) > 1e-6:
        raise ValueError(f"policy refused: it acts at {meta['fps']} Hz, the task's commands come at {task.teleop_rate_hz} Hz")
    rig = policy_rig(meta, task.name)
    cameras = PolicyCameras(rig, float(meta["fps"]), keep_video)
    runner = PolicyRunner(policy, seed=sample_seed + seed)
    try:
        result = run_expert(task, seed, robot.name, time_limit=time_limit, settle=0.0, observer=cameras,
                            scene_extensions=[rig], expert=PolicyAgent(runner, cameras), stop_when_solved=True,
                            refusal_ends_episode=True)
    finally:
        cameras.close()
    return RolloutResult(seed, result.success, float(result.score["score"]), result.duration_s, result.wall_s,
                         runner.infer_ms, result.refused, cameras.video)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (z = 1.96) Wilson score interval of a success rate: valid at 0 and n successes, unlike the normal one."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _worker(args):
    path, seeds, time_limit, keep_video = args
    import torch

    from robot_dyn.imitation.policy import load_policy

    torch.set_num_threads(1)
    os.environ.setdefault("MUJOCO_GL", "egl")
    policy = load_policy(Path(path))
    return [rollout(policy, s, time_limit, keep_video=keep_video and k == 0) for k, s in enumerate(seeds)]


def evaluate(path: Path, episodes: int, time_limit: float = 30.0, workers: int = 2, first_seed: int = EVAL_SEED_OFFSET,
             keep_video: int = 0) -> dict:
    """`episodes` rollouts of the policy at `path` on seeds first_seed.. (held out from the demonstrations),
    in `workers` processes: {'success_rate', 'success_ci95', 'mean_score', 'policy_infer_ms_p99', 'episodes',
    'rollouts' (per seed), 'videos' (the first keep_video rollouts' frames)}."""
    from robot_dyn.parallel import spawn_map

    seeds = [first_seed + k for k in range(episodes)]
    workers = max(1, min(workers, episodes))
    shares = [seeds[w::workers] for w in range(workers)]
    jobs = [(str(path), share, time_limit, w < keep_video) for w, share in enumerate(shares)]
    results = [r for part in spawn_map(_worker, jobs, workers, chunk=1) for r in part]
    results.sort(key=lambda r: r.seed)
    successes = sum(r.success for r in results)
    infer = np.concatenate([r.infer_ms for r in results]) if results else np.zeros(1)
    return {"episodes": len(results), "success_rate": successes / max(1, len(results)),
            "success_ci95": list(wilson_interval(successes, len(results))),
            "mean_score": float(np.mean([r.score for r in results])), "policy_infer_ms_p99": float(np.percentile(infer, 99)),
            "rollout_wall_s": float(sum(r.wall_s for r in results)),
            "refusals": sum(bool(r.refused) for r in results),
            "rollouts": [{"seed": r.seed, "success": r.success, "score": r.score, "duration_s": r.duration_s,
                          **({"refused": r.refused} if r.refused else {})} for r in results],
            "videos": [r.video for r in results if r.video]}
