"""A scripted expert for `insert`: what a person with a teleop device does to put a peg in a hole
they can only roughly locate.

It sees the peg (its tip from the measured arm, as a person sees the real peg) and the
controller's desired pose (where the reference is, the analogue of how hard the stick is pushed),
and knows the hole's nominal position and orientation, not its true offset. Phases:
1. align: move the tip above the nominal hole, turned to the hole's orientation;
2. descend: go down until the peg is stopped (on the fixture's top) or drops in;
3. search: on the top, press down lightly (the desired tip held `press` below the measured one,
   a few newtons through the joint impedance, harder where it moves slowly) and wander around the
   nominal hole as a person does (robot_dyn.search.paths.wandering_path: toward one believed spot
   after another, along curves, at a varying pace), until the peg dips into the chamfer. A search
   plan (robot_dyn.search.execution) replaces the wandering with a strategy's path, and its force
   model's wrench (superposed on the impedance by the controller) replaces the pressing. Where the peg
   catches (on the chamfer's rim, or wedged on the top), the reference may lead it sideways by `max_lead` at
   most, as a person eases off the stick when the peg resists: the sideways push stays near the
   stiffness times that lead instead of growing while the path moves on. Where the peg dips below the
   top (`dip`: partly over the hole, held on the rim), the path waits for up to `dip_hold_s` while the
   reference follows the peg sideways and the press goes on, so the chamfer can centre it, as a person
   stops where they feel the peg sink;
4. insert: comply sideways (the reference follows the peg, so the chamfer centres it) and press on
   down to the success depth, then let go. Held at the chamfer's foot by friction (a fraction of a
   millimetre off the axis), it wiggles: small circles of growing radius until the peg drops.
Human-like variety, seeded: the pace, the wandering, unsteadiness of the stick
(robot_dyn.teleop.scripted's noise), and short pauses between phases.

Output: the unitless base-frame command (6,) a device would give (robot_dyn.teleop), or None when
done, and `wrench`: the force and torque (6,) N, Nm, base frame, to superpose with it (None: none).
Units: m, rad, s; poses in the base frame (the world of the task scenes). The expert thinks in the
fixture's frame (InsertConfig.to_fixture: "down" is into the top face, along the hole's axis), so it
works the same on a leaning fixture; a plan's path and force are in that frame too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from robot_dyn.robots.tools import pointing_down
from robot_dyn.tasks.expert import Phased
from robot_dyn.search.paths import wandering_path
from robot_dyn.tasks.insert import InsertConfig
from robot_dyn.teleop.scripted import Hand

PHASES = ("align", "descend", "search", "insert", "done")


@dataclass(frozen=True)
class InsertExpertSettings:
    linear_scale: float = 0.15  # m/s of a unitless 1.0 (the controller's twist_linear_scale)
    angular_scale: float = 0.5  # rad/s of a unitless 1.0
    approach_height: float = 0.015  # m of the tip above the fixture's top before descending
    descend_speed: float = 0.03  # m/s
    press: float = 0.003  # m the desired tip is held below the measured one while searching (a few N)
    insert_press: float = 0.001  # m, the same while pressing the peg home: lighter, a hard push wedges it
    entered: float = 0.0007  # m below the top: the peg has found the chamfer
    search_speed: float = 0.012  # m/s, the wandering's mean pace
    belief: float = 0.5  # the spread of where the person believes the hole is, as a share of the offset radius
    max_lead: float = 0.004  # m the desired tip may lead the peg sideways while searching: 15-19 N at the Panda's
    # 3.8-4.8 N/mm there (sliding on the top takes about 2 mm; a caught peg is no longer dragged harder)
    dip: float = 0.00005  # m below the top: the peg is partly over the hole's mouth. Sliding on the top it sank
    # 0.017 mm at most (8 bench searches, every strategy); a peg caught on the chamfer's edge sat 0.1 mm down while
    # the path dragged it off the hole, pressed to 41 N, until 0.2 mm was lowered to this
    dip_hold_s: float = 1.0  # s the search path waits where the peg dipped before it moves on
    gain: float = 3.0  # 1/s, position error -> speed
    comply_gain: float = 10.0  # 1/s: how fast the reference follows the peg sideways while inserting
    wiggle: float = 0.05  # rad/s, amplitude of the twist about the vertical while inserting
    noise: float = 0.03  # unitless std of the stick's unsteadiness
    noise_time_constant: float = 0.3  # s
    give_up_s: float = 120.0  # s after the first command
    search_budget_s: float = math.inf  # s of searching after which the search gives up (done, a failure)
    stop_at_found: bool = False  # done once the peg drops into the hole (a search benchmark's end), not pressed home


class InsertExpert(Phased):
    def __init__(self, config: InsertConfig, settings: InsertExpertSettings | None = None, seed: int = 0,
                 hole_yaw: float = 0.0, plan=None):
        """plan: a search strategy's (robot_dyn.search.execution.SearchPlan: `path`, offsets from the nominal
        hole over time, and `force(velocity)` -> the force (3,) N to apply, or None to press by position; both
        in the fixture frame); default: a person's wandering."""
        self.config, self.settings = config, settings or InsertExpertSettings()
        super().__init__("align", self.settings.give_up_s)
        self.rng = np.random.default_rng(seed)
        self.hole_yaw = hole_yaw  # rad about the hole's axis of its square (its sides along the fixture's x, y when 0)
        self.hand = Hand(self.rng, self.settings.noise, self.settings.noise_time_constant, pace=self.rng.uniform(0.7, 1.0))
        self._direction = self.rng.choice([-1.0, 1.0])
        self._pause = {p: self.rng.uniform(0.0, 0.4) for p in PHASES}
        self.plan = plan
        self._path = plan.path if plan is not None else None  # drawn when the search starts (a person's)
        self._path_t = 0.0  # s along the path, advanced at the hand's pace
        self._dipped_at = None  # s, when the peg last dipped below the top while searching
        self.wrench = None  # (6,) N, Nm to superpose on the next command, base frame; None: none

    def approach_configuration(self, robot, model) -> np.ndarray:
        """Joint positions (rad) with the tip `approach_height` above the nominal hole, aligned with it:
        where the align phase ends (a search can start there and skip the approach). robot: the
        RobotDescription with the peg; model: its RigidBody."""
        from robot_dyn.control.ik import solve_pose

        c, s = self.config, self.settings
        rotation = self.aligned_rotation(model.ee_pose(robot.home)[1])
        tip = c.from_fixture([0.0, 0.0, s.approach_height])
        flange = tip - rotation @ np.array([0.0, 0.0, c.peg.length])
        return solve_pose(model, flange, rotation, robot.home)

    def _enter(self, phase: str, t: float) -> None:
        super()._enter(phase, t)
        self._deepest, self._progress_at, self._stuck_at = -np.inf, t, None

    def aligned_rotation(self, rotation: np.ndarray) -> np.ndarray:
        """The flange orientation (base <- flange) with the tool along the hole's axis, into the fixture,
        and the peg's sides along the hole's, the nearest (in yaw about that axis) to `rotation`."""
        tilt = self.config.fixture_rotation
        in_fixture = tilt.T @ rotation
        yaw = np.arctan2(in_fixture[1, 0], in_fixture[0, 0])
        # the peg is square: any of four yaws fits; take the one closest to the current
        target = self.hole_yaw + np.round((yaw - self.hole_yaw) / (np.pi / 2)) * (np.pi / 2)
        return tilt @ pointing_down(target)

    def command(self, t: float, tip: np.ndarray, flange_rotation: np.ndarray, desired_tip: np.ndarray,
                objects: dict | None = None) -> np.ndarray | None:
        """The stick at time t: tip (3,) the measured peg tip, flange_rotation (3, 3) the measured
        flange orientation, desired_tip (3,) where the desired pose puts the tip, all in the base frame;
        objects: the scene's (none for insert)."""
        s, c = self.settings, self.config
        if self.done:
            return None
        if self.gives_up(t):
            return None
        h = self.hand.step(t)
        if t - self.phase_since < self._pause[self.phase]:
            return np.zeros(6)  # a person's pause between phases
        # in the fixture frame from here on: the nominal hole at the origin, the top face at z = 0
        tip, desired_tip = c.to_fixture(tip), c.to_fixture(desired_tip)
        velocity, angular = np.zeros(3), np.zeros(3)
        if self.phase == "align":
            error = np.array([0.0, 0.0, s.approach_height]) - tip
            rotation_error = pin.log3(self.aligned_rotation(flange_rotation) @ flange_rotation.T)  # base axes
            velocity, angular = s.gain * error, s.gain * c.axes_to_fixture(rotation_error)
            if np.linalg.norm(error) < 0.002 and np.linalg.norm(rotation_error) < 0.01:
                self._enter("descend", t)
        elif self.phase == "descend":
            near = float(np.clip(tip[2] / 0.005, 0.2, 1.0))  # slow down for the last 5 mm
            velocity = np.array([*(-s.gain * tip[:2]), -s.descend_speed * near])
            if tip[2] < -s.entered:
                self._enter("insert", t)
            elif desired_tip[2] < tip[2] - s.press:  # the reference goes on, the peg does not: it rests on the top
                self._enter("search", t)
        elif self.phase == "search":
            if t - self.phase_since > s.search_budget_s:
                self._enter("done", t)
                return None
            if self._path is None:
                spread = s.belief * c.offset_radius
                self._path = wandering_path(s.give_up_s, s.search_speed, spread, self.rng)
            dipped = tip[2] < -s.dip
            if not dipped:
                self._dipped_at = None
            elif self._dipped_at is None:
                self._dipped_at = t
            if dipped and t - self._dipped_at < s.dip_hold_s:  # wait where it sank: comply sideways, press on
                path_velocity = np.zeros(2)
                lateral = s.comply_gain * (tip[:2] - desired_tip[:2])
            else:
                self._path_t += h * self.hand.pace
                offset, path_velocity = self._path.sample(self._path_t)
                path_velocity = path_velocity * self.hand.pace
                lateral = self._eased(s.gain * (offset - tip[:2]) + path_velocity, tip, desired_tip)
            press = self._press(path_velocity)
            if self.plan is not None and self.plan.force is not None:  # the plan's force as a wrench, the
                # desired tip level with the peg: the push comes from the wrench alone
                force = c.axes_from_fixture(self.plan.force(path_velocity))
                self.wrench, press = np.concatenate([force, np.zeros(3)]), 0.0
            velocity = np.array([*lateral, self._pressing(tip, desired_tip, press)])
            if tip[2] < -s.entered:
                self._enter("insert", t)
                if s.stop_at_found:
                    self._enter("done", t)
                    return None
        elif self.phase == "insert":
            # comply sideways (the reference follows the peg, so the chamfer can centre it) and press on down
            depth = -tip[2]
            if depth > self._deepest + 0.0002:
                self._deepest, self._progress_at, self._stuck_at = depth, t, None
            if self._stuck_at is None and t - self._progress_at > 0.5:
                self._stuck_at, self._wiggle_from = tip[:2].copy(), t  # held by friction: wiggle
            if self._stuck_at is None:
                lateral = s.comply_gain * (tip[:2] - desired_tip[:2])
            else:  # small circles of growing radius around where it stuck: one passes over the hole's axis
                age = t - self._wiggle_from
                radius = min(0.0002 + 0.0005 * age, c.chamfer)
                phase = 2 * np.pi * age * self._direction
                target = self._stuck_at + radius * np.array([np.cos(phase), np.sin(phase)])
                lateral = s.gain * 3 * (target - desired_tip[:2])
            self.wrench = None  # a search's force lapses (the controller ramps it out): pressed home by position
            velocity = np.array([*lateral, self._pressing(tip, desired_tip, s.insert_press)])
            # keep the peg upright (contact torques tilt it through the wrist's impedance, and a tilted
            # peg jams at this clearance), with a person's small wiggle about the vertical
            wiggle = s.wiggle * np.sin(2 * np.pi * 2.0 * (t - self.phase_since))
            upright = pin.log3(self.aligned_rotation(flange_rotation) @ flange_rotation.T)  # base axes
            angular = s.gain * c.axes_to_fixture(upright) + np.array([0, 0, wiggle])
            if -tip[2] >= c.success_depth + 0.002:
                self._enter("done", t)
                return np.zeros(6)
        velocity, angular = c.axes_from_fixture(velocity), c.axes_from_fixture(angular)
        return self.hand.stick(np.concatenate([velocity / s.linear_scale, angular / s.angular_scale]))

    def _eased(self, lateral: np.ndarray, tip: np.ndarray, desired_tip: np.ndarray) -> np.ndarray:
        """The sideways command (2,) m/s with the reference's lead on the peg held to `max_lead`: where the
        peg is caught, no speed that increases the lead, and a pull back to the bound."""
        lead = desired_tip[:2] - tip[:2]
        distance = float(np.linalg.norm(lead))
        if distance <= self.settings.max_lead:
            return lateral
        direction = lead / distance
        return (lateral - max(0.0, float(lateral @ direction)) * direction
                - self.settings.gain * (distance - self.settings.max_lead) * direction)

    def _press(self, velocity: np.ndarray) -> float:
        """How far (m) the desired tip is held below the measured one while searching at `velocity` (m/s):
        a person presses harder where they move slowly (1.5x at rest, 0.7x at their mean pace and faster)."""
        pace = float(np.linalg.norm(velocity)) / self.settings.search_speed
        return self.settings.press * float(np.clip(1.5 - 0.8 * pace, 0.7, 1.5))

    def _pressing(self, tip: np.ndarray, desired_tip: np.ndarray, press: float) -> float:
        """Vertical speed (m/s) that holds the desired tip `press` below the peg's: a light, steady push
        through the joint impedance (1 mm: a few newtons), however far the peg is held up."""
        return self.settings.gain * ((tip[2] - press) - desired_tip[2])
