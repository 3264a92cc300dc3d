"""Behaviour cloning of a policy (robot_dyn.imitation.policy) on a demonstrations export.

Samples are every frame k of the training episodes: the observation window ending at k and the
`chunk` commands from k on (zero past the episode's end: nothing is commanded once the operator is
done). With a frozen encoder every frame is embedded once, in eval mode, and the head trains on the
embeddings (seconds per thousand steps on a CPU); end to end (finetune_encoder) the encoder trains
with the head from its checkpoint (or from random initialisation when there is none), on the images.
AdamW, linear warm-up then cosine decay; episodes split into training and validation as pretraining
does. Validation reports the mean squared error of the sampled chunk to the demonstrated one.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from robot_dyn.imitation.policy import ACTION_DIM, Policy, PolicyConfig, save_policy
from robot_dyn.imitation.pretrain import warmup_cosine, split_episodes


def _sample_indices(length: int, k: int, window: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of the observation window ending at k (clamped at 0) and of the chunk from k (-1 past the end)."""
    obs = np.clip(np.arange(k - window + 1, k + 1), 0, None)
    act = np.arange(k, k + chunk)
    return obs, np.where(act < length, act, -1)


class Samples:
    """The (episode, frame) samples of some episodes with their gathered observation and action arrays."""

    def __init__(self, frames, episodes, config: PolicyConfig):
        self.frames, self.config = frames, config
        self.items = [(e, k) for e in episodes for k in range(len(frames.state[e]))]

    def actions(self, items) -> torch.Tensor:
        out = np.zeros((len(items), self.config.chunk, ACTION_DIM), np.float32)
        for i, (e, k) in enumerate(items):
            _, act = _sample_indices(len(self.frames.action[e]), k, self.config.obs_window, self.config.chunk)
            valid = act >= 0
            out[i, valid] = self.frames.action[e][act[valid]]
        return torch.from_numpy(out)

    def states(self, items) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.frames.state[e][self.obs_frames(e, k)] for e, k in items]))

    def images(self, items) -> torch.Tensor:
        """(B, H, V, 3, S, S) in [0, 1]."""
        x = np.stack([self.frames.images[e][:, self.obs_frames(e, k)] for e, k in items])  # (B, V, H, S, S, 3)
        return torch.from_numpy(x).permute(0, 2, 1, 5, 3, 4).float().div_(255.0)

    def obs_frames(self, e, k):
        return _sample_indices(len(self.frames.state[e]), k, self.config.obs_window, self.config.chunk)[0]


@torch.no_grad()
def embed_episodes(policy: Policy, frames, episodes, batch: int = 256, device: str = "cpu") -> dict:
    """episode -> (T, V, D) embeddings of every frame (the encoder in eval mode), on `device`."""
    policy.encoder.eval()
    out = {}
    for e in episodes:
        images = frames.images[e]  # (V, T, S, S, 3)
        chunks = []
        for i in range(0, images.shape[1], batch):
            x = torch.from_numpy(images[:, i:i + batch]).permute(1, 0, 4, 2, 3).float().div_(255.0)
            chunks.append(policy.embed(x.to(device)))
        out[e] = torch.cat(chunks)
    return out


def train_policy(frames, encoder, encoder_meta: dict | None, out: Path, config: PolicyConfig, log=print,
                 device: str = "cpu") -> dict:
    """Train a policy on `frames` (robot_dyn.imitation.frames.DemoFrames, loaded at the encoder's cameras and
    image size) with `encoder` (robot_dyn.imitation.encoders.load_encoder's, or a fresh ResNetEncoder with
    encoder_meta None for end to end from scratch); save it to `out`. Returns the metrics."""
    config = config.validated()
    if len(frames.tasks) != 1:
        raise ValueError(f"train policy: the export holds tasks {list(frames.tasks)}; a policy learns one")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    source = encoder_meta or {"method": "scratch"}
    layout = {**encoder.layout(), "method": source["method"], "source": source.get("path"),
              "frozen": not config.finetune_encoder}
    meta = {"task": frames.tasks[0], "robot": frames.robot, "joint_names": list(frames.joint_names),
            "cameras": list(frames.cameras), "camera_size": list(frames.camera_size), "image_size": frames.image_size, "fps": frames.fps, "encoder": layout}
    policy = Policy(encoder, config, len(frames.cameras), len(frames.joint_names), meta).to(device)
    train_eps, val_eps = split_episodes(frames.episodes, config.validation_fraction, config.seed)
    train, val = Samples(frames, train_eps, config), Samples(frames, val_eps, config)
    start = time.monotonic()
    embeddings = embed_episodes(policy, frames, frames.episodes, device=device)  # frozen: the inputs; end to end: the normaliser's

    def observations(samples, items):
        h = np.stack([samples.obs_frames(e, k) for e, k in items])
        emb = torch.stack([embeddings[e][idx] for (e, _), idx in zip(items, h)])
        return policy.raw_observation(emb, samples.states(items).to(device))

    raw = observations(train, train.items)
    policy.obs_mean.copy_(raw.mean(0))
    policy.obs_std.copy_(raw.std(0).clamp(min=1e-3))
    embed_s = time.monotonic() - start
    log(f"train policy ({config.head}, encoder {source['method']}{', end to end' if config.finetune_encoder else ''}): "
        f"{len(train.items)} training samples of {len(train_eps)} episodes, {len(val.items)} validation; "
        f"embedded in {embed_s:.1f} s")
    head_params = list(policy.head.parameters())
    groups = [{"params": head_params, "lr": config.lr}]
    if config.finetune_encoder:
        groups.append({"params": list(policy.encoder.parameters()), "lr": config.encoder_lr})
    optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    base_lrs = [g["lr"] for g in groups]
    history = []
    train_actions = train.actions(train.items).to(device)
    for step in range(config.steps):
        factor = warmup_cosine(step, config.steps, config.warmup)
        for group, lr in zip(optimiser.param_groups, base_lrs):
            group["lr"] = lr * factor
        picks = rng.choice(len(train.items), size=min(config.batch_size, len(train.items)), replace=False)
        items = [train.items[i] for i in picks]
        policy.train()
        if config.finetune_encoder:
            b = len(items)
            emb = policy.embed(train.images(items).flatten(0, 1).to(device)).view(b, config.obs_window, len(frames.cameras), -1)
            obs = policy.observation(emb, train.states(items).to(device))
        else:
            policy.encoder.eval()
            obs = (raw[picks] - policy.obs_mean) / policy.obs_std
        loss, terms = policy.head.loss(obs, train_actions[picks], step / config.steps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train policy: loss is {float(loss)} at step {step}")
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimiser.step()
        if step % config.log_every == 0 or step == config.steps - 1:
            entry = {"step": step, "loss": loss.item(), **terms, "wall_s": time.monotonic() - start}
            if val.items:
                entry["val_action_mse"] = validation_mse(policy, val, config, embeddings if not config.finetune_encoder else None,
                                                         device=device)
            history.append(entry)
            log(f"train policy: step {step + 1}/{config.steps} loss {entry['loss']:.4f}"
                + (f", validation action mse {entry['val_action_mse']:.4f}" if val.items else "")
                + f", {entry['wall_s']:.0f} s")
    policy.to("cpu").eval()
    metrics = {"history": history, "final": history[-1], "train_s": time.monotonic() - start, "embed_s": embed_s,
               "train_episodes": [int(e) for e in train_eps], "validation_episodes": [int(e) for e in val_eps]}
    save_policy(out, policy, metrics)
    return metrics


@torch.no_grad()
def validation_mse(policy: Policy, samples: Samples, config: PolicyConfig, embeddings: dict | None,
                   batch: int = 512, device: str = "cpu") -> float:
    """Mean squared error of the sampled chunks to the demonstrated ones over the samples (eval mode;
    embeddings: the frozen encoder's, else the images are embedded)."""
    policy.eval()
    generator = torch.Generator(device=device).manual_seed(0)
    total = 0.0
    for i in range(0, len(samples.items), batch):
        items = samples.items[i:i + batch]
        if embeddings is None:
            emb = policy.embed(samples.images(items).flatten(0, 1).to(device)).view(len(items), config.obs_window, policy.n_cameras, -1)
        else:
            emb = torch.stack([embeddings[e][samples.obs_frames(e, k)] for e, k in items])
        predicted = policy.head.sample(policy.observation(emb, samples.states(items).to(device)), generator)
        total += float(((predicted - samples.actions(items).to(device)) ** 2).mean()) * len(items)
    return total / len(samples.items)
