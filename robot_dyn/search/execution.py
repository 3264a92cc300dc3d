"""Searching for the hole with the arm: a strategy's plan run by the insert task's operator through the
controller, in one process (robot_dyn.tasks.in_process: the scene in MuJoCo, the robot layer, the
outer loop with its safety filter), and what it measured.

A SearchPlan is a path of offsets from the nominal hole over time (robot_dyn.search.paths) and a
force model: the force (3,) N the robot applies at a search velocity, sent to the controller as a
wrench feedforward (robot_dyn.control.wrench) superposed on the impedance. Both are in the fixture's
frame (robot_dyn.tasks.insert.InsertConfig.to_fixture: x, y along its top face, z out of it), so a plan
runs the same on a leaning fixture; what is measured is reported in that frame too. The insert operator
(robot_dyn.tasks.insert_expert) aligns the peg over the nominal hole, descends until it rests on the
fixture, follows the plan until the peg drops into the chamfer (found: the measured tip `entered`
below the top), then presses it home. Strategies:
- ergodic, sampling: paths from the learned exploration distribution, forces from the learned
  velocity -> force regression (robot_dyn.search.model);
- spiral: the industrial baseline, about 0.15 Hz and 1.3 mm pitch with a constant 7 N down;
- random: a random walk inside the uncertainty radius at the learned strategies' speed, 7 N down.
Seeded: a seed fixes the hole's offset (the task's episode) and the strategy's randomness.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from robot_dyn.search.demonstrations import SearchDemo, search_segment
from robot_dyn.search.ergodic import ergodic_path
from robot_dyn.search.paths import SearchPath, random_walk_path, sampling_path, spiral_path
from robot_dyn.tasks.in_process import EpisodeObserver

STRATEGIES = ("ergodic", "sampling", "spiral", "random")
PERSON = "person"  # the scripted person's wandering search (a demonstration), not a strategy
LEARNED = ("ergodic", "sampling")
STRATEGY_SEED_OFFSET = 7919  # a strategy's randomness is seeded apart from the hole's offset
FORCE_WINDOW_S = 0.02  # s, the moving average of the reported contact forces


@dataclass(frozen=True)
class SearchSettings:
    budget_s: float = 60.0  # s of searching before the search gives up
    speed: float = 0.012  # m/s along the learned and random paths
    radius: float = 0.010  # m, the uncertainty radius the random walk stays in
    spiral_frequency: float = 0.15  # Hz, turns per second
    spiral_pitch: float = 0.0013  # m per turn
    baseline_force: float = 7.0  # N down, the spiral's and the random walk's
    ergodic_coefficients: int = 10  # cosine modes per axis
    dt: float = 0.02  # s, the paths' time step

    def validated(self) -> "SearchSettings":
        for name in ("budget_s", "speed", "radius", "spiral_frequency", "spiral_pitch", "baseline_force", "dt"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"search.{name}: must be a positive number, got {value!r}")
        if not (isinstance(self.ergodic_coefficients, int) and self.ergodic_coefficients >= 2):
            raise ValueError(f"search.ergodic_coefficients: must be an integer >= 2, got {self.ergodic_coefficients!r}")
        return self


@dataclass
class SearchPlan:
    """path: offsets from the nominal hole over time (fixture frame); force: velocity (2,) m/s -> force (3,)
    N the robot applies (fixture axes), or None to press by position as a person does."""

    strategy: str
    path: SearchPath
    force: object = None


class ConstantForce:
    """A force (3,) N (fixture axes) whatever the velocity: the baselines' steady push (picklable, unlike a
    lambda)."""

    def __init__(self, force):
        self.value = np.asarray(force, float)

    def __call__(self, velocity) -> np.ndarray:
        return self.value


def plan_search(strategy: str, settings: SearchSettings, rng: np.random.Generator, model=None) -> SearchPlan:
    """The plan of `strategy` for one search (its path lasts the budget); the learned strategies need the
    model (robot_dyn.search.model.SearchModel)."""
    s = settings.validated()
    if strategy not in STRATEGIES:
        raise ValueError(f"search strategy: expected one of {list(STRATEGIES)}, got '{strategy}'")
    down = ConstantForce([0.0, 0.0, -s.baseline_force])  # into the fixture's face
    if strategy == "spiral":
        return SearchPlan(strategy, spiral_path(s.budget_s, s.spiral_frequency, s.spiral_pitch, s.dt,
                                                phase=rng.uniform(0, 2 * np.pi), direction=rng.choice([-1.0, 1.0])), down)
    if strategy == "random":
        return SearchPlan(strategy, random_walk_path(s.budget_s, s.speed, s.radius, rng, s.dt), down)
    if model is None:
        raise ValueError(f"search strategy '{strategy}' learns from demonstrations: give a search model (robot-dyn search learn)")
    if strategy == "sampling":
        path = sampling_path(model, s.budget_s, s.speed, rng, s.dt)
    else:
        lo, hi = model.box()
        path = ergodic_path(model.density, lo, hi, s.budget_s, s.speed, s.dt, s.ergodic_coefficients)
    return SearchPlan(strategy, path, model.predict_force)


def moving_average(t: np.ndarray, x: np.ndarray, window_s: float) -> np.ndarray:
    """x (T, n) sampled at times t (T,) s, averaged over a centred window of window_s s."""
    width = max(1, int(round(window_s / np.median(np.diff(t))))) if len(t) > 1 else 1
    return np.column_stack([np.convolve(x[:, j], np.ones(width) / width, mode="same") for j in range(x.shape[1])])


class SearchObserver(EpisodeObserver):
    """An in-process episode's observer (run_expert): the time (s) and the measured peg tip (m, base frame)
    after every outer tick, beside run_expert's contact force of the same ticks."""

    def start(self, arm, loop, episode) -> None:
        self.arm, self.loop, self.episode = arm, loop, episode
        self.t, self.tip = [], []

    def after_tick(self, t) -> None:
        p, R = self.loop.model.ee_pose(self.arm.state()[1])
        self.t.append(self.arm.time)
        self.tip.append(self.episode.config.peg.tip(p, R))


@dataclass
class SearchResult:
    strategy: str
    seed: int
    hole_offset_m: float  # how far the true hole was from the nominal one
    found: bool  # the peg dropped into the hole within the budget
    inserted: bool  # ... and was pressed home (the task's success; False when not pressed home)
    time_s: float  # from the search's start to the drop (nan when not found)
    path_length_m: float  # of the measured tip while searching
    # contact force while searching, normal and lateral to the fixture's face, N, averaged over FORCE_WINDOW_S (what a
    # wrist force sensor or a robot's external-force estimate reports); the per-tick peak apart (the sim's
    # stiff contact gives millisecond spikes at impacts)
    peak_force_n: float  # the norm's peak
    peak_normal_n: float
    mean_normal_n: float
    peak_lateral_n: float
    mean_lateral_n: float
    peak_normal_tick_n: float
    wall_s: float
    refused: str = ""
    demo: SearchDemo | None = field(default=None, repr=False)  # the search as a demonstration (person's only)


def run_search(task, seed: int, plan: SearchPlan | None, settings: SearchSettings | None = None, robot: str = "panda",
               keep_demo: bool = False, press_home: bool = True, operator_seed: int | None = None) -> SearchResult:
    """Episode `seed` of the insert `task` searched with `plan` (None: the scripted person's wandering, a
    demonstration), the arm starting at rest above the nominal hole. keep_demo: return the search as a
    SearchDemo too. press_home: after the drop, press the peg home (False: the episode ends at the drop).
    operator_seed: the executing hand's (its pace and unsteadiness; default `seed`)."""
    from robot_dyn.dynamics.rigid_body import RigidBody
    from robot_dyn.robots import load_robot
    from robot_dyn.robots.tools import with_tool
    from robot_dyn.tasks.in_process import run_expert
    from robot_dyn.tasks.insert_expert import InsertExpert, InsertExpertSettings

    s = (settings or SearchSettings()).validated()
    c = task.config
    expert_settings = InsertExpertSettings(search_budget_s=s.budget_s, give_up_s=s.budget_s + 30.0,
                                           stop_at_found=not press_home)
    expert = InsertExpert(c, expert_settings, seed=seed if operator_seed is None else operator_seed, plan=plan)
    arm_robot = with_tool(load_robot(robot), task.tool)
    observer = SearchObserver()
    episode = run_expert(task, seed, robot, time_limit=s.budget_s + 30.0, observer=observer, expert=expert,
                         refusal_ends_episode=True, start_q=expert.approach_configuration(arm_robot, RigidBody(arm_robot)))
    # in the fixture frame: z is the face's normal, x and y along it
    t, tip, contact = np.array(observer.t), c.to_fixture(observer.tip), c.axes_to_fixture(episode.contact_force_n)
    began = expert.entered_at.get("search")
    dropped = expert.entered_at.get("insert")
    if began is None:  # the peg dropped in as it came down (no search at all), or never got there
        found, window = dropped is not None, np.zeros(len(t), bool)
        time_s = 0.0 if found else math.nan
    else:
        found = dropped is not None and dropped - began <= s.budget_s
        window = (t >= began) & (t <= (dropped if dropped is not None else t[-1]))
        time_s = dropped - began if found else math.nan
    smooth = moving_average(t, contact, FORCE_WINDOW_S)
    normal = smooth[window, 2] if window.any() else np.zeros(1)  # the fixture pushes the peg up
    lateral = np.linalg.norm(smooth[window, :2], axis=1) if window.any() else np.zeros(1)
    normal_tick = float(contact[window, 2].max()) if window.any() else 0.0
    peak = float(np.linalg.norm(smooth[window], axis=1).max()) if window.any() else 0.0
    length = float(np.linalg.norm(np.diff(tip[window, :2], axis=0), axis=1).sum()) if window.sum() > 1 else 0.0
    demo = None
    if keep_demo and began is not None:
        demo = search_segment(t, tip, -smooth, entered=expert_settings.entered, source=f"{task.name} seed {seed}")
    hole = task.episode(seed).hole
    return SearchResult(plan.strategy if plan is not None else PERSON, seed,
                        float(np.linalg.norm(hole - np.asarray(c.nominal_hole))), bool(found),
                        bool(episode.success), float(time_s), length, peak, float(normal.max()), float(normal.mean()),
                        float(lateral.max()), float(lateral.mean()), normal_tick, episode.wall_s, episode.refused, demo)


def demonstrate_searches(task, seeds, robot: str = "panda", workers: int = 1) -> list[SearchDemo]:
    """The scripted person's searches on these seeds of the insert task (in process, in `workers`
    processes), as demonstrations: each from the touch to the drop (or the search budget's end)."""
    jobs = [SearchJob(task.config, seed, PERSON, SearchSettings(), None, robot) for seed in seeds]
    return [r.demo for r in run_searches(jobs, workers) if r.demo is not None]


def task_variant(task, offset_radius: float | None = None, clearance: float | None = None, chamfer: float | None = None,
                 tilt: float | None = None):
    """The insert task with another uncertainty radius, clearance or chamfer (m) or tilt (rad); None keeps the task's."""
    from robot_dyn.tasks.insert import InsertTask

    changes = {"offset_radius": offset_radius, "clearance": clearance, "chamfer": chamfer, "tilt": tilt}
    return InsertTask(replace(task.config, **{k: v for k, v in changes.items() if v is not None}))


@dataclass(frozen=True)
class SearchJob:
    """One search to run in a worker: the task's config, the seed, the strategy (or PERSON: a
    demonstration), its settings and the model (None for the baselines)."""

    config: object
    seed: int
    strategy: str
    settings: SearchSettings
    model: object = None
    robot: str = "panda"


def _run_job(job: SearchJob) -> SearchResult:
    from robot_dyn.tasks.insert import InsertTask

    if job.strategy == PERSON:
        return run_search(InsertTask(job.config), job.seed, None, job.settings, job.robot, keep_demo=True, press_home=False)
    # the plan and the hand seeded as the search node seeds them (its `seed` parameter), so a hole searched
    # through the graph (robot_dyn.jobs.search.graph_search) is searched the same way
    seed = job.seed + STRATEGY_SEED_OFFSET
    plan = plan_search(job.strategy, job.settings, np.random.default_rng(seed), job.model)
    return run_search(InsertTask(job.config), job.seed, plan, job.settings, job.robot, press_home=False, operator_seed=seed)


def run_searches(jobs: list[SearchJob], workers: int = 2, progress=None) -> list[SearchResult]:
    """Run the jobs in `workers` processes (robot_dyn.parallel.spawn_map), ending each at the drop; results in
    the jobs' order. progress(done, total) after each finished search."""
    from robot_dyn.parallel import spawn_map

    return spawn_map(_run_job, jobs, workers, chunk=4, progress=progress)


def summarise(results: list[SearchResult], budget_s: float) -> dict:
    """Success rate, time to the drop (mean, median, p95 over the found), path length, and contact forces
    (peak over all, mean of means) of a set of searches."""
    times = np.array([r.time_s for r in results if r.found])
    count = len(results)
    return {"searches": count, "success_rate": sum(r.found for r in results) / max(count, 1),
            "time_s_mean": float(times.mean()) if times.size else math.nan,
            "time_s_median": float(np.median(times)) if times.size else math.nan,
            "time_s_p95": float(np.percentile(times, 95)) if times.size else math.nan,
            "budget_s": budget_s,
            "path_length_m_mean": float(np.mean([r.path_length_m for r in results])) if results else math.nan,
            "peak_force_n": float(max((r.peak_force_n for r in results), default=math.nan)),
            "peak_normal_n": float(max((r.peak_normal_n for r in results), default=math.nan)),
            "peak_lateral_n": float(max((r.peak_lateral_n for r in results), default=math.nan)),
            "mean_normal_n": float(np.mean([r.mean_normal_n for r in results])) if results else math.nan,
            "mean_lateral_n": float(np.mean([r.mean_lateral_n for r in results])) if results else math.nan,
            "peak_normal_tick_n": float(max((r.peak_normal_tick_n for r in results), default=math.nan)),
            "refusals": sum(bool(r.refused) for r in results)}
