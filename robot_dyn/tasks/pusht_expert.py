"""A scripted expert for `pusht`: what a person with a teleop device does to push the T onto its target.

It sees the block's pose (x, y, yaw), as a person sees the block, the pusher's tip (from the measured
arm) and the desired tip (where the reference is). It repeats:
1. choose where to push: of points along the T's outline, the one where a push along the inward
   normal moves the block most nearly as wanted (towards the target's position and yaw). The
   prediction is quasi-static pushing with an ellipsoidal limit surface: a force f at r from the
   block's centre of mass moves it with twist ~ (f, (r x f) / rho^2), rho the block's radius of
   gyration (Lynch and Mason's model; contact taken as sticking);
2. get there: straight along the table if the way is clear of the block, else up, over it and down;
3. push along the normal, slower as the block nears the target, until the push stops helping (the
   block turned so that this contact no longer moves it as wanted), the planned stroke is done, or
   the tip lost the block; then choose again.
It is done when the coverage passes `done_coverage` (above the task's success threshold).
Human-like variety, seeded: the pace, a choice among nearly-as-good contacts, stroke lengths,
unsteadiness of the stick (the same noise as the scripted operator's) and short pauses.

Output: the unitless base-frame command (6,) a device would give (robot_dyn.teleop), or None when
done. Units: m, rad, s; poses in the base frame (the world of the task scenes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin
from shapely.geometry import LineString, Point, Polygon

from robot_dyn.robots.tools import pointing_down
from robot_dyn.tasks.expert import Phased
from robot_dyn.tasks.pusht import PushTConfig, coverage, placed
from robot_dyn.teleop.scripted import Hand

PHASES = ("reach", "travel", "over", "push", "done")


@dataclass(frozen=True)
class PushTExpertSettings:
    linear_scale: float = 0.15  # m/s of a unitless 1.0 (the controller's twist_linear_scale)
    angular_scale: float = 0.5  # rad/s of a unitless 1.0
    push_height: float = 0.012  # m of the tip above the table while pushing (the block is 0.03 high)
    hover_clearance: float = 0.025  # m of the tip above the block's top when passing over it
    standoff: float = 0.012  # m between the pusher's side and the block where a push starts
    travel_speed: float = 0.14  # m/s when moving to a contact
    push_speed: float = 0.06  # m/s when pushing far from the target ...
    fine_speed: float = 0.006  # m/s ... and near it
    max_stroke: float = 0.08  # m pushed before choosing again
    min_alignment: float = 0.5  # cosine of the predicted to the wanted twist below which a push stops
    done_coverage: float = 0.97
    gain: float = 6.0  # 1/s, position error -> speed
    choice_tolerance: float = 0.04  # contacts whose alignment is within this of the best are all fine
    contact_spacing: float = 0.004  # m between candidate contacts along the outline
    noise: float = 0.03  # unitless std of the stick's unsteadiness
    noise_time_constant: float = 0.3  # s
    give_up_s: float = 120.0  # s after the first command


class PushTExpert(Phased):
    def __init__(self, config: PushTConfig, pusher_radius: float, settings: PushTExpertSettings | None = None,
                 seed: int = 0):
        self.config, self.settings = config, settings or PushTExpertSettings()
        super().__init__("reach", self.settings.give_up_s)
        self.radius = pusher_radius  # m, the rod's
        self.rng = np.random.default_rng(seed)
        self.hand = Hand(self.rng, self.settings.noise, self.settings.noise_time_constant, pace=self.rng.uniform(0.75, 1.0))
        self._plan = None  # (start point (2,), push direction (2,), contact in the T frame (2,), stroke m)
        self._pushed_from = None
        self._pause_until = -np.inf
        self.centroid, self.gyration = _mass_properties(config)
        self.candidates = _outline_contacts(config, self.settings.contact_spacing, pusher_radius)
        self.table = config.table.height

    # --- what to do ---------------------------------------------------------------------------
    def wanted_twist(self, pose: np.ndarray) -> np.ndarray:
        """The block's wanted planar twist (vx, vy m/s, wz rad/s) towards the target, world frame."""
        target = np.asarray(self.config.target, float)
        error = placed(self.centroid[None], target)[0] - placed(self.centroid[None], pose)[0]
        turn = _wrap(target[2] - pose[2])
        return np.array([*error, turn])

    def alignment(self, pose: np.ndarray, contact: np.ndarray, direction: np.ndarray) -> float:
        """Cosine of the twist a push along `direction` (world, unit) at `contact` (T frame) gives the block
        to the wanted one, in units where rho m of travel weighs as 1 rad of turn."""
        wanted = self.wanted_twist(pose)
        wanted = wanted * np.array([1.0, 1.0, self.gyration])
        r = _rotate(contact - self.centroid, pose[2])
        predicted = np.array([*direction, (r[0] * direction[1] - r[1] * direction[0]) / self.gyration])
        norm = np.linalg.norm(wanted) * np.linalg.norm(predicted)
        return float(wanted @ predicted / norm) if norm > 0 else 0.0

    def choose(self, pose: np.ndarray, tip: np.ndarray) -> tuple:
        """(start point (2,) world, push direction (2,) world, contact (2,) T frame, stroke m) of the next push."""
        s = self.settings
        scores = np.array([self.alignment(pose, p, _rotate(-n, pose[2])) for p, n in self.candidates])
        good = np.flatnonzero(scores >= scores.max() - s.choice_tolerance)
        # of the good ones, a person takes a near one more often than a far one
        starts = [self._start_point(pose, *self.candidates[k]) for k in good]
        distance = np.array([np.linalg.norm(start - tip[:2]) for start in starts])
        weights = np.exp(-distance / 0.05)
        k = self.rng.choice(len(good), p=weights / weights.sum())
        contact, normal = self.candidates[good[k]]
        error = self.wanted_twist(pose)
        stroke = min(s.max_stroke, np.linalg.norm(error[:2]) + self.gyration * abs(error[2])) * self.rng.uniform(0.6, 1.0)
        return starts[k], _rotate(-normal, pose[2]), contact, max(stroke, 0.002)

    def _start_point(self, pose: np.ndarray, contact: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Where the pusher's axis starts a push at `contact` (T frame, outward `normal`), world frame."""
        return placed((contact + normal * (self.radius + self.settings.standoff))[None], pose)[0]

    def _path_clear(self, pose: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the pusher can go from a to b (world, m) along the table without touching the block."""
        block = Polygon(placed(self.config.outline(), pose))
        return not LineString([a, b]).buffer(self.radius + 0.002).intersects(block)

    # --- the stick ---------------------------------------------------------------------------
    def command(self, t: float, tip: np.ndarray, flange_rotation: np.ndarray, desired_tip: np.ndarray,
                objects: dict | None = None) -> np.ndarray | None:
        """The stick at time t: tip (3,) the measured pusher tip, flange_rotation (3, 3) the measured flange
        orientation, desired_tip (3,) where the desired pose puts the tip, objects {'block_pose': (x, y, yaw)}."""
        s, c = self.settings, self.config
        if self.done:
            return None
        if objects is None or "block_pose" not in objects:
            raise ValueError("pusht expert: needs the block's pose (objects['block_pose'])")
        pose = np.asarray(objects["block_pose"], float)
        if self.gives_up(t):
            return None
        self.hand.step(t)
        if coverage(c, pose) >= s.done_coverage:
            self._enter("done", t)
            return np.zeros(6)
        if t < self._pause_until:
            return np.zeros(6)
        push_z = self.table + s.push_height
        hover_z = self.table + c.height + s.hover_clearance
        velocity = np.zeros(3)
        if self.phase == "reach":  # the first push: the way there is over the block
            self._replan(pose, tip, t)
        elif self.phase == "travel":  # along the table, the way being clear
            start = self._plan[0]
            velocity = self._towards(np.array([*start, push_z]), tip, s.travel_speed)
            if np.linalg.norm(start - tip[:2]) < 0.002:
                self._enter("push", t)
                self._pushed_from = tip[:2].copy()
        elif self.phase == "over":  # up, across above the block, and down at the start
            start = self._plan[0]
            above = tip[2] > self.table + c.height + 0.006
            there = np.linalg.norm(start - tip[:2]) < 0.004
            target = np.array([*(start if above or there else tip[:2]), push_z if there else hover_z])
            velocity = self._towards(target, tip, s.travel_speed)
            if there and abs(tip[2] - push_z) < 0.002:
                self._enter("push", t)
                self._pushed_from = tip[:2].copy()
        elif self.phase == "push":
            _, _, contact, stroke = self._plan
            normal = next(n for p, n in self.candidates if np.array_equal(p, contact))
            direction = _rotate(-normal, pose[2])  # the edge's normal turns with the block
            error = self.wanted_twist(pose)
            remaining = np.linalg.norm(error[:2]) + self.gyration * abs(error[2])
            speed = float(np.clip(2.0 * remaining, s.fine_speed, s.push_speed))
            # the contact point as the block is now: the tip keeps on the line through it along the push
            point = placed((contact + normal * self.radius)[None], pose)[0]
            across = (point - tip[:2]) - direction * ((point - tip[:2]) @ direction)
            velocity = np.array([*(direction * speed + s.gain * across), s.gain * (push_z - tip[2])])
            pushed = np.linalg.norm(tip[:2] - self._pushed_from) - s.standoff  # from the touch
            lost = np.linalg.norm(point - tip[:2]) > s.standoff + 0.02
            if pushed >= stroke or self.alignment(pose, contact, direction) < s.min_alignment or lost:
                self._pause_until = t + self.rng.uniform(0.0, 0.3)
                self._replan(pose, tip, t)
                velocity = np.zeros(3)
        # keep the rod straight down
        angular = s.gain * pin.log3(pointing_down(np.arctan2(flange_rotation[1, 0], flange_rotation[0, 0])) @ flange_rotation.T)
        return self.hand.stick(np.concatenate([velocity / s.linear_scale, angular / s.angular_scale]))

    def _replan(self, pose: np.ndarray, tip: np.ndarray, t: float) -> None:
        backed_off = tip[:2] - (self._plan[1] * 0.004 if self.phase == "push" else 0.0)  # off the block first
        self._plan = self.choose(pose, tip)
        clear = tip[2] < self.table + self.config.height and self._path_clear(pose, backed_off, self._plan[0])
        self._enter("travel" if clear else "over", t)

    def _towards(self, target: np.ndarray, tip: np.ndarray, speed: float) -> np.ndarray:
        """Velocity (3,) towards target at most `speed`, slowing in the last centimetres."""
        error = target - tip
        velocity = self.settings.gain * error
        norm = np.linalg.norm(velocity)
        return velocity * (speed / norm) if norm > speed else velocity


def _mass_properties(config: PushTConfig) -> tuple[np.ndarray, float]:
    """(centre of mass (2,) in the T frame, radius of gyration about it m) of the uniform T."""
    boxes = config.boxes()
    areas = np.array([4 * h[0] * h[1] for _, h in boxes])
    centroid = sum(a * c for a, (c, _) in zip(areas, boxes)) / areas.sum()
    inertia = sum(a * ((h[0] ** 2 + h[1] ** 2) * 4 / 12 + np.sum((c - centroid) ** 2)) for a, (c, h) in zip(areas, boxes))
    return centroid, float(np.sqrt(inertia / areas.sum()))


def _outline_contacts(config: PushTConfig, spacing: float, radius: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(point (2,), outward unit normal (2,)) every `spacing` m along the T's edges, T frame, where a
    pusher of `radius` m touching the point along the normal fits: 3 mm from a convex corner (a push
    there slips off), clear of the other edge at a concave one."""
    outline = config.outline()
    block = Polygon(outline)
    contacts = []
    for a, b in zip(outline, np.roll(outline, -1, axis=0)):
        edge = b - a
        length = np.linalg.norm(edge)
        normal = np.array([edge[1], -edge[0]]) / length  # counter-clockwise outline: outward is to the right
        for u in np.arange(spacing / 2, length, spacing):
            point = a + edge * (u / length)
            pusher = Point(point + normal * (radius + 0.001)).buffer(radius)
            if min(u, length - u) >= 0.003 and not pusher.intersects(block):
                contacts.append((point, normal))
    return contacts


def _rotate(v: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)
