"""Encoder pretraining on a demonstrations export: DynaMo and its baselines, seeded, a progress line,
checkpoints as safetensors, data-parallel under torchrun.

Methods: 'dynamo' (robot_dyn.imitation.dynamo), 'simsiam' and 'inverse_actions'
(robot_dyn.imitation.baselines), and 'random' (the encoder as built, saved untrained). The schedule is
the released DynaMo Push-T configuration's (Cui et al. 2024), used for every method alike: AdamW at one
learning rate per module group, the method's `scheduled` groups warmed up linearly (5 % of the steps)
then cosine-decayed, the others (DynaMo's forward model) constant; gradients clipped to 0.1 per group;
episodes split 95 / 5 into training and validation (at least one validation episode when there are
two or more). Presets: 'cpu' trains on a 2-core machine in minutes (64 px, a 16-wide ResNet-18,
2-layer transformers); 'paper' is the paper's (224 px, ResNet-18, 6-layer transformers of width 120),
for a GPU. Under torchrun each rank draws its own batches and the gradients are averaged; rank 0 saves.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from robot_dyn.imitation.baselines import BaselineConfig
from robot_dyn.imitation.dynamo import DynamoConfig

METHODS = ("dynamo", "simsiam", "inverse_actions", "random")
PRESETS = {
    "cpu": (64, DynamoConfig(layers=2, heads=4, width=64, encoder_width=16, small_images=True)),
    "paper": (224, DynamoConfig(layers=6, heads=6, width=120, encoder_width=64, small_images=False)),
}


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup: float = 0.05  # fraction of the steps
    grad_clip: float = 0.1
    validation_fraction: float = 0.05
    seed: int = 0
    log_every: int = 50

    def validated(self) -> "PretrainConfig":
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError("pretrain: 'steps', 'batch_size' and 'log_every' must be >= 1")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 <= self.warmup < 1 and self.grad_clip > 0
                and 0 <= self.validation_fraction < 1):
            raise ValueError(f"pretrain: out-of-range setting in {self}")
        return self


def split_episodes(episodes: list, fraction: float, seed: int) -> tuple[list, list]:
    """(training, validation) episodes: `fraction` of them (at least one of two or more) for validation."""
    order = list(np.random.default_rng(seed).permutation(episodes))
    count = max(1, round(fraction * len(order))) if len(order) > 1 and fraction > 0 else 0
    return sorted(order[count:]), sorted(order[:count])


def warmup_cosine(step: int, total: int, warmup: float) -> float:
    """Linear warm-up, then cosine decay to 0: the factor on the learning rate at `step`."""
    warm = max(1, int(warmup * total))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def build_method(name: str, preset_name: str = "cpu", seed: int = 0, **changes):
    """(image size px, the method's module, initialised from `seed`) for a method of METHODS at a preset;
    changes go to DynaMo's config (for 'dynamo') or the baselines' (the encoder's layout follows the
    preset either way). 'random' gives DynaMo's module: its encoder, untrained, is the baseline."""
    import torch

    from robot_dyn.imitation.baselines import InverseActions, SimSiam
    from robot_dyn.imitation.dynamo import DynaMo

    torch.manual_seed(seed)

    if name not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got '{name}'")
    size, dynamo = preset(preset_name, **(changes if name in ("dynamo", "random") else {}))
    if name in ("dynamo", "random"):
        return size, DynaMo(dynamo)
    config = replace(BaselineConfig(encoder_width=dynamo.encoder_width, small_images=dynamo.small_images), **changes)
    return size, (SimSiam if name == "simsiam" else InverseActions)(config)


def pretrain(frames, out: Path, method, config: PretrainConfig = PretrainConfig(), device: str = "cpu",
             log=print, train: bool = True) -> dict:
    """Train `method` (build_method) on `frames` (robot_dyn.imitation.frames.DemoFrames), or with train False
    save it as built (the random baseline); write out/model.safetensors (the whole method), out/encoder.
    safetensors + out/config.json (robot_dyn.imitation.encoders.save_encoder: what policies load),
    out/metrics.json."""
    import torch
    from safetensors.torch import save_file

    from robot_dyn.distributed import average_gradients, distributed, parameters_agree
    from robot_dyn.distributed import finish as finish_distributed
    from robot_dyn.imitation.encoders import save_encoder

    config = config.validated()
    rank, world = distributed()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed + rank)
    model = method.to(device)
    window = model.window
    train_eps, val_eps = split_episodes(frames.episodes, config.validation_fraction, config.seed)
    train_windows, val_windows = frames.windows(window, train_eps), frames.windows(window, val_eps)
    if not train_windows:
        raise ValueError(f"pretrain: no window of {window} frames in the training episodes {train_eps}")
    groups = model.groups()
    optimisers = {k: torch.optim.AdamW(m.parameters(), lr=config.lr, weight_decay=config.weight_decay)
                  for k, m in groups.items()}
    history, start = [], time.monotonic()
    for step in range(config.steps if train else 0):
        model.train()
        factor = warmup_cosine(step, config.steps, config.warmup)
        for name in model.scheduled:
            for group in optimisers[name].param_groups:
                group["lr"] = config.lr * factor
        picks = rng.choice(len(train_windows), size=min(config.batch_size, len(train_windows)), replace=False)
        x, _, actions = frames.batch([train_windows[i] for i in picks], window)
        loss, terms = model.loss(x.to(device), actions.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain {model.name}: loss is {float(loss)} at step {step}")
        for opt in optimisers.values():
            opt.zero_grad()
        loss.backward()
        average_gradients(model, world)
        for name, module in groups.items():
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimisers[name].step()
        if rank == 0 and (step % config.log_every == 0 or step == config.steps - 1):
            entry = {"step": step, "loss": loss.item(), **terms, "wall_s": time.monotonic() - start}
            if val_windows:
                entry.update(validation(model, frames, val_windows, config.batch_size, device))
            history.append(entry)
            log(f"pretrain {model.name}: step {step + 1}/{config.steps} loss {entry['loss']:.4f} ("
                + ", ".join(f"{k} {v:.3g}" for k, v in terms.items()) + ")"
                + (f", validation {entry['val_' + model.main_term]:.4f} (spread {entry['val_embedding_spread']:.2f})"
                   if val_windows else "")
                + f", {entry['wall_s']:.0f} s")
    agree = parameters_agree(model, world)
    if rank != 0:
        if world > 1:
            finish_distributed()
        return {}
    if not history and val_windows:
        history.append({"step": 0, **validation(model, frames, val_windows, config.batch_size, device)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    method_name = model.name if train else "random"
    save_encoder(out, model.encoder, {"method": method_name, "model": model.config.as_dict(),
                                      "pretrain": asdict(config) if train else None, "cameras": list(frames.cameras),
                                      "image_size": frames.image_size, "train_episodes": [int(e) for e in train_eps],
                                      "validation_episodes": [int(e) for e in val_eps], "world_size": world})
    metrics = {"method": method_name, "history": history, "final": history[-1] if history else {},
               "wall_s": time.monotonic() - start, "ranks_agree": agree}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if world > 1:
        finish_distributed()
    return metrics


def validation(model, frames, windows, batch_size: int, device: str) -> dict:
    """On held-out windows, in eval mode (BatchNorm's running statistics): the method's main term
    (val_<main_term>), and the embeddings' spread (robot_dyn.imitation.dynamo.embedding_spread: 0 would
    mean collapse)."""
    import torch

    from robot_dyn.imitation.dynamo import embedding_spread

    model.eval()
    total, count, embeddings = 0.0, 0, []
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            x, _, actions = frames.batch(windows[i:i + batch_size], model.window)
            x = x.to(device)
            _, terms = model.loss(x, actions.to(device))
            total += terms[model.main_term] * len(x)
            count += len(x)
            embeddings.append(model.encoder(x[:, :, 0].flatten(0, 1)).cpu())
    return {f"val_{model.main_term}": total / count, "val_embedding_spread": embedding_spread(torch.cat(embeddings))}


def preset(name: str, **changes) -> tuple[int, DynamoConfig]:
    """(image size px, model config) of a preset, with changes to the model config."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got '{name}'")
    size, config = PRESETS[name]
    return size, replace(config, **changes).validated()
