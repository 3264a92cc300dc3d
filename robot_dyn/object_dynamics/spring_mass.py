"""Baseline: a spring-mass rope pushed by a rigid sphere, its parameters identified from the same data.

Position-based dynamics (Müller et al. 2007), one model step per dataset step:
1. inertia: each particle keeps a share `keep` of its last step's displacement (the rest is lost
   to friction with the table);
2. the tool sweeps from its position to its next one in SUBSTEPS stages; at each, particles within
   `contact_radius` of it sideways (and within that height of it) are pushed out to that distance,
   then the springs are projected ITERATIONS times;
3. springs: particles closer than 1.5 `rest_length` at the step's start are joined; a spring longer
   than `rest_length` is shortened by `stiffness` of the excess (a limp, inextensible rope: no
   resistance to bending or compression, like the simulated rope, which has none either);
4. the particles keep their height (the rope lies on the table).
`identify` fits contact_radius, keep and stiffness by Nelder-Mead on the mean particle error of
5-step rollouts from the training set's pushing frames; rest_length is the particles' median
nearest-neighbour distance. Written here because no library models a rope this simply; MuJoCo
itself is the oracle, not this.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robot_dyn.object_dynamics.models import ModelConfig, check_inputs

SUBSTEPS = 4
ITERATIONS = 5
PARAMETERS = ("contact_radius", "rest_length", "keep", "stiffness")


class SpringMass(nn.Module):
    """The model of the module notes; its parameters are a buffer, `physical` (contact_radius m,
    rest_length m, keep, stiffness), saved with the model."""

    def __init__(self, config: ModelConfig, physical=(0.017, 0.015, 0.3, 0.8)):
        super().__init__()
        self.config = config.validated()
        self.register_buffer("physical", torch.tensor(physical, dtype=torch.float32))

    def forward(self, objects: torch.Tensor, tool: torch.Tensor, tool_next: torch.Tensor) -> torch.Tensor:
        check_inputs(objects, tool, tool_next, self.config.history)
        radius, rest, keep, stiffness = (self.physical[i].to(objects.dtype) for i in range(4))
        x = objects[:, -1]
        velocity = x - objects[:, -2] if objects.shape[1] > 1 else torch.zeros_like(x)
        y = x + keep * velocity
        batch, n, _ = x.shape
        close = torch.cdist(x, x) < 1.5 * rest
        b, i, j = torch.nonzero(torch.triu(close, diagonal=1), as_tuple=True)
        i, j = b * n + i, b * n + j
        for stage in range(1, SUBSTEPS + 1):
            at = tool[:, -1] + (tool_next - tool[:, -1]) * (stage / SUBSTEPS)
            y = _push_out(y, at, radius)
            flat = y.reshape(-1, 3)
            for _ in range(ITERATIONS):
                d = flat[j] - flat[i]
                length = d.norm(dim=1, keepdim=True).clamp_min(1e-9)
                correction = 0.5 * stiffness * (length - rest).clamp_min(0.0) / length * d
                flat = flat.index_add(0, i, correction).index_add(0, j, -correction)
            y = flat.reshape(batch, n, 3)
        y = _push_out(y, tool_next, radius)
        return torch.cat([y[..., :2], x[..., 2:]], dim=-1)


def _push_out(y: torch.Tensor, at: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Particles y (B, N, 3) within `radius` of the tool at (B, 3) sideways and in height, moved out sideways
    to that distance."""
    offset = y - at[:, None]
    side = offset[..., :2].norm(dim=-1, keepdim=True).clamp_min(1e-9)
    inside = (side < radius) & (offset[..., 2:].abs() < radius)
    moved = at[:, None, :2] + offset[..., :2] / side * radius
    return torch.cat([torch.where(inside, moved, y[..., :2]), y[..., 2:]], dim=-1)


def identify(dataset, config: ModelConfig, windows: int = 256, steps: int = 5, seed: int = 0, log=print) -> SpringMass:
    """A SpringMass fitted to a dataset's pushing frames (see the module notes)."""
    from scipy.optimize import minimize

    from robot_dyn.object_dynamics.evaluation import push_frames
    from robot_dyn.object_dynamics.models import rollout

    history = config.history
    picks = [(e, t) for e, ep in enumerate(dataset.episodes)
             for t in push_frames(ep, dataset.meta["table_height"], dataset.meta["tool_radius"])
             if t >= history and t + steps < ep.n_frames]
    if not picks:
        raise ValueError("spring-mass identification: no pushing frame with a full history and 5 steps after it")
    rng = np.random.default_rng(seed)
    picks = [picks[k] for k in rng.permutation(len(picks))[:windows]]
    eps = dataset.episodes
    stack = lambda f: torch.as_tensor(np.stack([f(eps[e], t) for e, t in picks]), dtype=torch.float32)  # noqa: E731
    objects = stack(lambda ep, t: ep.particles[t - history:t + 1])
    tool = stack(lambda ep, t: ep.tool[t - history:t + 1])
    path = stack(lambda ep, t: ep.tool[t + 1:t + steps + 1])
    target = stack(lambda ep, t: ep.particles[t + 1:t + steps + 1])
    first = torch.as_tensor(np.stack([ep.particles[0] for ep in eps]), dtype=torch.float32)
    nearest = torch.cdist(first, first) + 1e9 * torch.eye(first.shape[1])
    rest = float(nearest.min(dim=2).values.median())
    model = SpringMass(config)

    def error(theta) -> float:
        radius, keep, stiffness = theta
        if not (0.0 < radius < 0.1 and 0.0 <= keep <= 1.0 and 0.0 < stiffness <= 1.0):
            return 1.0
        model.physical = torch.tensor([radius, rest, keep, stiffness], dtype=torch.float32)
        with torch.no_grad():
            return float((rollout(model, objects, tool, path) - target).norm(dim=-1).mean())

    fit = minimize(error, x0=[0.017, 0.3, 0.8], method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 200})
    radius, keep, stiffness = fit.x
    model.physical = torch.tensor([radius, rest, keep, stiffness], dtype=torch.float32)
    log(f"spring-mass identified on {len(picks)} windows: contact radius {radius * 1e3:.1f} mm, rest length "
        f"{rest * 1e3:.1f} mm, keep {keep:.2f}, stiffness {stiffness:.2f}; 5-step error {fit.fun * 1e3:.2f} mm")
    return model.eval()
