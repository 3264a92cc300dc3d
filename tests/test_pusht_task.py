"""The pusht task: the coverage score, the scene (a block that rests, and moves when the pusher pushes it),
the pusher as the flange's tool, and its scripted expert."""
import mujoco
import numpy as np
import pytest

from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.simulated_arm import SimulatedArm
from robot_dyn.tasks import load_task
from robot_dyn.tasks.in_process import run_expert
from robot_dyn.tasks.pusht import block_pose, coverage, load_pusht_config

TASK = load_task("pusht")
CONFIG = TASK.config


def test_coverage_is_the_covered_share_of_the_target():
    target = np.array(CONFIG.target)
    assert coverage(CONFIG, target) == pytest.approx(1.0)
    # shifted along the bar by 1 cm: only the stem's strip and the bar's end change
    bar, stem = CONFIG.bar_length * CONFIG.bar_width, CONFIG.stem_length * CONFIG.stem_width
    c, s = np.cos(target[2]), np.sin(target[2])
    shifted = target + np.array([0.01 * c, 0.01 * s, 0.0])
    expected = ((CONFIG.bar_length - 0.01) * CONFIG.bar_width + (CONFIG.stem_width - 0.01) * CONFIG.stem_length) / (bar + stem)
    assert coverage(CONFIG, shifted) == pytest.approx(expected, rel=1e-9)
    assert coverage(CONFIG, target + np.array([0.0, 0.0, np.pi])) < 0.5  # upside down
    assert coverage(CONFIG, target + np.array([0.5, 0.0, 0.0])) == 0.0
    for seed in range(20):
        start = TASK.episode(seed).start
        assert np.linalg.norm(start[:2] - target[:2]) >= CONFIG.min_start_distance
        assert CONFIG.start_x[0] <= start[0] <= CONFIG.start_x[1]


def test_the_block_rests_where_it_was_put_and_the_pusher_pushes_it():
    robot = with_tool(load_robot("panda"), TASK.tool)
    episode = TASK.episode(2)
    backend = make_backend("mujoco", robot, scene=episode.scene)
    m, d = backend.model, backend.data
    arm = SimulatedArm(robot, backend, ImpedanceSettings.from_robot(robot), robot.home)
    loop = OuterLoop(robot, OuterLoopConfig())
    loop.start(0.0, robot.home)
    mujoco.mj_forward(m, d)
    arm.follow(loop.tick, 0.5, observe=loop.observe)
    rest = block_pose(m, d)
    assert np.allclose(rest, episode.start, atol=2e-3), (rest, episode.start)  # settled, did not slide or spin
    score = episode.score(m, d)
    assert 0.0 <= score["score"] < 1.0 and not score["success"]
    # the pusher's tip 1 cm above the table, 5 cm from the block's origin, then 10 cm through it
    p0, R0 = loop.desired_pose()
    direction = np.array([np.cos(rest[2] + np.pi / 2), np.sin(rest[2] + np.pi / 2), 0.0])  # into the stem's end
    tip_z = CONFIG.table.height + 0.01
    start = np.array([*rest[:2], tip_z]) - direction * (CONFIG.stem_length + 0.03)
    down = np.diag([1.0, -1.0, -1.0])  # the rod straight down
    for goal in (start + np.array([0, 0, 0.08]), start, start + direction * 0.08):
        duration = loop.command_pose_goal(arm.time, goal - down[:, 2] * TASK.tool.length, down)  # the flange above the tip
        arm.follow(loop.tick, duration + 0.3, observe=loop.observe)
    moved = block_pose(m, d)
    assert np.linalg.norm(moved[:2] - rest[:2]) > 0.02, (moved, rest)
    assert episode.score(m, d)["score"] != score["score"]


def test_a_malformed_config_names_the_field(tmp_path):
    bad = tmp_path / "pusht.yaml"
    bad.write_text("pusht:\n  bar_lenght: 0.1\n")
    with pytest.raises(ValueError, match="unknown fields \\['bar_lenght'\\]"):
        load_pusht_config(bad)
    bad.write_text("pusht:\n  start_x: [0.6, 0.4]\n")
    with pytest.raises(ValueError, match="start_x"):
        load_pusht_config(bad)


def test_the_expert_pushes_the_t_onto_its_target_each_seed_its_own_way():
    results = [run_expert(TASK, seed, time_limit=90.0) for seed in (4, 11)]
    for result in results:
        assert result.success and result.score["score"] > CONFIG.success_coverage, result
        assert "push" in result.phases and "over" in result.phases  # it went round the block to push
        assert result.duration_s < 90.0
    # two seeds: different blocks, different pushes, different lengths
    assert results[0].duration_s != results[1].duration_s
    assert np.abs(results[0].contact_force_n).max() > 0.1  # it pushed (force on the rod)


def test_the_expert_needs_to_see_the_block():
    expert = TASK.expert(0)
    with pytest.raises(ValueError, match="block_pose"):
        expert.command(0.0, np.array([0.5, 0.0, 0.3]), np.diag([1.0, -1.0, -1.0]), np.array([0.5, 0.0, 0.3]), {})


def test_the_expert_gives_up_after_its_time():
    expert = TASK.expert(0, give_up_s=1.0)
    look = (np.array([0.5, 0.0, 0.3]), np.diag([1.0, -1.0, -1.0]), np.array([0.5, 0.0, 0.3]),
            {"block_pose": TASK.episode(0).start})
    assert expert.command(5.0, *look) is not None
    assert expert.command(6.5, *look) is None and expert.done
