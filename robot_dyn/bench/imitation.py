"""robot-dyn bench imitation: does DynaMo pretraining make better visuomotor policies than its baselines?

Per task: demonstrations by the scripted expert (in process, recorded in the recorder's format with
the graph's messages: robot_dyn.jobs.demos), exported as LeRobot; every encoder pretrained on the same
frames (DynaMo, random init, SimSiam, inverse dynamics to actions: robot_dyn.imitation.pretrain); a
policy per encoder and head trained by behaviour cloning on the frozen encoder, plus one trained end to
end; per encoder the head with the lowest validation action error is kept (chosen before any rollout,
so the rollouts do not select), and each kept policy, and the end-to-end one, runs `rollouts` episodes
on held-out seeds in process (robot_dyn.imitation.rollout); the DynaMo policy also runs the first
`graph_rollouts` of those seeds through the policy node in the real-time graph (graph_check: is its
success rate inside the in-process interval). JSON per task under tasks.<name>: variants.<encoder>
(success_rate, success_ci95, mean_score, head, pretrain_s, train_s, policy_infer_ms_p99),
dynamo_minus_random, policy_infer_ms_p99 (worst variant), and the wall times of every stage.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ENCODERS = ("dynamo", "random", "simsiam", "inverse_actions")


@dataclass(frozen=True)
class ImitationBenchConfig:
    tasks: tuple = ("pusht",)
    demos: int = 100
    cameras: tuple = ("cam0",)
    pretrain_steps: int = 1000
    pretrain_batch: int = 32
    policy_steps: int = 4000
    end_to_end_steps: int = 1500
    heads: tuple = ("mlp", "diffusion", "vqbet")
    rollouts: int = 50
    graph_rollouts: int = 5  # of the dynamo policy, through the policy node in the real-time graph
    time_limit_s: float = 30.0
    workers: int = 2
    seed: int = 0

    @classmethod
    def quick(cls) -> "ImitationBenchConfig":
        """A smoke run of every stage (minutes): figures without meaning."""
        return cls(demos=4, pretrain_steps=4, pretrain_batch=8, policy_steps=20, end_to_end_steps=4, heads=("mlp", "diffusion", "vqbet"),
                   rollouts=2, graph_rollouts=1, time_limit_s=3.0)


def graph_check(policy: Path, config: ImitationBenchConfig, workdir: Path, rate: float, interval, log) -> dict:
    """The policy on the first held-out seeds through the policy node in the real-time graph: its success
    rate, and whether it lies in the in-process rollouts' interval (what lets the bulk run in process)."""
    from robot_dyn.imitation.rollout import EVAL_SEED_OFFSET, wilson_interval
    from robot_dyn.jobs.policy_eval import graph_rollout

    started = time.monotonic()
    episodes = [graph_rollout(policy, EVAL_SEED_OFFSET + k, config.time_limit_s, workdir / str(k))
                for k in range(config.graph_rollouts)]
    successes = sum(e["success"] for e in episodes)
    graph_rate = successes / len(episodes)
    result = {"episodes": len(episodes), "success_rate": graph_rate, "success_ci95": list(wilson_interval(successes, len(episodes))),
              "mean_score": sum(e["score"] for e in episodes) / len(episodes), "in_process_success_rate": rate,
              "within_in_process_ci95": bool(interval[0] <= graph_rate <= interval[1]), "rollouts": episodes,
              "wall_s": time.monotonic() - started}
    log(f"bench imitation: graph check: {successes} of {len(episodes)} through the policy node "
        f"(in process {rate:.2f} {[round(v, 2) for v in interval]})")
    return result


def _stage(path: Path, compute, reuse: bool):
    """The JSON a stage left at `path` when reuse (the bench resumed in a kept --out folder), else compute()'s
    result, written there."""
    if reuse and path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def run(config: ImitationBenchConfig, workdir: Path | None = None, log=print) -> dict:
    """The benchmark; in a given workdir every finished stage (demonstrations and export, each encoder,
    each policy, each variant's rollouts) is kept, and a rerun there resumes after the last one. The
    report so far is workdir/report.json."""
    import torch

    from robot_dyn.imitation.behaviour_cloning import train_policy
    from robot_dyn.imitation.encoders import encoder_from_layout, load_encoder
    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.imitation.policy import PolicyConfig
    from robot_dyn.imitation.pretrain import PretrainConfig, build_method, preset, pretrain
    from robot_dyn.imitation.rollout import evaluate
    from robot_dyn.jobs.demos import record_expert_demos_in_process
    from robot_dyn.recording.lerobot_export import export_lerobot

    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    owned = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench-imitation-"))
    reuse = not owned
    started = time.monotonic()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
              "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()}, "tasks": {}}

    def save_report():
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "report.json").write_text(json.dumps(report, indent=2))

    try:
        for task in config.tasks:
            task_started = time.monotonic()
            root = workdir / task

            def demonstrations():
                t0 = time.monotonic()
                demos = record_expert_demos_in_process(task, range(config.seed, config.seed + config.demos),
                                                       root / "episodes", config.cameras, config.workers)
                ok = [d for d in demos if d["success"]]
                demo_s = time.monotonic() - t0
                log(f"bench imitation: {task}: {len(ok)} of {len(demos)} expert demonstrations succeeded ({demo_s:.0f} s)")
                t0 = time.monotonic()
                shutil.rmtree(root / "lerobot", ignore_errors=True)
                export_lerobot([Path(d["path"]) for d in ok], root / "lerobot", fps=10.0)
                return {"demonstrations": len(ok), "expert_success_rate": len(ok) / max(1, len(demos)),
                        "demonstrations_s": demo_s, "export_s": time.monotonic() - t0}

            result = {**_stage(root / "demonstrations.json", demonstrations, reuse), "variants": {}, "head_selection": {}}
            frames = DemoFrames.load(root / "lerobot", cameras=config.cameras, image_size=preset("cpu")[0])
            result["frames"] = int(sum(len(s) for s in frames.state.values()))
            report["tasks"][task] = result

            def policy(name: str, encoder_dir: Path | None, policy_config: PolicyConfig) -> dict:
                out = root / "policies" / name

                def train():
                    if encoder_dir is None:  # end to end from the random baseline's initialisation
                        encoder, meta = encoder_from_layout(load_encoder(root / "encoders" / "random")[0].layout()), None
                    else:
                        encoder, meta = load_encoder(encoder_dir)
                        meta["path"] = str(encoder_dir)
                    metrics = train_policy(frames, encoder, meta, out, policy_config, log=log)
                    return {"val_action_mse": metrics["final"].get("val_action_mse", metrics["final"]["loss"]),
                            "train_s": metrics["train_s"], "policy": str(out)}

                return _stage(out / "bench.json", train, reuse)

            for encoder_name in ENCODERS:
                encoder_dir = root / "encoders" / encoder_name

                def encoder():
                    t0 = time.monotonic()
                    _, method = build_method(encoder_name, seed=config.seed)
                    pretrain(frames, encoder_dir, method, PretrainConfig(steps=config.pretrain_steps,
                                                                         batch_size=config.pretrain_batch, seed=config.seed,
                                                                         log_every=max(1, config.pretrain_steps // 5)),
                             log=log, train=encoder_name != "random")
                    return {"pretrain_s": time.monotonic() - t0}

                pretrain_s = _stage(encoder_dir / "bench.json", encoder, reuse)["pretrain_s"]
                candidates = {head: policy(f"{encoder_name}-{head}", encoder_dir,
                                           PolicyConfig(head=head, steps=config.policy_steps, seed=config.seed,
                                                        log_every=max(1, config.policy_steps // 4)))
                              for head in config.heads}
                best = min(candidates, key=lambda h: candidates[h]["val_action_mse"])
                result["head_selection"][encoder_name] = {h: c["val_action_mse"] for h, c in candidates.items()}
                result["variants"][encoder_name] = {"head": best, "pretrain_s": pretrain_s,
                                                    "train_s": candidates[best]["train_s"], "policy": candidates[best]["policy"]}
            # end to end: the encoder from random initialisation trained with an MLP head on the images
            trained = policy("end_to_end-mlp", None, PolicyConfig(head="mlp", steps=config.end_to_end_steps,
                                                                  finetune_encoder=True, batch_size=64, seed=config.seed,
                                                                  log_every=max(1, config.end_to_end_steps // 4)))
            result["variants"]["end_to_end"] = {"head": "mlp", "pretrain_s": 0.0, "train_s": trained["train_s"],
                                                "policy": trained["policy"]}
            save_report()
            for name, variant in result["variants"].items():
                def rollouts():
                    t0 = time.monotonic()
                    scores = evaluate(Path(variant["policy"]), config.rollouts, config.time_limit_s, config.workers)
                    scores.pop("videos")
                    return {**{k: scores[k] for k in ("success_rate", "success_ci95", "mean_score", "policy_infer_ms_p99",
                                                      "episodes", "refusals", "rollouts")},
                            "rollouts_s": time.monotonic() - t0}

                scores = _stage(Path(variant["policy"]) / f"rollouts-{config.rollouts}x{config.time_limit_s:g}s.json",
                                rollouts, reuse)
                variant.update({k: v for k, v in scores.items() if k != "rollouts"})
                log(f"bench imitation: {task} {name} ({variant['head']}): success {scores['success_rate']:.2f} "
                    f"{[round(v, 2) for v in scores['success_ci95']]}, score {scores['mean_score']:.2f}, "
                    f"{scores['refusals']} refused, inference p99 {scores['policy_infer_ms_p99']:.1f} ms")
                save_report()
            if config.graph_rollouts:
                dynamo = result["variants"]["dynamo"]
                result["graph_check"] = graph_check(Path(dynamo["policy"]), config, root / "graph", dynamo["success_rate"],
                                                    dynamo["success_ci95"], log)
            variants = result["variants"]
            result["dynamo_minus_random"] = variants["dynamo"]["success_rate"] - variants["random"]["success_rate"]
            result["dynamo_minus_random_score"] = variants["dynamo"]["mean_score"] - variants["random"]["mean_score"]
            result["policy_infer_ms_p99"] = max(v["policy_infer_ms_p99"] for v in variants.values())
            result["wall_s"] = time.monotonic() - task_started
            save_report()
        report["wall_s"] = time.monotonic() - started
        return report
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)


def main(quick: bool = False, workdir: str | None = None, **changes) -> dict:
    from dataclasses import replace

    config = ImitationBenchConfig.quick() if quick else ImitationBenchConfig()
    config = replace(config, **{k: v for k, v in changes.items() if v is not None})
    return run(config, Path(workdir) if workdir else None,
               log=lambda m: print(m, file=sys.stderr, flush=True))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
