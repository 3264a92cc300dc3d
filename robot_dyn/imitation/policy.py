"""A visuomotor policy: camera images and joint positions in, a chunk of teleop commands out.

Observation at frame k (the export's 10 Hz clock): for the last `obs_window` frames k-H+1..k (the
first frame repeated before an episode's start), each camera's image embedded by the encoder (a
ResNet of robot_dyn.imitation.encoders, frozen or trained with the head) and the joint positions
(rad, URDF order); concatenated and standardised with the training set's mean and std. Action: the
next `chunk` commands, each the unitless base-frame twist [vx vy vz wx wy wz] in [-1, 1] a teleop
device sends on /controller/twist_command (so a policy's output goes through the controller and the
safety filter as an operator's does); `execute` of them are sent before the policy looks again.

Checkpoint (a folder): policy.safetensors (encoder, head, normaliser) and policy.json: what it
was trained for (task, robot, joint names, cameras, image size, rate) and how (encoder source and
method, head, windows). PolicyRunner refuses observations that do not fit (another camera set, joint
count, a NaN) with the field named; load_policy refuses a malformed or corrupt checkpoint.
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robot_dyn.imitation.encoders import ResNetEncoder
from robot_dyn.imitation.heads import HeadConfig, make_head

ACTION_DIM = 6  # the unitless twist


@dataclass(frozen=True)
class PolicyConfig:
    """head: 'mlp' | 'diffusion' | 'vqbet'; obs_window/chunk/execute in frames (1 / fps s each);
    finetune_encoder: train the encoder with the head (end to end) instead of freezing it."""

    head: str = "diffusion"
    obs_window: int = 2
    chunk: int = 8
    execute: int = 4
    steps: int = 4000
    batch_size: int = 256
    lr: float = 3e-4
    encoder_lr: float = 1e-4
    weight_decay: float = 1e-6
    warmup: float = 0.05
    finetune_encoder: bool = False
    validation_fraction: float = 0.1
    seed: int = 0
    log_every: int = 250
    head_config: HeadConfig = field(default_factory=HeadConfig)

    def validated(self) -> "PolicyConfig":
        from robot_dyn.imitation.heads import HEADS

        if self.head not in HEADS:
            raise ValueError(f"policy: 'head' must be one of {list(HEADS)}, got {self.head!r}")
        for name in ("obs_window", "chunk", "execute", "steps", "batch_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"policy: '{name}' must be an integer >= 1, got {getattr(self, name)!r}")
        if self.execute > self.chunk:
            raise ValueError(f"policy: 'execute' ({self.execute}) must not exceed 'chunk' ({self.chunk})")
        if not (self.lr > 0 and self.encoder_lr > 0 and self.weight_decay >= 0 and 0 <= self.warmup < 1
                and 0 <= self.validation_fraction < 1):
            raise ValueError(f"policy: out-of-range setting in {self}")
        self.head_config.validated()
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PolicyConfig":
        values = dict(values)
        head = HeadConfig(**values.pop("head_config", {}))
        return cls(**values, head_config=head).validated()


class Policy(nn.Module):
    """encoder + head + the observation's normaliser; `meta` is policy.json's content."""

    def __init__(self, encoder: ResNetEncoder, config: PolicyConfig, n_cameras: int, n_joints: int, meta: dict):
        super().__init__()
        self.config, self.meta = config.validated(), meta
        self.encoder = encoder
        self.n_cameras, self.n_joints = n_cameras, n_joints
        self.obs_dim = config.obs_window * (n_cameras * encoder.embedding_dim + n_joints)
        self.head = make_head(config.head, self.obs_dim, config.chunk, ACTION_DIM, config.head_config)
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim))
        self.register_buffer("obs_std", torch.ones(self.obs_dim))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, V, 3, S, S) RGB in [0, 1] -> (N, V, D)."""
        n, v = images.shape[:2]
        return self.encoder(images.flatten(0, 1)).view(n, v, -1)

    @staticmethod
    def raw_observation(embeddings: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(B, H, V, D) embeddings and (B, H, n) joint positions -> (B, H (V D + n)), unnormalised."""
        return torch.cat([embeddings.flatten(2), state], dim=-1).flatten(1)

    def observation(self, embeddings: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return (self.raw_observation(embeddings, state) - self.obs_mean) / self.obs_std

    @torch.no_grad()
    def act(self, images: torch.Tensor, state: torch.Tensor, generator=None) -> torch.Tensor:
        """(B, H, V, 3, S, S) images in [0, 1] and (B, H, n) rad -> (B, chunk, 6) commands in [-1, 1]."""
        b, h = images.shape[:2]
        embeddings = self.embed(images.flatten(0, 1)).view(b, h, self.n_cameras, -1)
        return self.head.sample(self.observation(embeddings, state), generator)


def save_policy(out: Path, policy: Policy, metrics: dict) -> None:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}, str(out / "policy.safetensors"))
    (out / "policy.json").write_text(json.dumps({**policy.meta, "config": policy.config.as_dict()}, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))


def load_policy(path: Path) -> Policy:
    """The policy of a checkpoint folder (save_policy), in eval mode; ValueError names the file and the fault."""
    from robot_dyn.imitation.encoders import encoder_from_layout, load_weights

    path = Path(path)
    try:
        meta = json.loads((path / "policy.json").read_text())
        if not isinstance(meta, dict):
            raise TypeError(f"expected an object, got {type(meta).__name__}")
        config = PolicyConfig.from_dict(meta.pop("config"))
        policy = Policy(encoder_from_layout(meta["encoder"]), config, len(meta["cameras"]), len(meta["joint_names"]), meta)
        for key in ("task", "robot", "image_size", "fps"):
            if key not in meta:
                raise KeyError(key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path / 'policy.json'}: not a policy checkpoint's description ({exc!r})") from None
    load_weights(policy, path / "policy.safetensors", "of the described policy")
    return policy.eval()


def square_frame(image: np.ndarray, size: int) -> np.ndarray:
    """A camera's (H, W, 3) uint8 image as the encoder's input, (size, size, 3) uint8: the whole frame
    area-resampled to a square (what robot_dyn.imitation.frames does to a dataset's videos)."""
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


class PolicyRunner:
    """A policy stepped at its rate: step(images, q) takes one observation (camera name -> (H, W, 3) uint8
    RGB, joint positions (n,) rad in the policy's joint order) and returns the command (6,) to send
    until the next step. It infers a chunk when the last one's `execute` commands are used up.
    infer_ms: the time of each inference (embedding and head), ms. Refusals raise ValueError naming
    the field; nothing is sent for a refused observation."""

    def __init__(self, policy: Policy, seed: int = 0):
        self.policy = policy.eval()
        self.cameras = tuple(policy.meta["cameras"])
        self.size = int(policy.meta["image_size"])
        self.generator = torch.Generator().manual_seed(seed)
        self.history = deque(maxlen=policy.config.obs_window)
        self.queue = deque()
        self.infer_ms = []
        self._warm_up()

    def _warm_up(self) -> None:
        """One inference on a blank observation, not timed: torch's first call allocates and plans (hundreds
        of ms), which a robot must not wait for at its first step."""
        h, v, s = self.policy.config.obs_window, len(self.cameras), self.size
        self.policy.act(torch.zeros(1, h, v, 3, s, s), torch.zeros(1, h, self.policy.n_joints),
                        torch.Generator().manual_seed(0))

    def reset(self) -> None:
        self.history.clear()
        self.queue.clear()

    def check(self, images: dict, q: np.ndarray) -> np.ndarray:
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ValueError(f"policy: images: cameras {missing} missing (the policy was trained on {list(self.cameras)})")
        q = np.asarray(q, dtype=np.float32)
        if q.shape != (self.policy.n_joints,):
            raise ValueError(f"policy: joint_positions: expected {self.policy.n_joints} values "
                             f"({self.policy.meta['joint_names']}), got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError("policy: joint_positions: not finite")
        for camera in self.cameras:
            image = images[camera]
            if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 \
                    or min(image.shape[:2]) < 1:
                raise ValueError(f"policy: images.{camera}: expected (H, W, 3) uint8 RGB, got "
                                 f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}")
        return q

    def step(self, images: dict, q: np.ndarray) -> np.ndarray:
        q = self.check(images, q)
        frame = np.stack([square_frame(images[c], self.size) for c in self.cameras])  # (V, S, S, 3)
        self.history.append((frame, q))
        while len(self.history) < self.history.maxlen:  # an episode's first frame stands in for the ones before it
            self.history.appendleft(self.history[0])
        if not self.queue:
            start = time.perf_counter()
            x = torch.from_numpy(np.stack([f for f, _ in self.history])).permute(0, 1, 4, 2, 3).float().div_(255.0)
            state = torch.from_numpy(np.stack([s for _, s in self.history]))
            chunk = self.policy.act(x[None], state[None], self.generator)[0].numpy()
            self.queue.extend(chunk[:self.policy.config.execute].astype(float))
            self.infer_ms.append((time.perf_counter() - start) * 1e3)
        return self.queue.popleft()


def check_compatible(meta: dict, task: str | None = None, cameras=None, robot: str | None = None,
                     joint_names=None) -> None:
    """ValueError with the reason when a policy (its policy.json content) was trained for another task,
    camera set, robot or joint order than the one it is asked to run on."""
    problems = []
    if task is not None and meta["task"] != task:
        problems.append(f"it was trained for task '{meta['task']}', not '{task}'")
    if robot is not None and meta["robot"] != robot:
        problems.append(f"it was trained on robot '{meta['robot']}', not '{robot}'")
    if joint_names is not None and list(meta["joint_names"]) != list(joint_names):
        problems.append(f"its joints {meta['joint_names']} are not the robot's {list(joint_names)}")
    if cameras is not None:
        absent = [c for c in meta["cameras"] if c not in cameras]
        if absent:
            problems.append(f"its cameras {absent} are not among the graph's {list(cameras)}")
    if problems:
        raise ValueError("policy refused: " + "; ".join(problems))


def with_changes(config: PolicyConfig, **changes) -> PolicyConfig:
    """config with changes; keys of HeadConfig go to its head_config."""
    head_fields = set(HeadConfig.__dataclass_fields__)
    head = {k: v for k, v in changes.items() if k in head_fields}
    rest = {k: v for k, v in changes.items() if k not in head_fields}
    return replace(config, **rest, head_config=replace(config.head_config, **head)).validated()
