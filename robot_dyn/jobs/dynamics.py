"""Dynamics jobs: tracked push datasets (record RGB-D pushes, track them, import the particles) and
`robot-dyn predict` (a model's rollout of a whole recorded push, beside the real one)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_dyn.jobs.tracking import track_run


def predict_push(model_dir, dataset_dir, episode: int, out, oracle: bool = False) -> dict:
    """Roll the model (or, with oracle, MuJoCo) out over push `episode` of a particle dataset from its first
    frame with a full history; write out/prediction.mp4 (robot_dyn.object_dynamics.video),
    out/prediction.npz (truth, predicted vertices, tool; m) and out/prediction.json (the error per step)."""
    from robot_dyn.object_dynamics.dataset import load_dataset
    from robot_dyn.object_dynamics.evaluation import predictor_of, vertices_of, whole_push_rollout
    from robot_dyn.object_dynamics.models import load_model
    from robot_dyn.object_dynamics.video import write_prediction_video

    dataset = load_dataset(dataset_dir)
    if not 0 <= episode < len(dataset.episodes):
        raise ValueError(f"episode {episode}: the dataset has episodes 0..{len(dataset.episodes) - 1}")
    if oracle:
        from robot_dyn.object_dynamics.oracle import MujocoOracle

        model, name = MujocoOracle(dataset.meta), "oracle"
    else:
        model, meta = load_model(model_dir)
        name = meta["model"]["kind"]
        if not np.isclose(meta["step_s"], dataset.step_s):
            raise ValueError(f"{model_dir}: trained on steps of {meta['step_s']} s, the dataset's are {dataset.step_s} s")
    data = dataset.episodes[episode]
    predictor = predictor_of(model)
    start, rollout = whole_push_rollout(predictor, data)
    vertices = vertices_of(predictor, rollout, data, start)
    truth = data.truth[start:]
    predicted = np.concatenate([truth[:1], vertices])  # from the start frame on, as the truth
    errors_mm = np.linalg.norm(predicted - truth, axis=-1).mean(axis=1) * 1e3
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    video = write_prediction_video(out / "prediction.mp4", truth, predicted, data.tool[start:], errors_mm,
                                   1.0 / dataset.step_s, dataset.meta["tool_radius"])
    np.savez(out / "prediction.npz", truth=truth, predicted=predicted, tool=data.tool[start:])
    summary = {"model": name, "episode": episode, "start_frame": start, "steps": len(vertices),
               "final_mde_mm": float(errors_mm[-1]), "max_mde_mm": float(errors_mm.max()),
               "mde_mm_per_step": [round(float(e), 3) for e in errors_mm], "video": str(video)}
    (out / "prediction.json").write_text(json.dumps(summary, indent=2))
    return summary


def _track_job(job: tuple) -> dict:
    import torch

    episode_dir, out = job
    torch.set_num_threads(1)  # one tracker per core
    return track_run(episode_dir, out, overlay=False)


def record_tracked_pushes(out, n: int, seed: int = 0, workers: int = 2, n_particles: int | None = 32, config=None,
                          progress=None):
    """The honest setting's data: n RGB-D pushes (robot-dyn record rope at 160x120, no shadows; push i uses
    the seed (seed, i)) in out/rgbd, each tracked with 3D Gaussians (the tracking: section of
    configs/perception.yaml) in out/tracks (in `workers` processes), imported as a "tracked" particle
    dataset in out/dataset with n_particles of each track's control particles. Returns the dataset."""
    from robot_dyn.object_dynamics.dataset import import_tracks
    from robot_dyn.parallel import spawn_map
    from robot_dyn.perception.episodes import EpisodeConfig, load_config, record_episodes

    out = Path(out)
    config = config if isinstance(config, EpisodeConfig) else load_config(config)
    episodes = record_episodes(out / "rgbd", n, seed, config.with_images(160, 120, 0), progress=False)
    tracks = [out / "tracks" / p.name for p in episodes]
    spawn_map(_track_job, list(zip(episodes, tracks)), workers, chunk=1, progress=progress)
    return import_tracks(out / "dataset", episodes, tracks, n_particles)
