"""robot-dyn eval policy: a run folder that says how well a policy does its task in the sim.

runs/eval/<policy>-<stamp>/: results.json (success rate with its 95 % interval, mean score, inference
p99, every rollout), success.md (the table), rollout-<seed>.mp4 (videos of a few rollouts, the
policy's first camera), and with a dataset: success_vs_demos.png and its numbers, the policy
retrained with the same encoder and settings on 25 %, 50 % and 100 % of the export's episodes and
each evaluated on the same held-out seeds.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

FRACTIONS = (0.25, 0.5, 1.0)


def graph_rollout(policy_dir: Path, seed: int, time_limit: float, workdir: Path) -> dict:
    """One episode of the policy's task (task seed `seed`) in the real-time graph, the policy node driving:
    {'seed', 'success', 'score', 'duration_s'} from the sim's /task/success and /task/score. Ends at the
    first success or after time_limit s of sim time from the policy's first action."""
    from robot_dyn.jobs.session import SimSession

    meta = json.loads((Path(policy_dir) / "policy.json").read_text())
    with SimSession(meta["robot"] or "panda", workdir, mode="realtime", task=meta["task"], policy=str(policy_dir),
                    overrides={"sim": {"task_seed": seed}}) as s:
        c = s.client
        c.wait_for_event(c.policy_events, "policy acting", wall_timeout=120)
        start = c.sim_time
        while c.sim_time - start < time_limit and not (c.task_success and c.task_success[-1]):
            s.wait(0.2)
        return {"seed": seed, "success": bool(c.task_success and c.task_success[-1]),
                "score": float(c.task_scores[-1]) if c.task_scores else 0.0, "duration_s": c.sim_time - start}


def _write_videos(out: Path, videos: list, seeds: list, fps: float) -> list:
    import imageio.v3 as iio

    paths = []
    for frames, seed in zip(videos, seeds):
        path = out / f"rollout-{seed}.mp4"
        iio.imwrite(path, frames, fps=fps, codec="libx264", macro_block_size=8)
        paths.append(path.name)
    return paths


def _table(rows: list) -> str:
    lines = ["| policy | demonstrations | rollouts | success rate | 95 % interval | mean score | inference p99 (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["success_ci95"]
        lines.append(f"| {r['name']} | {r.get('demonstrations', '')} | {r['episodes']} | {r['success_rate']:.2f} | "
                     f"[{low:.2f}, {high:.2f}] | {r['mean_score']:.2f} | {r['policy_infer_ms_p99']:.1f} |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, rows: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = [r["demonstrations"] for r in rows]
    y = [r["success_rate"] for r in rows]
    low = [r["success_rate"] - r["success_ci95"][0] for r in rows]
    high = [r["success_ci95"][1] - r["success_rate"] for r in rows]
    ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=4)
    ax.set_xlabel("training demonstrations")
    ax.set_ylabel("success rate (95 % interval)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluation_run(policy_dir: Path, episodes: int, out: Path | None = None, time_limit: float = 30.0, workers: int = 2,
                   datasets: str | None = None, log=print) -> Path:
    from robot_dyn.imitation.policy import load_policy
    from robot_dyn.imitation.rollout import evaluate

    policy = load_policy(policy_dir)  # refuses a corrupt checkpoint before any rollout
    out = Path(out or f"runs/eval/{Path(policy_dir).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    scores = evaluate(policy_dir, episodes, time_limit, workers, keep_video=workers)
    videos = scores.pop("videos")
    seeds = [r["seed"] for r in scores["rollouts"]][:len(videos)]
    scores["videos"] = _write_videos(out, videos, seeds, float(policy.meta["fps"]))
    rows = [{"name": Path(policy_dir).name, **scores}]
    log(f"eval policy: success {scores['success_rate']:.2f} {[round(v, 2) for v in scores['success_ci95']]} over "
        f"{scores['episodes']} rollouts, mean score {scores['mean_score']:.2f}")
    if datasets:
        rows += _demonstration_curve(policy, Path(datasets), out, episodes, time_limit, workers, log)
        _plot(out / "success_vs_demos.png", [r for r in rows[1:]])
    (out / "results.json").write_text(json.dumps({"policy": str(policy_dir), "rows": rows}, indent=2))
    (out / "success.md").write_text(_table(rows))
    return out


def _demonstration_curve(policy, dataset: Path, out: Path, episodes: int, time_limit: float, workers: int, log) -> list:
    """The policy's recipe retrained on 25/50/100 % of the export's episodes, each evaluated."""
    from robot_dyn.imitation.behaviour_cloning import train_policy
    from robot_dyn.imitation.encoders import encoder_from_layout, load_encoder
    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.imitation.rollout import evaluate

    meta = policy.meta
    frames = DemoFrames.load(dataset, cameras=meta["cameras"], image_size=meta["image_size"])
    if frames.tasks and frames.tasks[0] != meta["task"]:
        raise ValueError(f"{dataset}: its task is {list(frames.tasks)}, the policy's '{meta['task']}'")
    rows = []
    for fraction in FRACTIONS:
        count = max(2, round(fraction * len(frames.episodes)))
        subset = frames.subset(frames.episodes[:count])
        source = meta["encoder"].get("source")
        if source:
            encoder, encoder_meta = load_encoder(Path(source))
            encoder_meta["path"] = source
        else:
            encoder, encoder_meta = encoder_from_layout(meta["encoder"]), None
        target = out / f"policy-{int(fraction * 100)}pct"
        train_policy(subset, encoder, encoder_meta, target, policy.config, log=log)
        scores = evaluate(target, episodes, time_limit, workers)
        scores.pop("videos")
        rows.append({"name": f"{int(fraction * 100)} % of the demonstrations", "demonstrations": count, **scores})
        log(f"eval policy: {count} demonstrations: success {scores['success_rate']:.2f}")
    return rows
