"""Training particle dynamics models on a particle dataset: multi-step, autoregressive, with noise on
the history.

A training window is H+1 frames of history and K frames ahead (`rollout_steps`), with the tool's
recorded path over those K steps. The model rolls out K steps from the history, feeding its own
predictions back (so it learns to recover from its own errors, as planning will use it), and the
loss is, averaged over the K steps:
- position: mean squared error of the particles, in units of length_scale squared;
- edge length (weight `edge_weight`): mean |predicted - true| distance between neighbouring particles
  (pairs closer than `edge_pair_distance` m at the window's start), in units of length_scale -- it
  keeps a rope from stretching or bunching, which the position error alone rewards too little.
Gaussian noise (std `history_noise` m) is added to the history's object positions
(Sanchez-Gonzalez et al. 2020): at test time the history holds the model's own, imperfect,
predictions. Windows are drawn uniformly over all frames of all training episodes.

Adam with cosine decay, gradients clipped to `grad_clip`; seeded; a progress line every
`log_every` steps with the validation error (robot_dyn.object_dynamics.evaluation at 10 steps);
data-parallel under torchrun (each rank draws its own windows, gradients averaged, rank 0 saves).
The spring-mass baseline is identified instead (robot_dyn.object_dynamics.spring_mass), and zero
motion has nothing to learn; both are saved the same way.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robot_dyn.object_dynamics.dataset import ParticleDataset
from robot_dyn.object_dynamics.models import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    rollout_steps: int = 4
    history_noise: float = 0.0003  # m
    edge_weight: float = 0.5
    edge_pair_distance: float = 0.025  # m
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 250

    def validated(self) -> "TrainConfig":
        for name in ("steps", "batch_size", "rollout_steps", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train '{name}' must be a positive integer, got {value!r}")
        if not (self.lr > 0 and self.history_noise >= 0 and self.edge_weight >= 0 and self.edge_pair_distance > 0
                and self.grad_clip > 0):
            raise ValueError(f"train: out-of-range setting in {self}")
        return self


class Windows:
    """Every (episode, start) with `history` frames before the start and `ahead` after it, and the batches
    cut from them as float32 tensors."""

    def __init__(self, dataset: ParticleDataset, history: int, ahead: int):
        self.dataset, self.history, self.ahead = dataset, history, ahead
        self.index = [(e, t) for e, episode in enumerate(dataset.episodes)
                      for t in range(history, episode.n_frames - ahead)]
        if not self.index:
            raise ValueError(f"no episode has {history + 1 + ahead} frames (history {history}, {ahead} ahead)")

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, picks) -> tuple:
        """objects (B, H+1, N, 3), tool (B, H+1, 3), tool_path (B, K, 3), target (B, K, N, 3); m."""
        import torch

        h, k = self.history, self.ahead
        parts = [[], [], [], []]
        for i in picks:
            e, t = self.index[i]
            ep = self.dataset.episodes[e]
            parts[0].append(ep.particles[t - h:t + 1])
            parts[1].append(ep.tool[t - h:t + 1])
            parts[2].append(ep.tool[t + 1:t + k + 1])
            parts[3].append(ep.particles[t + 1:t + k + 1])
        return tuple(torch.as_tensor(np.stack(p), dtype=torch.float32) for p in parts)


def edge_pairs(positions, distance: float):
    """Index pairs (P,), (P,) of particles closer than `distance` m in positions (B, N, 3): per sample,
    flattened over the batch as (B*N) indices."""
    import torch

    batch, n, _ = positions.shape
    close = torch.cdist(positions, positions) < distance
    close &= ~torch.eye(n, dtype=torch.bool, device=positions.device)
    b, i, j = torch.nonzero(close, as_tuple=True)
    return b * n + i, b * n + j


def rollout_loss(model, objects, tool, tool_path, target, config: TrainConfig, scale: float):
    """(loss, terms) of a K-step rollout against the targets (see the module notes)."""
    import torch

    from robot_dyn.object_dynamics.models import rollout

    predicted = rollout(model, objects, tool, tool_path)  # (B, K, N, 3)
    position = ((predicted - target) / scale).pow(2).sum(-1).mean()
    i, j = edge_pairs(objects[:, -1], config.edge_pair_distance)
    flat_p, flat_t = predicted.transpose(0, 1).flatten(1, 2), target.transpose(0, 1).flatten(1, 2)  # (K, B*N, 3)
    length_p = (flat_p[:, i] - flat_p[:, j]).norm(dim=-1)
    length_t = (flat_t[:, i] - flat_t[:, j]).norm(dim=-1)
    edge = ((length_p - length_t).abs() / scale).mean() if len(i) else torch.zeros((), device=objects.device)
    loss = position + config.edge_weight * edge
    return loss, {"position": position.item(), "edge_length": edge.item()}


def train(dataset: ParticleDataset, out: str | Path, model_config: ModelConfig, config: TrainConfig = TrainConfig(),
          validation: ParticleDataset | None = None, device: str = "cpu", log=print) -> dict:
    """Train a model of `model_config` on `dataset`; write out/model.safetensors, out/model.json and
    out/metrics.json (rank 0). Returns the metrics (empty on other ranks)."""
    import torch

    from robot_dyn.distributed import average_gradients, distributed, parameters_agree
    from robot_dyn.distributed import finish as finish_distributed
    from robot_dyn.object_dynamics.evaluation import evaluate
    from robot_dyn.object_dynamics.models import build_model, save_model

    config = config.validated()
    model_config = model_config.validated()
    if model_config.kind == "mlp" and model_config.n_particles != dataset.n_particles:
        raise ValueError(f"the MLP is built for {model_config.n_particles} particles, the dataset has "
                         f"{dataset.n_particles}")
    rank, world = distributed()
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"  # one GPU per rank
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed + rank)
    if model_config.kind == "spring_mass":
        from robot_dyn.object_dynamics.spring_mass import identify

        model = identify(dataset, model_config, seed=config.seed, log=log)
    else:
        model = build_model(model_config).to(device)
    windows = Windows(dataset, model_config.history, config.rollout_steps)
    trainable = list(model.parameters())
    optimiser = torch.optim.Adam(trainable, lr=config.lr) if trainable else None
    history, start = [], time.monotonic()
    scale = model_config.length_scale
    for step in range(config.steps if trainable else 0):
        model.train()
        for group in optimiser.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        picks = rng.choice(len(windows), size=min(config.batch_size, len(windows)), replace=False)
        objects, tool, tool_path, target = (x.to(device) for x in windows.batch(picks))
        if config.history_noise > 0:
            objects = objects + config.history_noise * torch.randn_like(objects)
        loss, terms = rollout_loss(model, objects, tool, tool_path, target, config, scale)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train dynamics: loss is {float(loss)} at step {step}")
        optimiser.zero_grad()
        loss.backward()
        average_gradients(model, world)
        torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimiser.step()
        if rank == 0 and (step % config.log_every == 0 or step == config.steps - 1):
            entry = {"step": step, "loss": loss.item(), **terms, "wall_s": time.monotonic() - start}
            if validation is not None:
                entry["val_mde_mm_at_10"] = evaluate(model.eval(), validation, horizons=(10,))["mde_mm_at_10"]
            history.append(entry)
            log(f"train dynamics {model_config.kind}: step {step + 1}/{config.steps} loss {entry['loss']:.4f} "
                f"(position {terms['position']:.4f}, edge length {terms['edge_length']:.4f})"
                + (f", validation MDE at 10 steps {entry['val_mde_mm_at_10']:.2f} mm" if validation is not None else "")
                + f", {entry['wall_s']:.0f} s")
    agree = parameters_agree(model, world)
    if rank != 0:
        if world > 1:
            finish_distributed()
        return {}
    model = model.cpu().eval()
    meta = {"source": dataset.meta["source"], "step_s": dataset.step_s, "n_particles": dataset.n_particles,
            "table_height": dataset.meta["table_height"], "tool_radius": dataset.meta["tool_radius"],
            "train": asdict(config), "train_episodes": len(dataset.episodes), "world_size": world}
    save_model(out, model, meta)
    metrics = {"kind": model_config.kind, "history": history, "final": history[-1] if history else {},
               "wall_s": time.monotonic() - start, "ranks_agree": agree}
    Path(out, "metrics.json").write_text(json.dumps(metrics, indent=2))
    if world > 1:
        finish_distributed()
    return metrics
