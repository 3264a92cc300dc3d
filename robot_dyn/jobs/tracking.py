"""Tracking a recorded rope episode into a run folder: what `robot-dyn track` does, and what the dynamics
jobs run for many episodes at once."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def track_run(episode_dir, out, config=None, device: str = "cpu", n_frames: int | None = None, overlay: bool = True,
              progress=None) -> dict:
    """Track a recorded episode (robot-dyn record rope) with 3D Gaussians; write out/config.json, out/track.npz
    (robot_dyn.perception.tracking.save_track), out/metrics.json (scored against the ground truth) and, with
    overlay, the particles over the camera images beside the rendered Gaussians. Returns the metrics."""
    from robot_dyn.perception.episodes import load_episode
    from robot_dyn.perception.tracking import TrackingConfig, save_track, track_episode
    from robot_dyn.perception.tracking_metrics import score

    episode = load_episode(Path(episode_dir))
    config = config or TrackingConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"episode": str(episode.path), "device": device, "frames": n_frames,
                                                 "tracking": asdict(config)}, indent=2) + "\n")
    result = track_episode(episode, config, progress=progress, device=device, n_frames=n_frames)
    save_track(out, result)
    metrics = {"episode": str(episode.path), "frames": result.n_frames, "gaussians": int(result.means.shape[1]),
               "particles": int(result.particles.shape[1]), "init_seconds": float(result.seconds[0]),
               "seconds_per_frame": result.seconds_per_frame, "cpu_seconds_per_frame": result.cpu_seconds_per_frame,
               **score(result.means, episode.rope_vertices[:result.n_frames])}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if overlay:
        from robot_dyn.perception.overlay import write_overlay

        metrics["overlay"] = [p.name for p in write_overlay(episode, result, out)]
    return metrics
