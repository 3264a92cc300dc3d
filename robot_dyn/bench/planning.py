"""`robot-dyn bench planning`: pushing the rope to a target shape with a dynamics model, in closed loop, in
process.

For each target shape (straight, U, S) and seed (held-out start shapes, seeds 30000..), the rope starts in
the seed's random shape, and each planner gets up to `pushes` rounds of plan, push (through the control
cores) and observe (the rope's true vertices; the graph's dynamics_planner node runs the same loop on the
perception node's particles):
- gnn: robot_dyn.object_dynamics.planning.plan_push with the trained GNN (a model folder);
- oracle: the same planner with MuJoCo itself as the model (robot_dyn.object_dynamics.oracle.MujocoRollouts:
  the rope and the pusher without the arm), with `oracle_samples` per round instead of the GNN's, since each
  of its rollouts costs about a third of a second on one core;
- random: one random feasible push aimed at the rope per round.
Figures per planner: success rate at Chamfer thresholds (the Chamfer distance to the target after the last
push at most the threshold; a run stops early once it is within the smallest), the share of runs whose start
was already within each threshold (some start shapes are nearly straight), the final Chamfer distance's
median, its ratio to the start's, and the planning time per push (p50, p95; one core per run). The JSON
keeps every run's Chamfer distances; `out` adds report.json with every run's shapes and pushes too,
shapes.png (the first seed's start, target and final rope per shape and planner) and
success_vs_threshold.png. gnn_success_vs_oracle: the GNN's success rate at 10 mm over the oracle's.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from robot_dyn.object_dynamics.planning import TARGET_SHAPES, PlannerConfig

FIRST_SEED = 30000
THRESHOLDS_MM = (5.0, 10.0, 15.0)
SUCCESS_MM = 10.0  # the threshold gnn_success_vs_oracle compares at
PLANNERS = ("gnn", "oracle", "random")


def _episode(job: tuple) -> dict:
    import torch

    from robot_dyn.object_dynamics.models import load_model
    from robot_dyn.object_dynamics.oracle import MujocoRollouts
    from robot_dyn.object_dynamics.planning import LearnedRollouts, plan_push, random_plan
    from robot_dyn.object_dynamics.pushing import push_to_shape
    from robot_dyn.perception.episodes import RopePushSim, load_config

    planner_name, model_dir, shape, seed, pushes, config = job
    torch.set_num_threads(1)
    scene = load_config()
    if planner_name == "random":
        planner = lambda p, t, h, s: random_plan(p, config, s)  # noqa: E731
    else:
        model, meta = load_model(model_dir)
        predictor = LearnedRollouts(model, meta["step_s"]) if planner_name == "gnn" else MujocoRollouts(scene, meta["step_s"])
        planner = lambda p, t, h, s: plan_push(predictor, p, t, h, config, s)  # noqa: E731
    sim = RopePushSim(scene, render=False)
    result = push_to_shape(sim, planner, shape, seed, pushes, config, stop_at=min(THRESHOLDS_MM) * 1e-3)
    return {"planner": planner_name, **result}


def summarise(runs: list[dict]) -> dict:
    """Success at each threshold, final and start Chamfer (mm), plan times (s) of a planner's runs."""
    final = np.array([r["chamfer_m"][-1] for r in runs]) * 1e3
    start = np.array([r["chamfer_m"][0] for r in runs]) * 1e3
    plan_s = np.concatenate([r["plan_s"] for r in runs]) if runs else np.zeros(0)
    return {"runs": len(runs), **{f"success_rate_at_{t:g}_mm": float(np.mean(final <= t)) for t in THRESHOLDS_MM},
            **{f"start_within_{t:g}_mm": float(np.mean(start <= t)) for t in THRESHOLDS_MM},
            "final_chamfer_mm_median": float(np.median(final)), "start_chamfer_mm_median": float(np.median(start)),
            "final_over_start_median": float(np.median(final / start)),
            "pushes_mean": float(np.mean([len(r["chamfer_m"]) - 1 for r in runs])),
            "plan_s_p50": float(np.median(plan_s)) if plan_s.size else 0.0,
            "plan_s_p95": float(np.percentile(plan_s, 95)) if plan_s.size else 0.0}


def bench_planning(model_dir, quick: bool = False, seeds: int | None = None, pushes: int = 5, workers: int = 2,
                   oracle_samples: int = 32, out: str | None = None, log=lambda *_: None) -> dict:
    from robot_dyn.object_dynamics.models import load_model
    from robot_dyn.parallel import spawn_map

    load_model(model_dir)  # a bad folder is refused here, with its file named, not in every worker
    started = time.perf_counter()
    seeds = seeds or (2 if quick else 20)
    shapes = ("straight", "u") if quick else TARGET_SHAPES
    configs = {"gnn": PlannerConfig(), "random": PlannerConfig(),
               "oracle": PlannerConfig(samples=oracle_samples, elites=max(2, oracle_samples // 8))}
    # the slow oracle runs first, so that the others fill the workers at the end
    jobs = [(planner, str(model_dir), shape, FIRST_SEED + k, pushes, configs[planner])
            for planner in ("oracle", "gnn", "random") for shape in shapes for k in range(seeds)]
    log(f"bench planning: {len(jobs)} closed-loop runs of up to {pushes} pushes")
    runs = spawn_map(_episode, jobs, workers, chunk=1,
                     progress=lambda d, n: log(f"  {d}/{n}") if d % 10 == 0 or d == n else None)
    result = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.machine(), "python": platform.python_version()},
              "model": str(model_dir), "seeds_per_shape": seeds, "max_pushes": pushes, "thresholds_mm": list(THRESHOLDS_MM),
              "planner_config": {name: asdict(c) for name, c in configs.items()}, "planners": {}, "shapes": {}}
    for planner in PLANNERS:
        mine = [r for r in runs if r["planner"] == planner]
        result["planners"][planner] = summarise(mine)
        result["shapes"][planner] = {shape: summarise([r for r in mine if r["shape"] == shape]) for shape in shapes}
    result["runs"] = [{k: r[k] for k in ("planner", "shape", "seed", "chamfer_m", "plan_s")} for r in runs]
    gnn, rnd, oracle = (result["planners"][p] for p in ("gnn", "random", "oracle"))
    result["plan_s_p50"] = gnn["plan_s_p50"]
    key = f"success_rate_at_{SUCCESS_MM:g}_mm"
    for planner in PLANNERS:  # the headline figure, named as the issue names it
        result["planners"][planner]["success_rate"] = result["planners"][planner][key]
    result["gnn_success_vs_oracle"] = gnn[key] / oracle[key] if oracle[key] > 0 else None
    result["gnn_vs_random_final_chamfer"] = gnn["final_chamfer_mm_median"] / rnd["final_chamfer_mm_median"]
    result["wall_s"] = time.perf_counter() - started
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps({**result, "runs": runs}, indent=1) + "\n")
        _plot_shapes(out_dir / "shapes.png", runs, shapes)
        _plot_success(out_dir / "success_vs_threshold.png", runs)
    return result


def _plot_shapes(path: Path, runs: list[dict], shapes) -> None:
    """The first seed of each shape (rows) for each planner (columns): start, target and final rope, pushes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shapes), len(PLANNERS), figsize=(4 * len(PLANNERS), 3.6 * len(shapes)), squeeze=False)
    for row, shape in enumerate(shapes):
        for col, planner in enumerate(PLANNERS):
            ax = axes[row, col]
            mine = [r for r in runs if r["planner"] == planner and r["shape"] == shape]
            run = min(mine, key=lambda r: r["seed"])
            for key, style, label in (("start_xy", dict(color="0.6", ls="--"), "start"),
                                      ("target_xy", dict(color="tab:green", marker=".", ls="none"), "target"),
                                      ("final_xy", dict(color="tab:blue", lw=2), "final")):
                xy = np.asarray(run[key]) * 1e3
                ax.plot(xy[:, 0], xy[:, 1], label=label, **style)
            for x0, y0, x1, y1 in np.asarray(run["pushes_xy"]).reshape(-1, 4) * 1e3:
                ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="tab:red"))
            ax.set_title(f"{planner}, {shape} (seed {run['seed']}): {run['chamfer_m'][-1] * 1e3:.1f} mm", fontsize=9)
            ax.set_aspect("equal", adjustable="datalim")  # a straight rope would make a sliver of a panel
            ax.grid(alpha=0.3)
            if row == len(shapes) - 1:
                ax.set_xlabel("x, mm")
            if col == 0:
                ax.set_ylabel("y, mm")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_success(path: Path, runs: list[dict]) -> None:
    """Per planner, the share of runs whose final Chamfer distance is within each threshold (0 to 40 mm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.linspace(0.0, 40.0, 161)
    fig, ax = plt.subplots(figsize=(6, 4))
    for planner in PLANNERS:
        final = np.array([r["chamfer_m"][-1] for r in runs if r["planner"] == planner]) * 1e3
        ax.plot(thresholds, [np.mean(final <= t) for t in thresholds], label=planner)
    start = np.array([r["chamfer_m"][0] for r in runs if r["planner"] == "gnn"]) * 1e3
    ax.plot(thresholds, [np.mean(start <= t) for t in thresholds], color="0.6", ls="--", label="at the start")
    ax.set_xlabel("Chamfer distance to the target, mm")
    ax.set_ylabel("share of runs within it")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
