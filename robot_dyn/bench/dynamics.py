"""`robot-dyn bench dynamics`: particle dynamics models against the ground truth on held-out pushes.

Pushes are simulated (robot_dyn.object_dynamics.dataset.record_pushes: ground-truth particles, the
rope's 32 vertices) for training (seeds (0, i)) and held out (seeds (1, i)). Trained: the GNN and the
flat MLP (same steps, batch and loss), the spring-mass model (identified); zero motion and the MuJoCo
oracle need no training. Each is scored on the held-out pushes' pushing frames
(robot_dyn.object_dynamics.evaluation) at 1, 5, 10 and 20 steps and over the whole push. Speed: 10-step
rollouts of 1,000 batched samples per second for the GNN, against the oracle's single-sample rollouts
in the same run (a ratio: these machines are noisy). Writes report.json, the models and an error-curve
plot to the run folder.

The honest setting (`tracked` pushes, 0 to skip it): RGB-D pushes are recorded and tracked with 3D
Gaussians (robot_dyn.jobs.dynamics.record_tracked_pushes), the GNN is trained on the tracked control
particles (32 of them) and scored against the ground truth on tracked held-out pushes, beside zero motion
and the tracking's own error (the scale a prediction is held to). The same held-out pushes are rendered
(robot_dyn.object_dynamics.rendering): the tracked Gaussians skinned to the predicted particles, against
the track itself and the Gaussians left where they started, as mask IoU and PSNR against the images.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_dyn.object_dynamics.evaluation import HORIZONS, evaluate
from robot_dyn.object_dynamics.models import ModelConfig
from robot_dyn.object_dynamics.training import TrainConfig, train

TRAINED = ("gnn", "mlp", "spring_mass", "zero_motion")
SPEED_SAMPLES = 1000
SPEED_STEPS = 10


def rollout_speed(model, dataset, samples: int = SPEED_SAMPLES, steps: int = SPEED_STEPS, repeats: int = 3) -> float:
    """Rollouts of `steps` steps per second, `samples` of them batched, from a held-out pushing frame
    (the best of `repeats` timings)."""
    import torch

    from robot_dyn.object_dynamics.models import rollout

    episode, history = dataset.episodes[0], model.config.history
    t = history
    objects = torch.as_tensor(episode.particles[None, t - history:t + 1], dtype=torch.float32).repeat(samples, 1, 1, 1)
    tool = torch.as_tensor(episode.tool[None, t - history:t + 1], dtype=torch.float32).repeat(samples, 1, 1)
    path = tool[:, -1:] + torch.randn(samples, steps, 3) * 0.005
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            rollout(model, objects, tool, path)
            best = min(best, time.perf_counter() - start)
    return samples / best


def _plot(curves: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("steps ahead (0.1 s each)")
    ax.set_ylabel("mean vertex error, mm")
    ax.set_title("held-out pushes: prediction error vs horizon")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "mde_vs_steps.png", dpi=120)
    plt.close(fig)


def tracked_setting(folder: Path, train_pushes: int, test_pushes: int, config: TrainConfig, workers: int, log) -> dict:
    """The honest setting of the module notes: figures for report.json's 'tracked' entry."""
    from robot_dyn.jobs.dynamics import record_tracked_pushes
    from robot_dyn.object_dynamics.models import build_model, load_model
    from robot_dyn.object_dynamics.rendering import compare_renders

    log(f"bench dynamics: recording and tracking {train_pushes} training and {test_pushes} held-out RGB-D pushes")
    training = record_tracked_pushes(folder / "tracked_train", train_pushes, seed=2, workers=workers)
    held_out = record_tracked_pushes(folder / "tracked_test", test_pushes, seed=3, workers=workers)
    train(training, folder / "models" / "gnn_tracked", ModelConfig(n_particles=training.n_particles), config, log=log)
    gnn, _ = load_model(folder / "models" / "gnn_tracked")
    zero = build_model(ModelConfig(kind="zero_motion"))
    tracking = [json.loads((folder / "tracked_test" / "tracks" / e.name / "metrics.json").read_text())
                for e in held_out.episodes]
    result = {"train_pushes": train_pushes, "test_pushes": test_pushes, "particles": training.n_particles,
              "models": {"gnn": evaluate(gnn, held_out, whole_push=True),
                         "zero_motion": evaluate(zero, held_out, whole_push=True)},
              "tracking_error_mm_mean": float(np.mean([m["mean_3d_error_mm"] for m in tracking])),
              "tracking_error_mm_final_median": float(np.mean([m["final_median_3d_error_mm"] for m in tracking]))}
    result["gnn_vs_zero_motion_at_10"] = result["models"]["gnn"]["mde_mm_at_10"] / result["models"]["zero_motion"]["mde_mm_at_10"]
    renders = [compare_renders(gnn, e, folder / "tracked_test" / "rgbd" / e.name, folder / "tracked_test" / "tracks" / e.name)
               for e in held_out.episodes]
    result["rendering"] = {variant: {key: float(np.mean([r[variant][key] for r in renders])) for key in renders[0][variant]}
                           for variant in renders[0]}
    log(f"bench dynamics: tracked: GNN MDE at 10 steps {result['models']['gnn']['mde_mm_at_10']:.2f} mm "
        f"(zero motion {result['models']['zero_motion']['mde_mm_at_10']:.2f}), mask IoU predicted "
        f"{result['rendering']['predicted']['mask_iou']:.2f} / tracked {result['rendering']['tracked']['mask_iou']:.2f} "
        f"/ frozen {result['rendering']['frozen']['mask_iou']:.2f}")
    return result


def bench_dynamics(quick: bool = False, train_pushes: int | None = None, test_pushes: int | None = None,
                   steps: int | None = None, tracked: int | None = None, workers: int = 2, out: str | None = None,
                   log=lambda *_: None) -> dict:
    from robot_dyn.object_dynamics.dataset import record_pushes
    from robot_dyn.object_dynamics.models import load_model
    from robot_dyn.object_dynamics.oracle import MujocoOracle

    started = time.perf_counter()
    train_pushes = train_pushes or (24 if quick else 200)
    test_pushes = test_pushes or (6 if quick else 40)
    steps = steps or (300 if quick else 3000)
    tracked = (2 if quick else 30) if tracked is None else tracked
    with tempfile.TemporaryDirectory(prefix="bench-dynamics-") as scratch:
        folder = Path(out) if out else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        log(f"bench dynamics: simulating {train_pushes} training and {test_pushes} held-out pushes")
        training = record_pushes(folder / "train", train_pushes, seed=0, workers=workers)
        held_out = record_pushes(folder / "test", test_pushes, seed=1, workers=workers)
        config = TrainConfig(steps=steps, log_every=max(1, steps // 6))
        result = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.machine(),
                              "python": platform.python_version()},
                  "train_pushes": train_pushes, "test_pushes": test_pushes, "train_steps": steps,
                  "step_s": training.step_s, "horizons": list(HORIZONS), "models": {}}
        models = {}
        for kind in TRAINED:
            begin = time.perf_counter()
            model_config = ModelConfig(kind=kind, n_particles=training.n_particles)
            train(training, folder / "models" / kind, model_config, config, log=log)
            models[kind], _ = load_model(folder / "models" / kind)
            scores = evaluate(models[kind], held_out, whole_push=True)
            result["models"][kind] = {**scores, "train_s": time.perf_counter() - begin}
            log(f"bench dynamics: {kind}: MDE at 10 steps {scores['mde_mm_at_10']:.2f} mm, whole push "
                f"{scores['whole_push_mde_mm']:.2f} mm")
        oracle = MujocoOracle(held_out.meta)
        begin = time.perf_counter()
        result["models"]["oracle"] = evaluate(oracle, held_out, whole_push=True)
        result["models"]["oracle"]["eval_s"] = time.perf_counter() - begin
        log(f"bench dynamics: oracle: MDE at 10 steps {result['models']['oracle']['mde_mm_at_10']:.2f} mm")
        gnn, zero, spring = (result["models"][k]["mde_mm_at_10"] for k in ("gnn", "zero_motion", "spring_mass"))
        result["gnn_vs_zero_motion_at_10"] = gnn / zero
        result["gnn_vs_spring_mass_at_10"] = gnn / spring
        result["rollouts_per_s"] = rollout_speed(models["gnn"], held_out)
        episode = held_out.episodes[0]
        start = time.perf_counter()
        oracle.predict(episode, np.array([1]), SPEED_STEPS)
        result["oracle_rollouts_per_s"] = 1.0 / (time.perf_counter() - start)
        result["gnn_vs_oracle_rollout_speed"] = result["rollouts_per_s"] / result["oracle_rollouts_per_s"]
        result["targets"] = {"gnn_at_10_at_most_half_of_zero_motion": result["gnn_vs_zero_motion_at_10"] <= 0.5,
                             "gnn_at_10_below_spring_mass": gnn < spring}
        if tracked:
            result["tracked"] = tracked_setting(folder, tracked, max(2, tracked // 4), config, workers, log)
        result["wall_s"] = time.perf_counter() - started
        _plot({k: v["mde_mm_curve"] for k, v in result["models"].items()}, folder)
        (folder / "report.json").write_text(json.dumps(result, indent=2))
        if out:
            result["out"] = str(folder)
    return result
