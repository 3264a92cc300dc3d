"""Search jobs behind the CLI: learn a search model from demonstrations (recorded episodes or the scripted
person in process), run searches with a strategy, and the plots a person reads (a search path over
the learned distribution; success over time per strategy)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from robot_dyn.search.demonstrations import DemoError, demo_from_episode
from robot_dyn.search.ergodic import ergodic_metric
from robot_dyn.search.execution import (STRATEGY_SEED_OFFSET, SearchJob, SearchSettings, demonstrate_searches,
                                        plan_search, run_searches, summarise, task_variant)
from robot_dyn.search.model import fit_search_model, load_search_model

PLOTTED_S = 20.0  # s of a search path drawn over the distribution (a whole budget's path fills the box)


def learn(out: Path, episodes=(), in_process: int = 0, seed: int = 0, workers: int = 2,
          wrench_topic: str = "/task/contact_wrench", task_config: str | Path | None = None, log=lambda *_: None) -> dict:
    """Fit a search model on the searches in recorded `episodes` (folders; the contact force on
    `wrench_topic`) and/or `in_process` searches of the scripted person (seeds seed..) on the fixture of
    `task_config` (default configs/tasks/insert.yaml); writes search_model.json and search_model.png to `out`."""
    from robot_dyn.tasks import load_task

    task = load_task("insert", task_config)
    demos = []
    for path in episodes:
        try:
            demos.append(demo_from_episode(Path(path), task, wrench_topic))
        except DemoError as exc:
            log(f"search learn: skipped {exc}")
    if in_process:
        log(f"search learn: the scripted person searches {in_process} holes in process")
        demos += demonstrate_searches(task, range(seed, seed + in_process), workers=workers)
    if not demos:
        raise ValueError("search learn: no demonstrated search (give recorded insert episodes or --in-process N)")
    model = fit_search_model(demos, seed=seed, meta={"task": "insert", "nominal_hole": list(task.config.nominal_hole),
                                                     "tilt_rad": task.config.tilt, "sources": [d.source for d in demos]})
    path = model.save(out)
    plot_search(out / "search_model.png", model, demos=demos)
    summary = {"model": str(path), "demonstrations": len(demos), "components": len(model.positions.weights),
               "force_components": len(model.force.weights), "extent_mm": (model.extent * 1e3).round(2).tolist(),
               "demo_seconds": [round(d.duration, 2) for d in demos]}
    log(f"search learn: {json.dumps(summary)}")
    return summary


def plot_search(path: Path, model, demos=(), search=None) -> Path:
    """The learned density over the search box (offsets from the nominal hole, mm) with the demonstrations'
    paths and, if given, the first PLOTTED_S of a search path (robot_dyn.search.paths.SearchPath) on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = model.box()
    xs, ys = np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
    density = model.density(grid).reshape(len(ys), len(xs))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.contourf(xs * 1e3, ys * 1e3, density, levels=20, cmap="Greys")
    for demo in demos:
        ax.plot(demo.offsets[:, 0] * 1e3, demo.offsets[:, 1] * 1e3, lw=0.6, alpha=0.6)
    if search is not None:
        shown = search.offsets[search.t <= search.t[0] + PLOTTED_S]
        ax.plot(shown[:, 0] * 1e3, shown[:, 1] * 1e3, "r-", lw=0.9, label=f"{search.strategy} path, first {PLOTTED_S:g} s")
        ax.legend(loc="upper right")
    ax.set(xlabel="x offset from the nominal hole (mm)", ylabel="y offset (mm)", aspect="equal",
           title="learned exploration distribution" + (" and demonstrations" if demos else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_success_over_time(path: Path, results_by_strategy: dict, budget_s: float, title: str = "") -> Path:
    """The share of searches that found the hole within t, per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.linspace(0.0, budget_s, 300)
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, results in results_by_strategy.items():
        times = np.array([r.time_s for r in results if r.found])
        ax.plot(t, [(times <= x).sum() / max(len(results), 1) for x in t], label=f"{strategy} (n={len(results)})")
    ax.set(xlabel="search time (s)", ylabel="found the hole", ylim=(0, 1.02), title=title or "success over time")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def search_run(strategy: str, out: Path, model_path: Path | None, episodes: int, first_seed: int = 10000,
               settings: SearchSettings | None = None, offset_radius: float | None = None, clearance: float | None = None,
               workers: int = 2, task_config: str | Path | None = None, log=lambda *_: None) -> dict:
    """`episodes` searches with `strategy` on holes of seeds first_seed.. (held out from demonstrations), in
    process, on the fixture of `task_config` (default configs/tasks/insert.yaml); writes results.json,
    success_over_time.png and (with a model) search_path.png to `out`."""
    from robot_dyn.tasks import load_task

    settings = (settings or SearchSettings()).validated()
    model = load_search_model(model_path) if model_path else None
    task = task_variant(load_task("insert", task_config), offset_radius, clearance)
    jobs = [SearchJob(task.config, first_seed + k, strategy, settings, model) for k in range(episodes)]
    results = run_searches(jobs, workers, progress=lambda d, n: log(f"search {strategy}: {d}/{n}"))
    out.mkdir(parents=True, exist_ok=True)
    summary = {"strategy": strategy, "model": str(model_path) if model_path else None,
               "offset_radius_m": task.config.offset_radius, "clearance_m": task.config.clearance, "tilt_rad": task.config.tilt,
               "settings": asdict(settings), **summarise(results, settings.budget_s),
               "searches_by_seed": [{k: v for k, v in asdict(r).items() if k != "demo"} for r in results]}
    if model is not None:  # the first hole's path: how well it covers the learned distribution, and a plot
        path = plan_search(strategy, settings, np.random.default_rng(first_seed + STRATEGY_SEED_OFFSET), model).path
        summary["ergodic_metric"] = ergodic_metric(path, model.density, *model.box(), settings.ergodic_coefficients)
        plot_search(out / "search_path.png", model, search=path)
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_success_over_time(out / "success_over_time.png", {strategy: results}, settings.budget_s)
    return summary


def graph_search(strategy: str, seed: int, config, out: Path, model_dir: Path | None = None, budget_s: float = 60.0) -> dict:
    """One search through the real-time graph: the sim's insert scene with `config` (written to
    out/insert.yaml, so the sim, the controller and the search node share it) and hole `seed`, the search
    node with `strategy` seeded as the in-process search of that hole is (its plan and its hand), ending
    at the drop. {'strategy', 'seed', 'found', 'time_s' (of searching, from the node's event), 'event'}."""
    import re

    from robot_dyn.jobs.session import SimSession
    from robot_dyn.tasks.insert import save_insert_config

    out.mkdir(parents=True, exist_ok=True)
    overrides = {"sim": {"task_seed": seed, "task_config": str(save_insert_config(config, out / "insert.yaml"))},
                 "search": {"seed": seed + STRATEGY_SEED_OFFSET, "budget_s": budget_s, "press_home": False}}
    with SimSession("panda", out, mode="realtime", task="insert", search=strategy,
                    search_model=str(model_dir) if model_dir else None, overrides=overrides) as s:
        c = s.client
        c.wait_for_event(c.search_events, "search ready", wall_timeout=60)
        ok, message = c.search("start")
        if not ok:
            raise RuntimeError(f"/search/start refused: {message}")
        end = c.wait_for_event(c.search_events, "", pattern=r"(found|gave up|search (stopped|aborted))", wall_timeout=120 + 3 * budget_s)
    found = re.search(r"after ([0-9.]+) s of searching", end) if end.startswith("found") else None
    return {"strategy": strategy, "seed": seed, "found": found is not None,
            "time_s": float(found.group(1)) if found else None, "event": end}
