"""DynaMo pretraining on a demonstrations export: seeded, a progress line, checkpoints as safetensors.

The schedule is the released Push-T configuration's (Cui et al. 2024): AdamW at one learning rate for
the encoder, the inverse and the forward model, the first two warmed up linearly (5 % of the steps) and
then cosine-decayed, the forward model's constant; gradients clipped to 0.1 per module; episodes split
95 / 5 into training and validation (at least one validation episode when there are two or more).
Presets: 'cpu' trains on a 2-core machine in minutes (64 px, a 16-wide ResNet-18, 2-layer
transformers); 'paper' is the paper's (224 px, ResNet-18, 6-layer transformers of width 120), for a GPU.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from robot_dyn.imitation.dynamo import DynamoConfig

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


def _schedule(step: int, total: int, warmup: float) -> float:
    """Linear warm-up, then cosine decay to 0: the factor on the learning rate at `step`."""
    warm = max(1, int(warmup * total))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def pretrain(frames, out: Path, model_config: DynamoConfig, config: PretrainConfig = PretrainConfig(),
             device: str = "cpu", log=print) -> dict:
    """Train DynaMo on `frames` (robot_dyn.imitation.frames.DemoFrames); write out/model.safetensors (the
    whole model), out/encoder.safetensors (what policies load), out/config.json, out/metrics.json."""
    import torch
    from safetensors.torch import save_file

    from robot_dyn.imitation.dynamo import DynaMo

    config = config.validated()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = DynaMo(model_config).to(device)
    window = model.config.window
    train_eps, val_eps = split_episodes(frames.episodes, config.validation_fraction, config.seed)
    train_windows, val_windows = frames.windows(window, train_eps), frames.windows(window, val_eps)
    if not train_windows:
        raise ValueError(f"pretrain: no window of {window} frames in the training episodes {train_eps}")
    groups = {"encoder": model.encoder, "inverse": model.inverse, "forward": model.forward_model}
    optimisers = {k: torch.optim.AdamW(m.parameters(), lr=config.lr, weight_decay=config.weight_decay)
                  for k, m in groups.items()}
    history, start = [], time.monotonic()
    for step in range(config.steps):
        model.train()
        factor = _schedule(step, config.steps, config.warmup)
        for name in ("encoder", "inverse"):  # the forward model keeps its rate (the released schedule)
            for group in optimisers[name].param_groups:
                group["lr"] = config.lr * factor
        picks = rng.choice(len(train_windows), size=min(config.batch_size, len(train_windows)), replace=False)
        x, _, _ = frames.batch([train_windows[i] for i in picks], window)
        loss, terms = model.loss(x.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain: loss is {float(loss)} at step {step}")
        for opt in optimisers.values():
            opt.zero_grad()
        loss.backward()
        for name, module in groups.items():
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimisers[name].step()
        if step % config.log_every == 0 or step == config.steps - 1:
            entry = {"step": step, "loss": float(loss), **terms, "wall_s": time.monotonic() - start}
            if val_windows:
                entry.update(validation(model, frames, val_windows, config.batch_size, device))
            history.append(entry)
            log(f"pretrain dynamo: step {step + 1}/{config.steps} loss {entry['loss']:.4f} "
                f"(dynamics {terms['dynamics']:.4f}, covariance {terms['covariance']:.2e})"
                + (f", validation {entry['val_dynamics']:.4f} (spread {entry['val_embedding_spread']:.2f})"
                   if val_windows else "")
                + f", {entry['wall_s']:.0f} s")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    save_file({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")},
              str(out / "encoder.safetensors"))
    (out / "config.json").write_text(json.dumps({"model": model.config.as_dict(), "pretrain": asdict(config),
                                                  "cameras": list(frames.cameras), "image_size": frames.image_size,
                                                  "train_episodes": [int(e) for e in train_eps],
                                                  "validation_episodes": [int(e) for e in val_eps]}, indent=2))
    metrics = {"history": history, "final": history[-1]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def validation(model, frames, windows, batch_size: int, device: str) -> dict:
    """On held-out windows, in eval mode (BatchNorm's running statistics): the dynamics term, and the
    embeddings' spread (robot_dyn.imitation.dynamo.embedding_spread: 0 would mean collapse)."""
    import torch

    from robot_dyn.imitation.dynamo import embedding_spread

    model.eval()
    total, count, embeddings = 0.0, 0, []
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            x, _, _ = frames.batch(windows[i:i + batch_size], model.config.window)
            x = x.to(device)
            _, terms = model.loss(x)
            total += terms["dynamics"] * len(x)
            count += len(x)
            embeddings.append(model.embed(x.flatten(0, 1))[:, 0].cpu())
    return {"val_dynamics": total / count, "val_embedding_spread": embedding_spread(torch.cat(embeddings))}


def preset(name: str, **changes) -> tuple[int, DynamoConfig]:
    """(image size px, model config) of a preset, with changes to the model config."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got '{name}'")
    size, config = PRESETS[name]
    return size, replace(config, **changes).validated()
