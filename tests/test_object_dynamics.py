"""Particle dynamics (robot_dyn.object_dynamics): datasets from simulated pushes, the GNN's graph and
invariances, training, the baselines, the MuJoCo oracle and the scores -- on real MuJoCo pushes."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from robot_dyn.object_dynamics.dataset import load_dataset, record_pushes
from robot_dyn.object_dynamics.evaluation import chamfer, emd, evaluate, push_frames, to_vertices
from robot_dyn.object_dynamics.models import (ModelConfig, ParticleGNN, build_edges, build_model, load_model, rollout,
                                              rollout_final)
from robot_dyn.object_dynamics.training import TrainConfig, train


@pytest.fixture(scope="module")
def pushes_folder(tmp_path_factory):
    """Four simulated pushes (about 10 s): three to train on, one held out."""
    folder = tmp_path_factory.mktemp("pushes") / "data"
    record_pushes(folder, 4, seed=3, workers=1)
    return folder


@pytest.fixture(scope="module")
def pushes(pushes_folder):
    return load_dataset(pushes_folder)


def test_recorded_pushes_hold_the_particles_the_tool_and_the_truth(pushes):
    assert pushes.meta["source"] == "truth" and pushes.n_particles == 32 and pushes.step_s == pytest.approx(0.1)
    for episode in pushes.episodes:
        np.testing.assert_array_equal(episode.particles, episode.truth)  # all vertices are the particles
        assert np.allclose(np.diff(episode.time), 0.1, atol=2e-3)
        assert episode.joint_positions.shape == (episode.n_frames, 7)
        pushing = push_frames(episode, pushes.meta["table_height"], pushes.meta["tool_radius"])
        assert len(pushing) >= 3
        moved = np.linalg.norm(episode.truth[-1] - episode.truth[0], axis=1).max()
        assert moved > 0.01, "every push moves the rope"


def test_a_corrupt_dataset_is_refused_with_the_file_and_field_named(pushes_folder, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(pushes_folder, folder)
    meta = json.loads((folder / "meta.json").read_text())
    arrays = dict(np.load(folder / "episode_000.npz"))
    arrays["particles"][3, 5, 0] = np.nan
    np.savez(folder / "episode_000.npz", **arrays)
    with pytest.raises(ValueError, match=r"episode_000.npz: 'particles' must be finite"):
        load_dataset(folder)
    arrays["particles"] = arrays["particles"][:, :20]
    np.savez(folder / "episode_000.npz", **arrays)
    with pytest.raises(ValueError, match=r"'particles' has shape"):
        load_dataset(folder)
    (folder / "episode_001.npz").write_bytes(b"not a zip")
    (folder / "meta.json").write_text(json.dumps({**meta, "episodes": meta["episodes"][1:]}))
    with pytest.raises(ValueError, match=r"episode_001.npz: unreadable"):
        load_dataset(folder)
    (folder / "meta.json").write_text(json.dumps({**meta, "source": "guessed"}))
    with pytest.raises(ValueError, match=r"meta.json: 'source'"):
        load_dataset(folder)
    with pytest.raises(ValueError, match="already holds a dataset"):
        record_pushes(folder, 1)


def test_tracked_particles_import_as_a_dataset_scored_against_the_truth(tmp_path):
    """The honest setting's data path: a recorded RGB-D push, tracked with Gaussians (a short stretch: 6
    frames while the pusher lowers, about 10 s of CPU), imported with its ground truth."""
    from robot_dyn.object_dynamics.dataset import import_tracks
    from robot_dyn.perception.episodes import load_config, load_episode, record_episodes
    from robot_dyn.perception.tracking import TrackingConfig, save_track, track_episode

    config = load_config().with_images(width=160, height=120, shadow_size=0)
    (path,) = record_episodes(tmp_path / "rgbd", 1, seed=3, config=config, progress=False)
    track = track_episode(load_episode(path), TrackingConfig(init_iterations=30, iterations=5), frames=range(2, 8))
    (tmp_path / "run").mkdir()
    save_track(tmp_path / "run", track)
    dataset = import_tracks(tmp_path / "tracked", [path], [tmp_path / "run"], n_particles=24)
    assert dataset.meta["source"] == "tracked" and dataset.n_particles == 24
    (episode,) = dataset.episodes
    assert episode.n_frames == 6 and episode.truth.shape == (6, 32, 3)
    np.testing.assert_allclose(episode.truth, load_episode(path, images=False).rope_vertices[2:8])
    # the tracked particles lie on the rope's surface: within a few radii of the centreline vertices
    gap = np.linalg.norm(episode.particles[0][:, None] - episode.truth[0][None], axis=-1).min(axis=1)
    assert gap.max() < 0.02
    # the tracked particles, carried to the vertices by the attachment, follow the (resting) rope
    estimate = to_vertices(episode.particles[1:], episode.particles[0], episode.truth[0])
    assert np.linalg.norm(estimate - episode.truth[1:], axis=-1).mean() < 0.003
    # rendering: Gaussians skinned to unmoved particles render exactly as the Gaussians left in place
    from robot_dyn.object_dynamics.rendering import compare_renders

    renders = compare_renders(build_model(ModelConfig(kind="zero_motion")), episode, path, tmp_path / "run")
    assert renders["predicted"]["mask_iou"] == pytest.approx(renders["frozen"]["mask_iou"], abs=1e-6)
    assert renders["tracked"]["mask_iou"] > 0.6 and renders["tracked"]["psnr_db"] > 25
    np.savez(tmp_path / "run" / "track.npz", **{**dict(np.load(tmp_path / "run" / "track.npz")),
                                                "frames": np.array([2, 3, 5, 6, 7, 8])})
    with pytest.raises(ValueError, match=r"track.npz: 'frames' must be consecutive"):
        import_tracks(tmp_path / "again", [path], [tmp_path / "run"])


def test_edges_follow_the_radius_and_neighbour_limits_and_only_objects_receive():
    config = ModelConfig(object_radius=0.035, tool_radius=0.045, max_neighbours=3)
    line = torch.zeros(1, 11, 3)
    line[0, :10, 0] = torch.arange(10) * 0.015  # a straight rope, 15 mm spacing
    line[0, 10] = torch.tensor([0.0, 0.03, 0.0])  # the tool, 30 mm beside particle 0
    senders, receivers, is_tool = build_edges(line, config)
    assert not torch.any(receivers == 10), "the tool receives nothing"
    assert not torch.any(senders == receivers)
    object_edges = ~is_tool
    lengths = (line[0, senders[object_edges]] - line[0, receivers[object_edges]]).norm(dim=1)
    assert torch.all(lengths < 0.035)
    counts = torch.bincount(receivers[object_edges], minlength=10)
    assert counts.max() <= 3 and counts.min() >= 2  # ends have 2 neighbours within 35 mm, the middle 4 (cut to 3)
    tool_receivers = set(receivers[is_tool].tolist())
    near = {i for i in range(10) if float((line[0, i] - line[0, 10]).norm()) < 0.045}
    assert tool_receivers == near and tool_receivers


def test_the_gnn_is_translation_invariant_and_batches_like_single_samples():
    torch.manual_seed(0)
    model = ParticleGNN(ModelConfig(hidden=32, n_particles=8)).eval()
    objects = torch.rand(3, 3, 8, 3) * 0.05
    tool = torch.rand(3, 3, 3) * 0.05
    tool_next = tool[:, -1] + 0.01
    with torch.no_grad():
        batched = model(objects, tool, tool_next)
        single = torch.cat([model(objects[i:i + 1], tool[i:i + 1], tool_next[i:i + 1]) for i in range(3)])
        shift = torch.tensor([0.3, -0.2, 0.1])
        shifted = model(objects + shift, tool + shift, tool_next + shift)
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shifted - shift, batched, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"tool must have shape"):
        model(objects, tool[:, :2], tool_next)


def test_chamfer_and_emd_agree_on_simple_sets():
    a = np.random.default_rng(0).random((20, 3))
    assert chamfer(a, a) == 0 and emd(a, a[::-1].copy()) == pytest.approx(0)
    b = a + np.array([0.01, 0, 0])
    assert emd(a, b) == pytest.approx(0.01, rel=1e-6)
    bunched = np.repeat(a[:1], 20, axis=0)
    assert emd(a, bunched) > chamfer(a, bunched)  # EMD penalises bunching, Chamfer less so
    moved = a[None] + 0.002
    np.testing.assert_allclose(to_vertices(moved, a, a), moved)  # particles that are the vertices
    np.testing.assert_allclose(to_vertices(moved[:, :15], a[:15], a), moved, atol=1e-9)  # attached: a shift carries over


def test_training_beats_zero_motion_and_the_checkpoint_round_trips(pushes, tmp_path):
    training, held_out = pushes.split(1)
    config = ModelConfig(kind="gnn", hidden=32, message_steps=2)
    metrics = train(training, tmp_path / "gnn", config, TrainConfig(steps=120, batch_size=16, log_every=60),
                    log=lambda *_: None)
    assert metrics["history"][-1]["loss"] < 0.5 * metrics["history"][0]["loss"]
    model, meta = load_model(tmp_path / "gnn")
    assert meta["source"] == "truth" and meta["step_s"] == pytest.approx(0.1)
    zero = build_model(ModelConfig(kind="zero_motion"))
    learned, still = evaluate(model, training, horizons=(1, 5)), evaluate(zero, training, horizons=(1, 5))
    assert learned["mde_mm_at_1"] < 0.7 * still["mde_mm_at_1"]
    episode = held_out.episodes[0]
    objects = torch.as_tensor(episode.particles[None, 5:8], dtype=torch.float32)
    tool = torch.as_tensor(episode.tool[None, 5:8], dtype=torch.float32)
    path = torch.as_tensor(episode.tool[None, 8:12], dtype=torch.float32)
    again, _ = load_model(tmp_path / "gnn")
    with torch.no_grad():
        torch.testing.assert_close(rollout(model, objects, tool, path), rollout(again, objects, tool, path))
    (tmp_path / "gnn" / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match=r"model.safetensors: weights unreadable"):
        load_model(tmp_path / "gnn")
    (tmp_path / "gnn" / "model.json").write_text("{\"model\": {\"kind\": \"gnn\", \"hiden\": 3}}")
    with pytest.raises(ValueError, match=r"model.json: not a dynamics model"):
        load_model(tmp_path / "gnn")


def test_the_identified_spring_mass_model_and_the_oracle_beat_zero_motion(pushes, tmp_path):
    from robot_dyn.object_dynamics.oracle import MujocoOracle

    training, held_out = pushes.split(1)
    train(training, tmp_path / "spring", ModelConfig(kind="spring_mass"), log=lambda *_: None)
    spring, _ = load_model(tmp_path / "spring")
    zero = build_model(ModelConfig(kind="zero_motion"))
    radius = float(spring.physical[0])
    assert 0.01 < radius < 0.03, "the contact radius is about the tip's plus the rope's (19 mm)"
    scores = {name: evaluate(m, held_out, horizons=(1, 5)) for name, m in
              (("spring", spring), ("zero", zero), ("oracle", MujocoOracle(pushes.meta)))}
    assert scores["spring"]["mde_mm_at_5"] < 0.8 * scores["zero"]["mde_mm_at_5"]
    assert scores["oracle"]["mde_mm_at_5"] < 0.5 * scores["zero"]["mde_mm_at_5"]
    assert scores["oracle"]["mde_mm_at_1"] < 1.0


def test_record_and_train_from_the_command_line(tmp_path):
    out = tmp_path / "data"
    run = lambda *args: subprocess.run([sys.executable, "-m", "robot_dyn.cli", *args], capture_output=True,  # noqa: E731
                                       text=True, timeout=300)
    done = run("record", "pushes", "--episodes", "2", "--workers", "1", "--any-direction", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pushes"] == 2
    done = run("train", "dynamics", "--dataset", str(out), "--model", "mlp", "--steps", "5", "--validation", "1",
               "--out", str(tmp_path / "mlp"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mde_mm_at_10"] > 0
    done = run("predict", str(tmp_path / "mlp"), "--dataset", str(out), "--episode", "1", "--out", str(tmp_path / "video"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "video" / "prediction.json").read_text())
    import cv2

    video = cv2.VideoCapture(str(tmp_path / "video" / "prediction.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["steps"] + 1 == len(summary["mde_mm_per_step"])
    assert summary["mde_mm_per_step"][0] == 0.0  # the start, shown in both panels
    done = run("train", "dynamics", "--dataset", str(tmp_path / "missing"))
    assert done.returncode != 0 and "meta.json: missing" in done.stderr


def test_target_shapes_are_as_long_as_the_rope_and_centred_on_it():
    from robot_dyn.object_dynamics.planning import TARGET_SHAPES, target_shape

    rope = np.column_stack([0.5 + 0.05 * np.sin(np.linspace(0, 3, 32)), np.linspace(-0.2, 0.2, 32), np.full(32, 0.107)])
    length = np.linalg.norm(np.diff(rope, axis=0), axis=1).sum()
    for name in TARGET_SHAPES:
        target = target_shape(name, rope, 64)
        assert np.linalg.norm(np.diff(target, axis=0), axis=1).sum() == pytest.approx(length, rel=0.02), name
        assert np.allclose(target[:, 2], 0.107)
        assert np.linalg.norm(target[:, :2].mean(0) - rope[:, :2].mean(0)) < 0.05, name
    with pytest.raises(ValueError, match="target shape"):
        target_shape("circle", rope)


def test_a_planned_push_is_feasible_and_improves_the_predicted_shape():
    from robot_dyn.object_dynamics.planning import LearnedRollouts, PlannerConfig, plan_push, target_shape, tool_paths

    config = PlannerConfig(samples=64, iterations=2, elites=8)
    rope = np.column_stack([np.full(32, 0.5), np.linspace(-0.23, 0.23, 32), np.full(32, 0.107)])
    target = target_shape("u", rope)
    predictor = LearnedRollouts(build_model(ModelConfig(kind="spring_mass", history=1)), step_s=0.1)
    plan = plan_push(predictor, rope, target, height=0.115, config=config, seed=1)
    before = chamfer(rope[:, :2], target[:, :2])
    assert plan.cost < 0.9 * before and plan.evaluated > config.samples  # one push of <= 12 cm bends a 46 cm rope only so far
    assert np.linalg.norm(rope[:, :2] - plan.start, axis=1).min() >= config.clearance
    for xy in (plan.start, plan.end):
        assert config.workspace_x[0] <= xy[0] <= config.workspace_x[1] and config.workspace_y[0] <= xy[1] <= config.workspace_y[1]
    # the path is the executed motion: from rest at the start, minimum jerk at most the peak speed, resting at the end
    paths, steps = tool_paths(np.array([[*plan.start, plan.angle, plan.length]]), 0.115, config, step_s=0.1)
    path = paths[0]
    travel = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert np.all(travel <= config.speed * 0.1 + 1e-9) and travel.max() > 0.8 * config.speed * 0.1
    assert np.allclose(path[0, :2], plan.start) and np.allclose(path[steps[0], :2], plan.end)
    assert steps[0] == int(np.ceil(plan.duration / 0.1)) + config.settle_steps
    # the shrinking-batch rollout gives what the full rollout gives at each sample's own last step
    model = ParticleGNN(ModelConfig(hidden=16, message_steps=1)).eval()
    objects = torch.as_tensor(rope, dtype=torch.float32)[None, None].repeat(3, 3, 1, 1)
    tool_path = torch.as_tensor(paths, dtype=torch.float32).repeat(3, 1, 1)
    tool_path[1, :, 1] += 0.05
    tool = tool_path[:, :1].repeat(1, 3, 1)
    own = torch.tensor([5, 12, 9])
    with torch.no_grad():
        full = rollout(model, objects, tool, tool_path[:, 1:])
        final = rollout_final(model, objects, tool, tool_path[:, 1:], own)
    assert torch.allclose(final, full[torch.arange(3), own - 1], atol=1e-6)


def test_mujoco_rollouts_move_the_rope_as_the_arm_does():
    """The oracle's pusher without the arm, against the arm's push through the control cores."""
    from robot_dyn.object_dynamics.oracle import MujocoRollouts
    from robot_dyn.object_dynamics.planning import PlannerConfig, tool_paths
    from robot_dyn.perception.episodes import Push, RopePushSim, load_config
    from robot_dyn.sim.deformables import rope_vertices

    scene, config = load_config(), PlannerConfig()
    sim = RopePushSim(scene, render=False)
    height = scene.table.height + scene.pusher.tip_radius + scene.push.clearance
    rope = sim.reset(np.random.default_rng(1))
    direction = np.array([np.cos(2.5), np.sin(2.5)])
    start = rope[16, :2] - config.approach * direction
    paths, steps = tool_paths(np.array([[*start, 2.5, 0.09]]), height, config, step_s=0.1)
    predicted = MujocoRollouts(scene).final(rope, paths, steps)[0]
    begin, end = np.array([*start, height]), np.array([*(start + (config.approach + 0.09) * direction), height])
    sim.run_push(Push(-1, begin, np.array([*direction, 0.0]), 0.09, begin, end), lambda _: None)
    truth = rope_vertices(sim.model, sim.data)
    moved, error = np.linalg.norm(truth - rope, axis=1), np.linalg.norm(predicted - truth, axis=1)
    assert moved.max() > 0.05, "the push moved the rope"
    assert error.mean() < 0.25 * moved.mean(), f"oracle MDE {error.mean() * 1e3:.1f} mm, the rope moved {moved.mean() * 1e3:.1f} mm"


def test_the_closed_loop_plans_pushes_the_simulated_rope_and_observes_it():
    from robot_dyn.object_dynamics.planning import LearnedRollouts, PlannerConfig, plan_push
    from robot_dyn.object_dynamics.pushing import push_to_shape
    from robot_dyn.perception.episodes import RopePushSim, load_config

    config = PlannerConfig(samples=64, iterations=1)
    predictor = LearnedRollouts(build_model(ModelConfig(kind="spring_mass", history=1)), step_s=0.1)
    sim = RopePushSim(load_config(), render=False)
    result = push_to_shape(sim, lambda p, t, h, s: plan_push(predictor, p, t, h, config, s), "u", seed=11, pushes=1,
                           config=config)
    before, after = result["chamfer_m"]
    assert len(result["plan_s"]) == 1 and abs(after - before) > 0.002, "the planned push reached the rope"
    target = np.array(result["target_xy"])
    assert chamfer(np.array(result["start_xy"]), target) == pytest.approx(before)
    assert chamfer(np.array(result["final_xy"]), target) == pytest.approx(after)
    assert np.array(result["pushes_xy"]).shape == (1, 4)
    with pytest.raises(ValueError, match="speed"):
        push_to_shape(sim, lambda *a: None, "u", seed=11, pushes=1, config=PlannerConfig(speed=0.2))


def test_a_push_becomes_one_flange_path_and_the_shaping_loop_ends_as_told():
    from robot_dyn.dynamics.rigid_body import RigidBody
    from robot_dyn.object_dynamics.planning import PlannerConfig, PushPlan
    from robot_dyn.object_dynamics.pushing import Shaping, ShapingSettings, push_path
    from robot_dyn.robots import load_robot

    robot = load_robot("panda")
    home, down = RigidBody(robot).ee_pose(robot.home)
    config = PlannerConfig()
    plan = PushPlan(np.array([0.45, 0.05]), np.array([0.55, 0.05]), 0.0, 0.06, 1.5, np.zeros((3, 3)), 0.02, 1)
    path, push_end = push_path(plan, 0.115, (home, down), down, 0.10, t0=2.0, config=config, hover=0.06)
    tip = path.p + 0.10 * down[:, 2]
    assert path.t0 == 2.0 and np.allclose(path.p[0], home)  # it starts where the arm is, when told
    at_end = np.argmin(np.abs(path.times - push_end))
    assert np.allclose(tip[at_end], [0.55, 0.05, 0.115], atol=1e-9) and np.allclose(tip[-1], [0.55, 0.05, 0.175])
    low = tip[:, 2] < 0.115 + 1e-6  # pushing height: from the start to the end, never lower
    assert np.allclose(tip[low][0], [0.45, 0.05, 0.115]) and tip[:, 2].min() > 0.115 - 1e-9
    pushing = (path.times >= path.times[low][0]) & (path.times <= push_end)
    assert np.linalg.norm(path.v[pushing], axis=1).max() <= config.speed + 1e-6
    assert np.allclose(path.R, down)

    calls = []
    planner = lambda particles, target, height, seed: calls.append(seed) or plan  # noqa: E731
    rope = np.column_stack([np.full(8, 0.5), np.linspace(-0.2, 0.2, 8), np.full(8, 0.107)])
    shaping = Shaping(planner, ShapingSettings("straight", max_pushes=2, reached=0.001), height=0.115, seed=3)
    bent = rope + np.array([0.03, 0.0, 0.0]) * np.sin(np.linspace(0, np.pi, 8))[:, None]
    assert shaping.observe(bent) > 0.001 and shaping.plan(bent) is plan
    shaping.observe(bent)
    assert shaping.plan(bent) is plan and shaping.outcome is None
    shaping.observe(bent)
    assert shaping.plan(bent) is None and shaping.outcome.startswith("gave up after 2 pushes") and calls == [300, 301]
    straight = Shaping(planner, ShapingSettings("straight", reached=0.005, rope_length=0.4), height=0.115, seed=0)
    assert straight.observe(rope) < 0.005 and straight.outcome.startswith("reached") and straight.plan(rope) is None
    with pytest.raises(ValueError, match="particles"):
        straight.observe(np.full((8, 3), np.nan))


def test_any_direction_pushes_come_at_every_angle_and_reach_the_ends():
    from robot_dyn.object_dynamics.dataset import any_direction
    from robot_dyn.perception.episodes import load_config, plan_push
    from robot_dyn.sim.deformables import random_rope_shape

    config = load_config()
    rope = random_rope_shape(np.random.default_rng(0), config.rope, config.table)
    tangent = np.gradient(rope[:, :2], axis=0)
    for scene, wide in ((config, False), (any_direction(config), True)):
        rng = np.random.default_rng(1)
        pushes = [plan_push(rng, rope, scene) for _ in range(200)]
        off_normal = [np.degrees(np.arcsin(min(1.0, abs(p.direction[:2] @ tangent[p.contact_vertex])
                                                / np.linalg.norm(tangent[p.contact_vertex])))) for p in pushes]
        vertices = [p.contact_vertex for p in pushes]
        if wide:
            assert max(off_normal) > 60 and min(vertices) <= 2 and max(vertices) >= len(rope) - 3
        else:
            assert max(off_normal) < 31 and min(vertices) >= 5 and max(vertices) <= len(rope) - 6
