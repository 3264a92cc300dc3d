"""Planning pushes with a particle dynamics model: which straight push brings the rope closest to a
target shape.

After Zhang, Zhang, Li (CoRL 2024), who plan by sampling pushes and rolling them out with the learned
model: a push is (start x, y, direction angle, length) of the tool's tip, lowered at the start beside
the rope and moved in a straight line at pushing height. Its tool path (`tool_paths`) is the executed
motion sampled at the model's step: a rest-to-rest minimum-jerk move of approach + length metres at the
push's peak speed (the outer loop's pose goals and the recorded pushes move so), then `settle_steps`
steps at rest while the rope slides on. Planning is the cross-entropy method over pushes:
1. `samples` pushes aimed at the rope: a particle picked at random, a direction at random, a length
   in `length_range`; the tip starts `approach` m before the particle, clear of the rope;
2. all of them rolled out at once by a predictor (`LearnedRollouts` for a trained model, or
   robot_dyn.object_dynamics.oracle.MujocoRollouts, MuJoCo itself), each scored by the symmetric
   Chamfer distance (m, in the table plane) of the predicted particles to the target;
3. `iterations` - 1 more rounds drawn around the `elites` best (Gaussian, with their spread), the
   best push of all rounds kept.
Pushes whose path leaves the workspace box are never proposed. Target shapes (`target_shape`):
straight, U and S curves as long as the rope, centred where the rope is, along its main axis.

A predictor has `step_s` (s, one step) and final(particles (N, 3), paths (B, K + 1, 3), steps (B,)) ->
the particles (B, N, 3) after steps[b] steps of path b (paths[:, 0]: the tip at rest at the start).

Units: metres, radians, seconds, world frame (z up).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_dyn.control.trajectory import min_jerk_duration, min_jerk_fraction

TARGET_SHAPES = ("straight", "u", "s")


@dataclass(frozen=True)
class PlannerConfig:
    """speed: the push's peak tip speed (m/s), the recorded pushes' (configs/perception.yaml push.speed);
    acceleration: the Cartesian acceleration bound of the outer loop that executes it (m/s^2)."""

    samples: int = 128
    iterations: int = 2
    elites: int = 8
    length_range: tuple = (0.03, 0.12)
    approach: float = 0.04
    speed: float = 0.12
    acceleration: float = 1.0
    settle_steps: int = 2
    clearance: float = 0.024  # m, the tip's start from any particle (tip radius + rope radius + 5 mm)
    workspace_x: tuple = (0.3, 0.72)
    workspace_y: tuple = (-0.32, 0.32)

    def validated(self) -> "PlannerConfig":
        if self.samples < 2 or self.iterations < 1 or not 1 <= self.elites <= self.samples or self.settle_steps < 0:
            raise ValueError(f"planner: need samples >= 2, iterations >= 1, 1 <= elites <= samples, settle_steps >= 0, "
                             f"got {self}")
        if not 0 < self.length_range[0] <= self.length_range[1] or self.approach < 0:
            raise ValueError(f"planner: lengths must be positive, got {self}")
        if not (self.speed > 0 and self.acceleration > 0):
            raise ValueError(f"planner: speed and acceleration must be positive, got {self}")
        return self


@dataclass
class PushPlan:
    """The chosen push: start (2,) and end (2,) of the tip in the table plane (m), angle (rad), length (m,
    past the start's approach), duration (s, the push's move from start to end), its predicted particles
    (N, 3) m, and its cost (m, Chamfer to the target); `evaluated`: pushes rolled out."""

    start: np.ndarray
    end: np.ndarray
    angle: float
    length: float
    duration: float
    predicted: np.ndarray
    cost: float
    evaluated: int


class LearnedRollouts:
    """Predictor (module notes) of a trained particle dynamics model (robot_dyn.object_dynamics.models) on the
    model's device; step_s: the model's step (model.json). Samples go through in batches of `chunk`, those of
    similar lengths together: 256 samples took 1.6 s in batches of 64 and 2.2 s in one batch on one core of
    the 2-core VM (a batch's edge features outgrow the cache)."""

    def __init__(self, model, step_s: float, chunk: int = 64):
        self.model, self.step_s, self.chunk = model, float(step_s), int(chunk)

    def final(self, particles: np.ndarray, paths: np.ndarray, steps: np.ndarray) -> np.ndarray:
        import torch

        from robot_dyn.object_dynamics.models import rollout_final

        device = next(self.model.parameters(), torch.zeros(0)).device
        history = self.model.config.history
        objects = torch.as_tensor(np.asarray(particles), dtype=torch.float32, device=device)[None, None]
        out = np.empty((len(paths), len(particles), 3))
        order = np.argsort(-np.asarray(steps), kind="stable")
        for first in range(0, len(order), self.chunk):
            rows = order[first:first + self.chunk]
            path = torch.as_tensor(paths[rows], dtype=torch.float32, device=device)
            tool = path[:, :1].expand(len(rows), history + 1, 3).contiguous()  # the tip at rest at the start
            with torch.no_grad():
                final = rollout_final(self.model, objects.expand(len(rows), history + 1, -1, -1).contiguous(), tool,
                                      path[:, 1:], torch.as_tensor(steps[rows], device=device))
            out[rows] = final.cpu().numpy()
        return out


def target_shape(name: str, particles: np.ndarray, count: int | None = None, length: float | None = None) -> np.ndarray:
    """Target points (count, 3) m for a rope now at particles (N, 3): the named shape, `length` m long (None:
    as the polyline through the particles in their order, for vertices along the rope), centred at their
    centroid, along their main axis, at their mean height."""
    if name not in TARGET_SHAPES:
        raise ValueError(f"target shape must be one of {list(TARGET_SHAPES)}, got {name!r}")
    particles = np.asarray(particles, dtype=float)
    count = count or len(particles)
    if length is None:
        length = float(np.linalg.norm(np.diff(particles, axis=0), axis=1).sum())
    s = np.linspace(-0.5, 0.5, count) * length
    if name == "straight":
        local = np.column_stack([s, np.zeros(count)])
    elif name == "u":  # a half circle of the rope's length
        radius = length / np.pi
        phi = s / radius
        local = np.column_stack([radius * np.sin(phi), radius * (1 - np.cos(phi)) - radius * (1 - 2 / np.pi)])
    else:  # S: two half circles, the second turning the other way
        radius = length / (2 * np.pi)
        phi = np.abs(s) / radius
        side = np.sign(s)
        local = np.column_stack([side * radius * np.sin(phi), side * radius * (1 - np.cos(phi))])
    centred = particles[:, :2] - particles[:, :2].mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    rotation = np.array([[axis[0], -axis[1]], [axis[1], axis[0]]])
    xy = local @ rotation.T + particles[:, :2].mean(axis=0)
    return np.column_stack([xy, np.full(count, particles[:, 2].mean())])


def push_durations(pushes: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """Durations (B,) s of the pushes' moves (B, 4) from start to end: minimum jerk within the speed and
    acceleration bounds, as the outer loop times a pose goal (robot_dyn.control.trajectory)."""
    return np.array([min_jerk_duration(config.approach + length, config.speed, config.acceleration) for length in pushes[:, 3]])


def tool_paths(pushes: np.ndarray, height: float, config: PlannerConfig, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Tool paths (B, K + 1, 3) m of pushes (B, 4) = (start x, y, angle, length), sampled every step_s s from
    the tip at rest at the start (index 0) at `height`, held at the end; and each path's steps (B,): its
    move plus settle_steps. K covers the longest possible push, so every plan rolls out the same shapes."""
    distance = config.approach + pushes[:, 3]
    duration = push_durations(pushes, config)
    longest = min_jerk_duration(config.approach + config.length_range[1], config.speed, config.acceleration)
    steps = int(np.ceil(longest / step_s - 1e-9)) + config.settle_steps
    t = np.arange(steps + 1) * step_s
    travel = distance[:, None] * min_jerk_fraction(t[None] / duration[:, None])
    direction = np.column_stack([np.cos(pushes[:, 2]), np.sin(pushes[:, 2])])
    xy = pushes[:, None, :2] + travel[..., None] * direction[:, None]
    own = np.minimum(np.ceil(duration / step_s - 1e-9).astype(int) + config.settle_steps, steps)
    return np.concatenate([xy, np.full(xy.shape[:2] + (1,), height)], axis=2), own


def _feasible(pushes: np.ndarray, particles: np.ndarray, config: PlannerConfig) -> np.ndarray:
    direction = np.column_stack([np.cos(pushes[:, 2]), np.sin(pushes[:, 2])])
    end = pushes[:, :2] + (config.approach + pushes[:, 3])[:, None] * direction
    inside = np.ones(len(pushes), bool)
    for xy in (pushes[:, :2], end):
        inside &= (xy[:, 0] >= config.workspace_x[0]) & (xy[:, 0] <= config.workspace_x[1])
        inside &= (xy[:, 1] >= config.workspace_y[0]) & (xy[:, 1] <= config.workspace_y[1])
    gap = np.linalg.norm(pushes[:, None, :2] - particles[None, :, :2], axis=2).min(axis=1)
    lengths = (pushes[:, 3] >= config.length_range[0]) & (pushes[:, 3] <= config.length_range[1])
    return inside & (gap >= config.clearance) & lengths


def sample_pushes(rng: np.random.Generator, particles: np.ndarray, count: int, config: PlannerConfig) -> np.ndarray:
    """Up to `count` feasible pushes (M, 4) aimed at the rope (step 1 of the module notes)."""
    found = []
    for _ in range(20):
        picks = particles[rng.integers(len(particles), size=4 * count), :2]
        angle = rng.uniform(-np.pi, np.pi, 4 * count)
        length = rng.uniform(*config.length_range, 4 * count)
        start = picks - config.approach * np.column_stack([np.cos(angle), np.sin(angle)])
        pushes = np.column_stack([start, angle, length])
        found.append(pushes[_feasible(pushes, particles, config)])
        if sum(map(len, found)) >= count:
            break
    pushes = np.concatenate(found)[:count]
    if not len(pushes):
        raise ValueError("planner: no feasible push: is the rope inside the workspace box?")
    return pushes


def _plan(push: np.ndarray, config: PlannerConfig, predicted: np.ndarray, cost: float, evaluated: int) -> PushPlan:
    direction = np.array([np.cos(push[2]), np.sin(push[2])])
    return PushPlan(push[:2].copy(), push[:2] + (config.approach + push[3]) * direction, float(push[2]), float(push[3]),
                    float(push_durations(push[None], config)[0]), predicted, cost, evaluated)


def plan_push(predictor, particles: np.ndarray, target: np.ndarray, height: float, config: PlannerConfig = PlannerConfig(),
              seed: int = 0) -> PushPlan:
    """The best push found for the rope at particles (N, 3) m toward target (M, 3) m, the tip at `height` m
    while pushing; predictor: as in the module notes."""
    from robot_dyn.object_dynamics.evaluation import chamfer

    config = config.validated()
    rng = np.random.default_rng(seed)
    particles, target = np.asarray(particles, dtype=float), np.asarray(target, dtype=float)
    best, evaluated, pushes = None, 0, sample_pushes(rng, particles, config.samples, config)
    for round_ in range(config.iterations):
        paths, steps = tool_paths(pushes, height, config, predictor.step_s)
        final = predictor.final(particles, paths, steps)
        cost = chamfer(final[..., :2], target[:, :2])
        evaluated += len(pushes)
        order = np.argsort(cost)
        if best is None or cost[order[0]] < best[1]:
            best = (pushes[order[0]], float(cost[order[0]]), final[order[0]])
        if round_ + 1 < config.iterations:
            elites = pushes[order[:config.elites]]
            spread = elites.std(axis=0) + np.array([0.002, 0.002, 0.05, 0.005])
            drawn = elites[rng.integers(len(elites), size=4 * config.samples)] + rng.normal(size=(4 * config.samples, 4)) * spread
            drawn = drawn[_feasible(drawn, particles, config)][:config.samples]
            if not len(drawn):
                break
            pushes = drawn
    push, cost, predicted = best
    return _plan(push, config, predicted, cost, evaluated)


def random_plan(particles: np.ndarray, config: PlannerConfig = PlannerConfig(), seed: int = 0) -> PushPlan:
    """The random-push baseline: one feasible push aimed at the rope (step 1 only), not rolled out."""
    push = sample_pushes(np.random.default_rng(seed), np.asarray(particles, dtype=float), 1, config)[0]
    return _plan(push, config, np.asarray(particles, dtype=float), float("nan"), 0)
