"""The insert task: the peg as the flange's tool in every model, the fixture's geometry, stable contact at
0.5 mm clearance, and the expert finding offset holes (in process, deterministic)."""
import mujoco
import numpy as np
import pytest

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import Tool, with_tool
from robot_dyn.safety.sets import load_safe_sets
from robot_dyn.sim.backend import make_backend
from robot_dyn.tasks import load_task
from robot_dyn.tasks.in_process import run_expert
from robot_dyn.paths import config_path
from robot_dyn.tasks.insert import InsertTask, load_insert_config

TASK = load_task("insert")
CONFIG = TASK.config


def test_the_peg_is_part_of_the_robot_for_controller_sim_and_safety_filter():
    bare = load_robot("panda")
    robot = with_tool(bare, TASK.tool)
    q = bare.home + 0.2
    g_bare, g_tool = RigidBody(bare).gravity(q), RigidBody(robot).gravity(q)
    assert np.max(np.abs(g_tool - g_bare)) > 0.05  # 0.12 kg 0.3-0.6 m out: tenths of a newton metre
    backend = make_backend("mujoco", robot, scene=TASK.episode(0).scene)
    moving = sum(inertia.mass for inertia in RigidBody(robot).model.inertias[1:])  # the base is fixed in both
    assert np.isclose(backend.model.body_mass[1:].sum(), moving, atol=1e-9)
    assert np.isclose(moving - sum(i.mass for i in RigidBody(bare).model.inertias[1:]), TASK.tool.mass)
    sets = load_safe_sets(robot)
    spheres = [s for s in sets.spheres if s.frame == "tool"]
    assert spheres, [s.name for s in sets.spheres]
    # every corner of the peg's box lies in one of its spheres
    half = TASK.tool.width / 2
    for z in np.linspace(0.0, TASK.tool.length, 21):
        for x, y in ((half, half), (-half, half), (half, -half), (-half, -half)):
            assert any(np.linalg.norm(np.array([x, y, z]) - s.offset) <= s.radius + 1e-9 for s in spheres), (x, y, z)
    with pytest.raises(ValueError, match="already carries a tool"):
        with_tool(robot, TASK.tool)
    with pytest.raises(ValueError, match="mass must be a positive"):
        Tool("bad", 0.1, 0.02, 0.0).validated()


@pytest.mark.parametrize("config", [CONFIG, load_insert_config(config_path("tasks/insert_tilted.yaml"))],
                         ids=["level", "leaning"])
def test_the_fixture_has_a_chamfered_hole_of_the_configured_clearance(config):
    episode = InsertTask(config).episode(3)
    backend = make_backend("mujoco", with_tool(load_robot("panda"), TASK.tool), scene=episode.scene)
    m, d = backend.model, backend.data
    mujoco.mj_forward(m, d)
    into = config.axes_from_fixture([0.0, 0.0, -1.0])  # along the hole's axis, into the fixture

    def surface(x, y):  # height of the fixture's face below (x, y) of the fixture frame, relative to its top, m
        geom = np.zeros(1, np.int32)
        start = config.from_fixture([x, y, 0.01])
        return 0.01 - mujoco.mj_ray(m, d, start, into, None, 1, -1, geom)

    hole = episode.hole - np.asarray(config.nominal_hole)  # on the face, from the nominal hole
    half, ch = config.hole_side / 2, config.chamfer
    for direction in (np.array([1.0, 0.0]), np.array([0.0, -1.0])):
        x, y = hole + direction * (half - 1e-4)
        assert abs(surface(x, y) + (config.hole_depth)) < 1e-6  # inside: the hole's floor
        x, y = hole + direction * (half + ch / 2)
        assert abs(surface(x, y) + ch / 2) < 1e-5  # halfway up the 45 degree chamfer
        x, y = hole + direction * (half + ch + 1e-3)
        assert abs(surface(x, y)) < 1e-6  # the top
    assert np.isclose(config.hole_side - TASK.tool.width, 0.0005)
    assert np.linalg.norm(hole) <= config.offset_radius
    assert np.allclose(InsertTask(config).episode(-1).hole, config.nominal_hole)
    # the leaning fixture's frame: its z is the hole's axis, turned by the tilt about the base's y
    assert np.isclose(np.degrees(np.arccos(-into[2])), np.degrees(config.tilt))
    np.testing.assert_allclose(config.from_fixture(config.to_fixture([0.4, 0.1, 0.3])), [0.4, 0.1, 0.3], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 3, 9])
def test_the_expert_finds_the_offset_hole_and_contact_stays_sane(seed):
    result = run_expert(TASK, seed)
    assert result.success, (result.score, result.phases)
    assert result.phases[:2] == ["align", "descend"] and result.phases[-1] == "done"
    assert result.score["lateral_m"] < CONFIG.clearance  # in the hole, on its axis
    force = np.linalg.norm(result.contact_force_n, axis=1)
    # pressing lightly (a few newtons) while searching and inserting; the peg never wedges hard
    assert np.percentile(force, 95) < 20.0, np.percentile(force, 95)
    assert np.all(np.isfinite(force))


def test_on_the_leaning_fixture_the_expert_searches_and_inserts_along_the_holes_axis():
    """The second fixture leans 15 degrees: the expert, thinking in the fixture's frame, aligns the peg with
    the slanted axis, searches on the sloped face and presses the peg home along it."""
    task = InsertTask(load_insert_config(config_path("tasks/insert_tilted.yaml")))
    result = run_expert(task, 0)
    assert result.success, (result.score, result.phases)
    assert "search" in result.phases, result.phases  # seed 0's hole is off by more than the chamfer catches
    assert result.score["lateral_m"] < task.config.clearance
    force = np.linalg.norm(result.contact_force_n, axis=1)
    assert np.percentile(force, 95) < 20.0, np.percentile(force, 95)


def test_a_malformed_task_config_names_the_field(tmp_path):
    bad = tmp_path / "insert.yaml"
    bad.write_text("insert:\n  peg: {length: 0.1, width: 0.02, mass: 0.1}\n  clearence: 0.001\n")
    with pytest.raises(ValueError, match="unknown fields \\['clearence'\\]"):
        load_insert_config(bad)
    bad.write_text("insert:\n  offset_radius: 0.2\n")
    with pytest.raises(ValueError, match="offset_radius"):
        load_insert_config(bad)
    bad.write_text("insert:\n  tilt: 0.6\n")
    with pytest.raises(ValueError, match="insert.tilt"):
        load_insert_config(bad)
    with pytest.raises(ValueError, match="unknown task"):
        load_task("stack")


def test_while_searching_a_caught_peg_is_not_dragged_and_a_dipped_one_is_waited_on():
    """The expert's search, command by command: the reference may lead a peg that does not follow by at most
    max_lead (the sideways push stays bounded), and where the peg sinks below the top the path waits."""
    from robot_dyn.robots.tools import pointing_down
    from robot_dyn.tasks.insert_expert import InsertExpert, InsertExpertSettings

    settings = InsertExpertSettings(noise=0.0)
    expert = InsertExpert(CONFIG, settings, seed=0)
    nominal, top, R = np.asarray(CONFIG.nominal_hole), CONFIG.top, pointing_down(0.0)
    on_top = np.array([*nominal, top])
    above = on_top + [0, 0, settings.approach_height]
    for t in (1.0, 1.5):  # each phase begins with a person's pause of up to 0.4 s
        expert.command(t, above, R, above)
    for t in (2.0, 2.5):
        expert.command(t, on_top, R, on_top - [0, 0, 2 * settings.press])  # the reference went on, the peg rests
    assert expert.phase == "search"
    speed = lambda command: command[:3] * settings.linear_scale  # noqa: E731  (m/s)
    expert.command(3.0, on_top, R, on_top)
    free = speed(expert.command(3.5, on_top, R, on_top))
    assert np.linalg.norm(free[:2]) > 1e-3, "searching moves the reference sideways"
    direction = free[:2] / np.linalg.norm(free[:2])
    # the peg stays put while the reference has gone 1.5 max_lead ahead in the direction it was heading
    lead = np.array([*(1.5 * settings.max_lead * direction), 0.0])
    caught = speed(expert.command(3.52, on_top, R, on_top + lead))
    assert caught[:2] @ direction < -settings.gain * 0.4 * settings.max_lead, caught  # pulled back toward the bound
    within = speed(expert.command(3.54, on_top, R, on_top + 0.5 * lead))
    assert within[:2] @ direction > 0, within  # inside the bound the path goes on
    # the peg sinks 0.5 mm below the top, the reference 1 mm to its side: the reference follows the peg
    dipped = on_top - [0, 0, 0.0005]
    side = np.array([0.001, 0.0, 0.0])
    held = speed(expert.command(3.56, dipped, R, dipped + side))
    assert np.allclose(held[:2], -settings.comply_gain * side[:2]), held
    path_t = expert._path_t
    expert.command(3.58, dipped, R, dipped)
    assert expert._path_t == path_t, "the path waits where the peg dipped"
    expert.command(3.56 + settings.dip_hold_s + 0.02, dipped, R, dipped)
    assert expert._path_t > path_t, "and moves on after dip_hold_s"
