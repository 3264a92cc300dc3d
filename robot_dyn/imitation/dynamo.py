"""DynaMo: an image encoder pretrained on demonstrations' own frames by latent inverse and forward dynamics.

After Cui et al., "DynaMo: In-Domain Dynamics Pretraining for Visuo-Motor Control" (NeurIPS 2024);
the facts below are the paper's and its released configuration's (Push-T), the code is ours.

Over a window of T frames per camera, the encoder gives embeddings s_1..s_T (one encoder shared by
every camera; the cameras are folded into the batch and the loss is averaged over them). A causal
transformer, the inverse model, turns s_1..s_t into a latent action z_t of few dimensions (8: the
bottleneck that keeps the forward model from copying the future). A second causal transformer, the
forward model, predicts s_{t+1} from (s_t, z_{t+1}): z_{t+1} has seen s_{t+1}, and the bottleneck
makes it carry only what changed. The loss:

    L = mean_t (1 - cos(s^_{t+1}, stopgrad(s_{t+1}))) + c * mean_{i != j} Cov(s)_ij^2

with c = 0.04 and Cov over every embedding of the batch (the released code averages over the
d(d-1) off-diagonal entries; the paper's formula sums them and divides by d). No augmentations, no
EMA target (the released Push-T configuration uses the online encoder under stop-gradient), no
variance term. Downstream, only the encoder is kept, frozen.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from robot_dyn.imitation.encoders import ResNetEncoder


@dataclass(frozen=True)
class DynamoConfig:
    """window: frames per sample; latent_dim: the latent action's size; layers/heads/width: each causal
    transformer's; covariance_weight: c above; encoder_width: 64 = ResNet-18 (512-d embeddings);
    small_images: the encoder's 3x3 stem for 64-96 px frames (False: ResNet-18's, for 224 px)."""

    window: int = 5
    latent_dim: int = 8
    layers: int = 6
    heads: int = 6
    width: int = 120
    covariance_weight: float = 0.04
    encoder_width: int = 64
    small_images: bool = True

    def validated(self) -> "DynamoConfig":
        for name in ("window", "latent_dim", "layers", "heads", "width", "encoder_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"dynamo: '{name}' must be >= 1, got {getattr(self, name)}")
        if self.window < 2:
            raise ValueError(f"dynamo: 'window' must be >= 2 (a frame and its successor), got {self.window}")
        if self.width % self.heads:
            raise ValueError(f"dynamo: 'width' ({self.width}) must be a multiple of 'heads' ({self.heads})")
        if self.covariance_weight < 0:
            raise ValueError(f"dynamo: 'covariance_weight' must be >= 0, got {self.covariance_weight}")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


class CausalTransformer(nn.Module):
    """(N, T, in_dim) -> (N, T, out_dim); position t attends to positions <= t only. Pre-norm blocks
    (GPT-style), learned positions up to max_len."""

    def __init__(self, in_dim: int, out_dim: int, layers: int, heads: int, width: int, max_len: int):
        super().__init__()
        self.embed = nn.Linear(in_dim, width)
        self.positions = nn.Parameter(torch.zeros(1, max_len, width))
        nn.init.normal_(self.positions, std=0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        if steps > self.positions.shape[1]:
            raise ValueError(f"causal transformer: {steps} steps, at most {self.positions.shape[1]}")
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=x.device)
        h = self.blocks(self.embed(x) + self.positions[:, :steps], mask=mask, is_causal=True)
        return self.head(self.norm(h))


def covariance_penalty(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal entry of the covariance of (N, D) embeddings (D >= 2)."""
    cov = torch.cov(embeddings.T)
    off = cov - torch.diag(torch.diagonal(cov))
    d = cov.shape[0]
    return off.pow(2).sum() / (d * (d - 1))


def embedding_spread(embeddings: torch.Tensor) -> float:
    """Collapse diagnostic (SimSiam's): the per-dimension std of the l2-normalised (N, D) embeddings, times
    sqrt(D): about 1 when they spread over the sphere, 0 when every input maps to one direction."""
    unit = nn.functional.normalize(embeddings, dim=-1)
    return float(unit.std(dim=0).mean() * embeddings.shape[-1] ** 0.5)


class DynaMo(nn.Module):
    """A pretraining method as robot_dyn.imitation.pretrain runs them (see robot_dyn.imitation.baselines):
    the forward model keeps its learning rate (the released schedule)."""

    name, main_term, scheduled = "dynamo", "dynamics", ("encoder", "inverse")

    def __init__(self, config: DynamoConfig = DynamoConfig()):
        super().__init__()
        self.config = config.validated()
        c = self.config
        self.encoder = ResNetEncoder(c.encoder_width, small_images=c.small_images)
        d = self.encoder.embedding_dim
        self.inverse = CausalTransformer(d, c.latent_dim, c.layers, c.heads, c.width, c.window)
        self.forward_model = CausalTransformer(d + c.latent_dim, d, c.layers, c.heads, c.width, c.window - 1)

    @property
    def window(self) -> int:
        return self.config.window

    def groups(self) -> dict:
        return {"encoder": self.encoder, "inverse": self.inverse, "forward": self.forward_model}

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) in [0, 1] -> (N, T, D)."""
        n, t = frames.shape[:2]
        return self.encoder(frames.reshape(n * t, *frames.shape[2:])).reshape(n, t, -1)

    def loss(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """frames: (B, V, T, 3, H, W) RGB in [0, 1], V cameras, T = window (actions: unused, DynaMo sees
        no labels). Returns (loss, its terms as floats)."""
        if frames.ndim != 6 or frames.shape[2] != self.config.window or frames.shape[3] != 3:
            raise ValueError(f"dynamo: expected frames (batch, cameras, {self.config.window}, 3, H, W), "
                             f"got {tuple(frames.shape)}")
        s = self.embed(frames.flatten(0, 1))  # cameras folded into the batch: (B V, T, D)
        z = self.inverse(s)
        predicted = self.forward_model(torch.cat([s[:, :-1], z[:, 1:]], dim=-1))
        dynamics = (1.0 - nn.functional.cosine_similarity(predicted, s[:, 1:].detach(), dim=-1)).mean()
        covariance = covariance_penalty(s.reshape(-1, s.shape[-1]))
        total = dynamics + self.config.covariance_weight * covariance
        return total, {"dynamics": dynamics.item(), "covariance": covariance.item()}
