"""The encoders DynaMo is compared with, trained on the same frames with the same encoder layout.

- SimSiam (Chen and He 2021), the augmentation baseline: two augmented views of a frame (random
  resized crop, brightness/contrast/saturation jitter), a projector and a predictor, and the negative
  cosine of each view's prediction to the other view's stop-gradient projection. It is BYOL without
  the momentum encoder; the DynaMo paper's BYOL and MoCo-v3 rows are this family.
- Inverse dynamics to the recorded actions (Brandfonbrener et al. 2023): an MLP on the embeddings
  of frames t and t+1 regresses the operator's command at t; the one baseline that sees labels.
- Random initialisation: the encoder as built, frozen (robot_dyn.imitation.pretrain writes it).

Each is a pretraining method as robot_dyn.imitation.pretrain runs them (as DynaMo is): `encoder`,
`window` (frames per sample), `groups()` (named modules, one optimiser each), `scheduled` (the groups
whose learning rate warms up and decays), `main_term` (the term validation reports) and
`loss(frames (B, V, T, 3, S, S) in [0, 1], actions (B, T, 6)) -> (loss, {term: float})`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from robot_dyn.imitation.encoders import ResNetEncoder


@dataclass(frozen=True)
class BaselineConfig:
    """encoder_width/small_images: the encoder's layout (as DynamoConfig's); projection: SimSiam's
    projector and predictor width; crop_scale: the smallest crop's share of the image's area;
    jitter: the colour jitter's relative strength; hidden: the inverse model's width."""

    encoder_width: int = 64
    small_images: bool = True
    projection: int = 256
    crop_scale: float = 0.6
    jitter: float = 0.3
    hidden: int = 256

    def validated(self) -> "BaselineConfig":
        for name in ("encoder_width", "projection", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"baseline: '{name}' must be >= 1, got {getattr(self, name)}")
        if not 0 < self.crop_scale <= 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"baseline: 'crop_scale' must lie in (0, 1] and 'jitter' in [0, 1), got "
                             f"{self.crop_scale}, {self.jitter}")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


def augment(images: torch.Tensor, crop_scale: float, jitter: float, generator: torch.Generator | None = None):
    """A random view of each of (N, 3, H, W) images in [0, 1]: a crop of crop_scale..1 of the area (aspect
    3/4..4/3) resized back to H x W, then brightness, contrast and saturation each scaled by 1 +- jitter."""
    n, device = len(images), images.device

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator).to(device)

    area = uniform(crop_scale, 1.0)
    aspect = torch.exp(uniform(-0.2877, 0.2877))  # log(3/4) .. log(4/3)
    sx, sy = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    tx, ty = (1 - sx) * uniform(-1.0, 1.0), (1 - sy) * uniform(-1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    x = nn.functional.grid_sample(images, grid, padding_mode="border", align_corners=False)
    x = x * uniform(1 - jitter, 1 + jitter)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(1 - jitter, 1 + jitter)[:, None, None, None] + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * uniform(1 - jitter, 1 + jitter)[:, None, None, None] + grey
    return x.clamp(0.0, 1.0)


class SimSiam(nn.Module):
    name, window, main_term, scheduled = "simsiam", 1, "similarity", ("encoder", "heads")

    def __init__(self, config: BaselineConfig = BaselineConfig()):
        super().__init__()
        self.config = config.validated()
        self.encoder = ResNetEncoder(config.encoder_width, small_images=config.small_images)
        d, p = self.encoder.embedding_dim, config.projection
        self.projector = nn.Sequential(nn.Linear(d, p, bias=False), nn.BatchNorm1d(p), nn.ReLU(),
                                       nn.Linear(p, p, bias=False), nn.BatchNorm1d(p, affine=False))
        self.predictor = nn.Sequential(nn.Linear(p, p // 4, bias=False), nn.BatchNorm1d(p // 4), nn.ReLU(),
                                       nn.Linear(p // 4, p))

    def groups(self) -> dict:
        return {"encoder": self.encoder, "heads": nn.ModuleList([self.projector, self.predictor])}

    def loss(self, frames: torch.Tensor, actions: torch.Tensor | None = None):
        images = frames.flatten(0, 2)  # every camera's frame is a sample
        z1, z2 = (self.projector(self.encoder(augment(images, self.config.crop_scale, self.config.jitter)))
                  for _ in range(2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        cos = nn.functional.cosine_similarity
        similarity = -0.5 * (cos(p1, z2.detach(), dim=-1).mean() + cos(p2, z1.detach(), dim=-1).mean())
        return similarity, {"similarity": similarity.item()}


class InverseActions(nn.Module):
    name, window, main_term, scheduled = "inverse_actions", 2, "action_mse", ("encoder", "inverse")

    def __init__(self, config: BaselineConfig = BaselineConfig(), action_dim: int = 6):
        super().__init__()
        self.config = config.validated()
        self.encoder = ResNetEncoder(config.encoder_width, small_images=config.small_images)
        d = self.encoder.embedding_dim
        self.inverse = nn.Sequential(nn.Linear(2 * d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.hidden),
                                     nn.ReLU(), nn.Linear(config.hidden, action_dim))

    def groups(self) -> dict:
        return {"encoder": self.encoder, "inverse": self.inverse}

    def loss(self, frames: torch.Tensor, actions: torch.Tensor):
        b, v = frames.shape[:2]
        s = self.encoder(frames.flatten(0, 2)).view(b, v, 2, -1)
        predicted = self.inverse(torch.cat([s[:, :, 0], s[:, :, 1]], dim=-1))  # (B, V, 6): each camera alone
        mse = nn.functional.mse_loss(predicted, actions[:, None, 0].expand_as(predicted))
        return mse, {"action_mse": mse.item()}
