"""Planning pushes with a particle dynamics model: which straight push brings the rope closest to a
target shape.

After Zhang, Zhang, Li (CoRL 2024), who plan by sampling pushes and rolling them out with the learned
model: a push is (start x, y, direction angle, length) of the tool's tip, lowered at the start beside
the rope and moved in a straight line at pushing height; its tool path is sampled at the model's step
(one step = `step_length` m of travel, the dataset's push speed times its step). Planning is the
cross-entropy method over pushes:
1. `samples` pushes aimed at the rope: a particle picked at random, a direction at random, a length
   in `length_range`; the tip starts `approach` m before the particle, clear of the rope;
2. all of them rolled out at once with the model (one batch), each scored by the symmetric Chamfer
   distance (m, in the table plane) of the predicted particles to the target;
3. `iterations` - 1 more rounds drawn around the `elites` best (Gaussian, with their spread), the
   best push of all rounds kept.
Pushes whose path leaves the workspace box are never proposed. Target shapes (`target_shape`):
straight, U and S curves as long as the rope, centred where the rope is, along its main axis.

Units: metres, radians, world frame (z up).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_SHAPES = ("straight", "u", "s")


@dataclass(frozen=True)
class PlannerConfig:
    samples: int = 256
    iterations: int = 2
    elites: int = 16
    length_range: tuple = (0.03, 0.12)
    approach: float = 0.04
    step_length: float = 0.012  # m of tool travel per model step (0.12 m/s x 0.1 s)
    clearance: float = 0.024  # m, the tip's start from any particle (tip radius + rope radius + 5 mm)
    workspace_x: tuple = (0.3, 0.72)
    workspace_y: tuple = (-0.32, 0.32)

    def validated(self) -> "PlannerConfig":
        if self.samples < 2 or self.iterations < 1 or not 1 <= self.elites <= self.samples:
            raise ValueError(f"planner: need samples >= 2, iterations >= 1, 1 <= elites <= samples, got {self}")
        if not 0 < self.length_range[0] <= self.length_range[1] or self.step_length <= 0 or self.approach < 0:
            raise ValueError(f"planner: lengths must be positive, got {self}")
        return self


@dataclass
class PushPlan:
    """The chosen push: start (2,) and end (2,) of the tip in the table plane (m), angle (rad), length (m,
    past the start's approach), its predicted particles (N, 3) m, and its cost (m, Chamfer to the
    target); `evaluated`: pushes rolled out."""

    start: np.ndarray
    end: np.ndarray
    angle: float
    length: float
    predicted: np.ndarray
    cost: float
    evaluated: int


def target_shape(name: str, particles: np.ndarray, count: int | None = None) -> np.ndarray:
    """Target points (count, 3) m for a rope now at particles (N, 3): the named shape, as long as the rope's
    polyline through its particles, centred at their centroid, along their main axis, at their mean height."""
    if name not in TARGET_SHAPES:
        raise ValueError(f"target shape must be one of {list(TARGET_SHAPES)}, got {name!r}")
    particles = np.asarray(particles, dtype=float)
    count = count or len(particles)
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


def chamfer_xy(predicted, target):
    """Symmetric Chamfer distance (B,) m in the table plane between predicted (B, N, 3) and target (M, 3)
    (torch tensors, batched: robot_dyn.object_dynamics.evaluation.chamfer is the same for one numpy set)."""
    import torch

    d = torch.cdist(predicted[..., :2], target[None, :, :2].expand(len(predicted), -1, -1))
    return 0.5 * (d.min(dim=2).values.mean(dim=1) + d.min(dim=1).values.mean(dim=1))


def tool_paths(pushes: np.ndarray, height: float, config: PlannerConfig) -> np.ndarray:
    """Tool paths (B, K, 3) m of pushes (B, 4) = (start x, y, angle, length): the tip from the start at
    `height`, `step_length` further each step, held at the end; K covers the longest possible push."""
    steps = int(np.ceil((config.approach + config.length_range[1]) / config.step_length))
    travel = np.minimum(np.arange(1, steps + 1)[None] * config.step_length, (config.approach + pushes[:, 3])[:, None])
    direction = np.column_stack([np.cos(pushes[:, 2]), np.sin(pushes[:, 2])])
    xy = pushes[:, None, :2] + travel[..., None] * direction[:, None]
    return np.concatenate([xy, np.full(xy.shape[:2] + (1,), height)], axis=2)


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


def plan_push(model, particles: np.ndarray, target: np.ndarray, height: float, config: PlannerConfig = PlannerConfig(),
              seed: int = 0) -> PushPlan:
    """The best push found for the rope at particles (N, 3) m toward target (M, 3) m, the tip at `height` m
    while pushing; model: a particle dynamics model (robot_dyn.object_dynamics.models interface)."""
    import torch

    from robot_dyn.object_dynamics.models import rollout

    config = config.validated()
    rng = np.random.default_rng(seed)
    particles = np.asarray(particles, dtype=float)
    history = model.config.history
    target_t = torch.as_tensor(target, dtype=torch.float32)
    best, evaluated, pushes = None, 0, sample_pushes(rng, particles, config.samples, config)
    for round_ in range(config.iterations):
        paths = torch.as_tensor(tool_paths(pushes, height, config), dtype=torch.float32)
        batch = len(pushes)
        # the history: the rope at rest, the tip lowered at the start
        objects = torch.as_tensor(particles, dtype=torch.float32)[None, None].expand(batch, history + 1, -1, -1)
        start = torch.as_tensor(np.column_stack([pushes[:, :2], np.full(batch, height)]), dtype=torch.float32)
        tool = start[:, None].expand(batch, history + 1, 3)
        with torch.no_grad():
            final = rollout(model, objects.contiguous(), tool.contiguous(), paths)[:, -1]
            cost = chamfer_xy(final, target_t).numpy()
        evaluated += batch
        order = np.argsort(cost)
        if best is None or cost[order[0]] < best[1]:
            best = (pushes[order[0]], float(cost[order[0]]), final[order[0]].numpy().astype(float))
        if round_ + 1 < config.iterations:
            elites = pushes[order[:config.elites]]
            spread = elites.std(axis=0) + np.array([0.002, 0.002, 0.05, 0.005])
            drawn = elites[rng.integers(len(elites), size=4 * config.samples)] + rng.normal(size=(4 * config.samples, 4)) * spread
            drawn = drawn[_feasible(drawn, particles, config)][:config.samples]
            if not len(drawn):
                break
            pushes = drawn
    push, cost, predicted = best
    direction = np.array([np.cos(push[2]), np.sin(push[2])])
    return PushPlan(push[:2].copy(), push[:2] + (config.approach + push[3]) * direction, float(push[2]), float(push[3]),
                    predicted, cost, evaluated)


def random_plan(particles: np.ndarray, config: PlannerConfig = PlannerConfig(), seed: int = 0) -> PushPlan:
    """The random-push baseline: one feasible push aimed at the rope (step 1 only), not rolled out."""
    push = sample_pushes(np.random.default_rng(seed), np.asarray(particles, dtype=float), 1, config)[0]
    direction = np.array([np.cos(push[2]), np.sin(push[2])])
    return PushPlan(push[:2].copy(), push[:2] + (config.approach + push[3]) * direction, float(push[2]), float(push[3]),
                    np.asarray(particles, dtype=float), float("nan"), 0)


def push_to_shape(sim, planner, shape: str, seed: int, pushes: int = 5, config: PlannerConfig = PlannerConfig(),
                  stop_at: float = 0.0) -> dict:
    """Closed loop in process: a rope in the random start shape of `seed` (robot_dyn.perception.episodes'
    RopePushSim, no cameras), the target `shape` made from it, then up to `pushes` rounds of plan, push
    (through the control cores, as recorded pushes are) and observe the rope's vertices, stopping once the
    Chamfer distance to the target is at most `stop_at` m. planner(particles (N, 3), target (M, 3),
    height, seed) -> PushPlan. Returns the Chamfer distance (m) before and after each push and the
    planning times (s)."""
    import time

    from robot_dyn.object_dynamics.evaluation import chamfer
    from robot_dyn.perception.episodes import Push
    from robot_dyn.sim.deformables import rope_vertices

    c = sim.config
    height = c.table.height + c.pusher.tip_radius + c.push.clearance
    vertices = sim.reset(np.random.default_rng(seed))
    target = target_shape(shape, vertices)
    distances, plan_s = [chamfer(vertices[:, :2], target[:, :2])], []
    for k in range(pushes):
        if distances[-1] <= stop_at:
            break
        began = time.perf_counter()
        plan = planner(vertices, target, height, seed * 100 + k)
        plan_s.append(time.perf_counter() - began)
        direction = np.array([np.cos(plan.angle), np.sin(plan.angle), 0.0])
        start, end = np.array([*plan.start, height]), np.array([*plan.end, height])
        sim.run_push(Push(-1, start + config.approach * direction, direction, plan.length, start, end), lambda _: None)
        vertices = rope_vertices(sim.model, sim.data, c.rope.name)
        distances.append(chamfer(vertices[:, :2], target[:, :2]))
    return {"seed": seed, "shape": shape, "chamfer_m": distances, "plan_s": plan_s}

