"""Policy heads: from an observation vector to a chunk of future actions, trained by behaviour cloning.

Every head has the same two calls, over normalised quantities (robot_dyn.imitation.policy does the
normalising):
    loss(obs (B, O), actions (B, K, A), progress) -> (loss, {term: float})   progress: 0..1 of training
    sample(obs (B, O), generator) -> (B, K, A)
with K the chunk (future actions predicted at once, executed receding) and A the action size. Actions
live in [-1, 1] (the unitless teleop twist); heads clip what they sample to it.

- MlpHead: the chunk regressed with mean squared error (the "MLP with action chunking" of the
  DynaMo paper's tables).
- DiffusionHead: a denoising diffusion policy (Chi et al. 2023) over the chunk, conditioned on the
  observation: epsilon prediction trained with diffusers' DDPM scheduler (squared-cosine betas, 100
  steps), sampled with its DDIM scheduler in few steps. The denoiser is a residual MLP with FiLM
  conditioning instead of the paper's 1-D temporal U-Net: the chunks here are short (8) and the CPU
  budget small.
- VqBetHead: VQ-BeT (Lee et al. 2024): a residual vector quantiser (vector-quantize-pytorch) learns a
  discrete vocabulary of action chunks (first `vq_fraction` of training), then, with it frozen, a
  trunk predicts each quantiser level's code (cross-entropy) and a continuous offset added to the
  decoded chunk (L1). The trunk is an MLP over the flattened observation window rather than the
  paper's GPT: the window is short and the observation already a vector.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

HEADS = ("mlp", "diffusion", "vqbet")


@dataclass(frozen=True)
class HeadConfig:
    """hidden/depth: the networks' width and residual blocks; diffusion_*: DDPM training steps and the
    DDIM steps of sampling; vq_*: quantiser levels, codes per level, latent size, and the fraction of
    training spent on the vocabulary before the trunk trains."""

    hidden: int = 256
    depth: int = 3
    diffusion_train_steps: int = 100
    diffusion_sample_steps: int = 10
    vq_levels: int = 2
    vq_codes: int = 16
    vq_latent: int = 32
    vq_fraction: float = 0.3

    def validated(self) -> "HeadConfig":
        for name in ("hidden", "depth", "diffusion_train_steps", "diffusion_sample_steps", "vq_levels", "vq_codes",
                     "vq_latent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"head: '{name}' must be an integer >= 1, got {getattr(self, name)!r}")
        if self.diffusion_sample_steps > self.diffusion_train_steps:
            raise ValueError("head: 'diffusion_sample_steps' must not exceed 'diffusion_train_steps'")
        if not 0 < self.vq_fraction < 1:
            raise ValueError(f"head: 'vq_fraction' must lie in (0, 1), got {self.vq_fraction}")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


class ResidualMlp(nn.Module):
    """in -> hidden -> `depth` pre-norm residual blocks (optionally FiLM-conditioned on `cond`) -> out."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, depth: int, cond_dim: int = 0):
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.Mish(),
                                                  nn.Linear(hidden, hidden)) for _ in range(depth))
        self.film = nn.ModuleList(nn.Linear(cond_dim, 2 * hidden) for _ in range(depth)) if cond_dim else None
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(x)
        for k, block in enumerate(self.blocks):
            update = block(h)
            if self.film is not None:
                scale, shift = self.film[k](cond).chunk(2, dim=-1)
                update = update * (1 + scale) + shift
            h = h + update
        return self.out(h)


class MlpHead(nn.Module):
    def __init__(self, obs_dim: int, chunk: int, action_dim: int, config: HeadConfig):
        super().__init__()
        self.chunk, self.action_dim = chunk, action_dim
        self.net = ResidualMlp(obs_dim, chunk * action_dim, config.hidden, config.depth)

    def loss(self, obs, actions, progress: float = 0.0):
        loss = nn.functional.mse_loss(self.net(obs).view_as(actions), actions)
        return loss, {"mse": loss.item()}

    def sample(self, obs, generator=None):
        return self.net(obs).view(-1, self.chunk, self.action_dim).clamp(-1.0, 1.0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer diffusion steps (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class DiffusionHead(nn.Module):
    def __init__(self, obs_dim: int, chunk: int, action_dim: int, config: HeadConfig):
        super().__init__()
        from diffusers import DDIMScheduler, DDPMScheduler

        self.chunk, self.action_dim, self.config = chunk, action_dim, config
        self.step_dim = 64
        self.denoiser = ResidualMlp(chunk * action_dim, chunk * action_dim, config.hidden, config.depth,
                                    cond_dim=obs_dim + self.step_dim)
        self.train_scheduler = DDPMScheduler(num_train_timesteps=config.diffusion_train_steps,
                                             beta_schedule="squaredcos_cap_v2", clip_sample=True,
                                             prediction_type="epsilon")
        self.sample_scheduler = DDIMScheduler.from_config(self.train_scheduler.config)

    def _noise_prediction(self, noisy, steps, obs):
        cond = torch.cat([obs, timestep_embedding(steps, self.step_dim)], dim=-1)
        return self.denoiser(noisy.flatten(1), cond).view_as(noisy)

    def loss(self, obs, actions, progress: float = 0.0):
        noise = torch.randn_like(actions)
        steps = torch.randint(0, self.config.diffusion_train_steps, (len(actions),), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, steps)
        loss = nn.functional.mse_loss(self._noise_prediction(noisy, steps, obs), noise)
        return loss, {"noise_mse": loss.item()}

    def sample(self, obs, generator=None):
        scheduler = self.sample_scheduler
        scheduler.set_timesteps(self.config.diffusion_sample_steps)
        x = torch.randn((len(obs), self.chunk, self.action_dim), generator=generator, device=obs.device)
        for t in scheduler.timesteps:
            steps = torch.full((len(obs),), int(t), device=obs.device, dtype=torch.long)
            x = scheduler.step(self._noise_prediction(x, steps, obs), t, x, generator=generator).prev_sample
        return x.clamp(-1.0, 1.0)


class VqBetHead(nn.Module):
    def __init__(self, obs_dim: int, chunk: int, action_dim: int, config: HeadConfig):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.chunk, self.action_dim, self.config = chunk, action_dim, config
        flat, c = chunk * action_dim, config
        self.action_encoder = ResidualMlp(flat, c.vq_latent, c.hidden, 1)
        self.action_decoder = ResidualMlp(c.vq_latent, flat, c.hidden, 1)
        self.quantizer = ResidualVQ(dim=c.vq_latent, num_quantizers=c.vq_levels, codebook_size=c.vq_codes,
                                    kmeans_init=True, kmeans_iters=10, decay=0.8)
        self.trunk = ResidualMlp(obs_dim, c.hidden, c.hidden, c.depth)
        self.code_logits = nn.Linear(c.hidden, c.vq_levels * c.vq_codes)
        self.offset = ResidualMlp(c.hidden + c.vq_levels * c.vq_codes, flat, c.hidden, 1)

    def _vocabulary_modules(self):
        return (self.action_encoder, self.action_decoder, self.quantizer)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Chunks (B, K, A) of codes (B, levels)."""
        return self.action_decoder(self.quantizer.get_output_from_indices(codes)).view(-1, self.chunk, self.action_dim)

    def _offset(self, features, codes):
        onehot = nn.functional.one_hot(codes, self.config.vq_codes).flatten(1).float()
        return self.offset(torch.cat([features, onehot], dim=-1)).view(-1, self.chunk, self.action_dim)

    def loss(self, obs, actions, progress: float = 0.0):
        if progress < self.config.vq_fraction:  # stage 1: the vocabulary of chunks
            quantised, _, commitment = self.quantizer(self.action_encoder(actions.flatten(1)))
            reconstruction = nn.functional.mse_loss(self.action_decoder(quantised).view_as(actions), actions)
            loss = reconstruction + commitment.sum()
            return loss, {"vq_reconstruction": reconstruction.item(), "vq_commitment": commitment.sum().item()}
        for module in self._vocabulary_modules():  # stage 2: codes and offsets, the vocabulary frozen
            module.eval()
        with torch.no_grad():
            _, codes, _ = self.quantizer(self.action_encoder(actions.flatten(1)))
            decoded = self._decode(codes)
        features = self.trunk(obs)
        logits = self.code_logits(features).view(-1, self.config.vq_levels, self.config.vq_codes)
        code_loss = nn.functional.cross_entropy(logits.flatten(0, 1), codes.flatten())
        offset_loss = nn.functional.l1_loss(decoded + self._offset(features, codes), actions)
        return code_loss + offset_loss, {"code_ce": code_loss.item(), "offset_l1": offset_loss.item()}

    def sample(self, obs, generator=None):
        features = self.trunk(obs)
        logits = self.code_logits(features).view(-1, self.config.vq_levels, self.config.vq_codes)
        probabilities = logits.softmax(-1).flatten(0, 1)
        codes = torch.multinomial(probabilities, 1, generator=generator).view(-1, self.config.vq_levels)
        return (self._decode(codes) + self._offset(features, codes)).clamp(-1.0, 1.0)


def make_head(name: str, obs_dim: int, chunk: int, action_dim: int, config: HeadConfig = HeadConfig()) -> nn.Module:
    heads = {"mlp": MlpHead, "diffusion": DiffusionHead, "vqbet": VqBetHead}
    if name not in heads:
        raise ValueError(f"head must be one of {list(HEADS)}, got '{name}'")
    return heads[name](obs_dim, chunk, action_dim, config.validated())
