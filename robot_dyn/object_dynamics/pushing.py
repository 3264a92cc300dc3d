"""Executing a planned push with the arm: the flange's Cartesian path for the controller, and the loop of
plan, push and observe that the dynamics_planner node runs.

The motion is the recorded pushes' (robot_dyn.perception.episodes.RopePushSim.run_push) as one path:
from the current desired pose, a transit to `hover` m above the push's start at the transit speed (turning
the pusher straight down on the way), lowering to the start, the push to its end and the lift, each a
rest-to-rest minimum-jerk move (the last three at the push's speed, as the planner predicted it). The tip
is `pusher_length` m along the flange's z axis. Units: metres, seconds, the robot's base frame (z up).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_dyn.control.outer_loop import OuterLoopConfig
from robot_dyn.control.trajectory import CartesianMove, CartesianPath, min_jerk_duration
from robot_dyn.object_dynamics.evaluation import chamfer
from robot_dyn.object_dynamics.planning import TARGET_SHAPES, PlannerConfig, PushPlan, target_shape

SAMPLE_S = 0.02  # s between the path's samples (the controller interpolates them with quintic splines)


def push_path(plan: PushPlan, height: float, start_pose: tuple, push_rotation: np.ndarray, pusher_length: float,
              t0: float, config: PlannerConfig, hover: float, transit: OuterLoopConfig = OuterLoopConfig()
              ) -> tuple[CartesianPath, float]:
    """The flange's path from start_pose (p (3,), R (3, 3)) at t0 (s) through the push of `plan` (the tip at
    `height` m while pushing, the flange at push_rotation (3, 3)), and the time (s) the push's end is reached."""
    down = push_rotation[:, 2] * pusher_length  # flange -> tip
    start, end = np.array([*plan.start, height]), np.array([*plan.end, height])
    up = np.array([0.0, 0.0, hover])
    p0, R0 = (np.asarray(a, float) for a in start_pose)
    angle = float(np.linalg.norm(CartesianMove(0.0, 1.0, p0, R0, p0, push_rotation).rotvec))
    transit_s = max(min_jerk_duration(np.linalg.norm(start + up - down - p0), transit.cartesian_speed,
                                      transit.cartesian_acceleration),
                    min_jerk_duration(angle, transit.angular_speed, transit.angular_acceleration))
    moves, t, pose = [], t0, (p0, R0)
    for target, speed in ((start + up, None), (start, config.speed), (end, config.speed), (end + up, config.speed)):
        flange = target - down
        duration = transit_s if speed is None else min_jerk_duration(np.linalg.norm(flange - pose[0]), speed,
                                                                     config.acceleration)
        moves.append(CartesianMove(t, duration, pose[0], pose[1], flange, push_rotation))
        t, pose = t + duration, (flange, push_rotation)
    samples = [moves[0].sample(t0)]
    times = [t0]
    for move in moves:
        n = max(1, int(np.ceil(move.duration / SAMPLE_S)))
        for s in np.linspace(move.t0, move.t_end, n + 1)[1:]:
            samples.append(move.sample(s))
            times.append(s)
    path = CartesianPath(times, [s.position for s in samples], [s.velocity for s in samples],
                         [s.acceleration for s in samples], [s.rotation for s in samples],
                         [s.angular_velocity for s in samples])
    return path, moves[2].t_end


@dataclass(frozen=True)
class ShapingSettings:
    """target: a target shape name (robot_dyn.object_dynamics.planning.TARGET_SHAPES); max_pushes; reached:
    the Chamfer distance (m) to the target that ends the run; settle_s: rest after a push before the
    particles count as its outcome; rope_length: m, the target's length, since tracked particles come in no
    order along the rope (None: the polyline through them in their order, for true vertices)."""

    target: str = "straight"
    max_pushes: int = 5
    reached: float = 0.01
    settle_s: float = 0.5
    rope_length: float | None = 0.465

    def validated(self) -> "ShapingSettings":
        if self.target not in TARGET_SHAPES:
            raise ValueError(f"shaping: 'target' must be one of {list(TARGET_SHAPES)}, got {self.target!r}")
        if self.max_pushes < 1 or self.reached < 0 or self.settle_s < 0 or not (self.rope_length or 1) > 0:
            raise ValueError(f"shaping: need max_pushes >= 1, reached >= 0, settle_s >= 0, rope_length > 0, got {self}")
        return self


class Shaping:
    """The closed loop of one run toward a target shape: observe(particles (N, 3)) -> the Chamfer distance
    (m) to the target; plan(particles) -> the next push, or None once the run is over (`outcome` says why).
    planner(particles, target, height, seed) -> PushPlan: planning.plan_push with a predictor, or
    planning.random_plan. target (M, 3): None makes settings.target from the first observation."""

    def __init__(self, planner, settings: ShapingSettings, height: float, seed: int, target: np.ndarray | None = None):
        self.planner, self.settings = planner, settings.validated()
        self.height, self.seed, self.target = height, seed, target
        self.distances: list[float] = []  # Chamfer to the target before the first push and after each (m)
        self.pushes, self.outcome = 0, None

    def observe(self, particles: np.ndarray) -> float:
        particles = np.asarray(particles, float)
        if particles.ndim != 2 or particles.shape[1] != 3 or len(particles) < 3 or not np.all(np.isfinite(particles)):
            raise ValueError(f"particles must be finite with shape (N >= 3, 3), got {particles.shape}")
        if self.target is None:
            self.target = target_shape(self.settings.target, particles, length=self.settings.rope_length)
        self.distances.append(chamfer(particles[:, :2], self.target[:, :2]))
        if self.distances[-1] <= self.settings.reached:
            self.outcome = f"reached the target: Chamfer {self.distances[-1] * 1e3:.1f} mm after {self.pushes} pushes"
        elif self.pushes >= self.settings.max_pushes:
            self.outcome = (f"gave up after {self.pushes} pushes: Chamfer {self.distances[-1] * 1e3:.1f} mm "
                            f"(from {self.distances[0] * 1e3:.1f} mm)")
        return self.distances[-1]

    def plan(self, particles: np.ndarray) -> PushPlan | None:
        if self.outcome is not None:
            return None
        plan = self.planner(np.asarray(particles, float), self.target, self.height, self.seed * 100 + self.pushes)
        self.pushes += 1
        return plan


def push_to_shape(sim, planner, shape: str, seed: int, pushes: int = 5, config: PlannerConfig = PlannerConfig(),
                  stop_at: float = 0.0) -> dict:
    """Shaping in process: a rope in the random start shape of `seed` (robot_dyn.perception.episodes'
    RopePushSim, no cameras), the target `shape` made from it, then up to `pushes` rounds of plan, push
    (through the control cores, as recorded pushes are) and observe the rope's vertices, stopping once the
    Chamfer distance to the target is at most `stop_at` m; planner as Shaping's. Returns the Chamfer
    distance (m) before and after each push and the planning times (s)."""
    import time

    from robot_dyn.perception.episodes import Push
    from robot_dyn.sim.deformables import rope_vertices

    c = sim.config
    if not np.isclose(config.speed, c.push.speed):
        raise ValueError(f"planner 'speed' {config.speed} m/s differs from the scene's push speed {c.push.speed} m/s: "
                         "the plans would predict another motion than the one executed")
    height = c.table.height + c.pusher.tip_radius + c.push.clearance
    vertices = sim.reset(np.random.default_rng(seed))
    shaping = Shaping(planner, ShapingSettings(shape, pushes, stop_at), height, seed, target_shape(shape, vertices))
    plan_s, pushed = [], []
    start_xy = vertices[:, :2].copy()
    shaping.observe(vertices)
    while True:
        began = time.perf_counter()
        plan = shaping.plan(vertices)
        if plan is None:
            break
        plan_s.append(time.perf_counter() - began)
        pushed.append([*plan.start, *plan.end])
        direction = np.array([np.cos(plan.angle), np.sin(plan.angle), 0.0])
        start, end = np.array([*plan.start, height]), np.array([*plan.end, height])
        sim.run_push(Push(-1, start + config.approach * direction, direction, plan.length, start, end), lambda _: None)
        vertices = rope_vertices(sim.model, sim.data, c.rope.name)
        shaping.observe(vertices)
    return {"seed": seed, "shape": shape, "chamfer_m": shaping.distances, "plan_s": plan_s,
            "target_xy": shaping.target[:, :2].tolist(), "start_xy": start_xy.tolist(),
            "final_xy": vertices[:, :2].tolist(), "pushes_xy": pushed}
