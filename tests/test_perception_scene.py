"""Simulated data for deformable-object tracking: the rope scene, the calibrated camera rig,
scripted pushes and the on-disk episode format (all in-process, CPU, MUJOCO_GL=egl)."""
import json
import shutil

import mujoco
import numpy as np
import pytest

from robot_dyn.perception.cameras import CameraRig, RigRenderer, fused_point_cloud, project
from robot_dyn.perception.episodes import EpisodeConfig, load_config, load_episode, record_episodes
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.deformables import (DeformableScene, RopeConfig, TableConfig, flex_id, polyline_distance,
                                       random_rope_shape, rope_vertices, set_flex_vertices)

TABLE, ROPE = TableConfig(), RopeConfig()


@pytest.fixture(scope="module")
def robot():
    return load_robot("panda")


@pytest.fixture(scope="module")
def rendered(robot):
    """Arm at home, a curved rope at rest on the table, four cameras rendered once (no shadows: faster)."""
    rig = CameraRig.around(center=(*TABLE.center, TABLE.height), n=4, shadow_size=0)
    sim = make_backend("mujoco", robot, scene=[DeformableScene(TABLE, ROPE), rig])
    sim.reset(robot.home)
    set_flex_vertices(sim.model, sim.data, random_rope_shape(np.random.default_rng(3), ROPE, TABLE), ROPE.name)
    for _ in range(200):
        sim.step(np.zeros(robot.n_joints))
    mujoco.mj_forward(sim.model, sim.data)
    with RigRenderer(sim.model, rig, objects=(ROPE.name,)) as renderer:
        frames = renderer.render(sim.data)
    return rig, renderer.calibrations, frames, rope_vertices(sim.model, sim.data, ROPE.name), sim


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """One short recorded push: 64x48 images, 4 fps, no shadows."""
    out = tmp_path_factory.mktemp("episodes")
    config = load_config().with_images(width=64, height=48, shadow_size=0, fps=4.0)
    (path,) = record_episodes(out, 1, seed=7, config=config, progress=False)
    return path


def test_rope_scene_compiles_steps_and_rests_on_the_table(robot):
    scene = DeformableScene(TABLE, ROPE)
    sim = make_backend("mujoco", robot, scene=scene)
    plain = make_backend("mujoco", robot)
    arm_bodies = slice(0, plain.model.nbody)
    assert np.allclose(sim.model.body_mass[arm_bodies], plain.model.body_mass)  # the pusher is massless
    sim.reset(robot.home)
    for _ in range(300):
        sim.step(np.zeros(robot.n_joints))
    v = rope_vertices(sim.model, sim.data)
    assert v.shape == (ROPE.n_vertices, 3) and np.all(np.isfinite(v))
    assert np.allclose(v[:, 2], TABLE.height + ROPE.radius, atol=1.5e-3)  # resting on the top, not sinking
    lo, hi = np.subtract(TABLE.center, TABLE.half_extents), np.add(TABLE.center, TABLE.half_extents)
    assert np.all((v[:, :2] > lo) & (v[:, :2] < hi))
    assert np.allclose(np.linalg.norm(np.diff(v, axis=0), axis=1), ROPE.spacing, atol=5e-4)
    with pytest.raises(ValueError, match="need the mujoco backend"):
        make_backend("pybullet", robot, scene=scene)
    with pytest.raises(ValueError, match="must be below spacing / 2"):
        RopeConfig(radius=0.01, spacing=0.015)


def test_projection_lands_on_the_mask_and_depth_matches(rendered):
    rig, calibrations, frames, vertices, sim = rendered
    model, data, flex = sim.model, sim.data, flex_id(sim.model, ROPE.name)
    cal, frame, cam = calibrations[0], frames[0], rig.cameras[0]
    # The look-at target projects to the principal point, at the camera's distance.
    uv, z = project(np.array([cam.target]), cal.K, cal.world_to_cam)
    assert np.allclose(uv[0], [cal.K[0, 2], cal.K[1, 2]], atol=1e-6)
    assert z[0] == pytest.approx(np.linalg.norm(np.subtract(cam.position, cam.target)))
    assert frame.rgb.shape == (cal.height, cal.width, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.dtype == np.float32 and frame.mask.dtype == bool
    # Every rope vertex (camera 0 sees the rope in front of the arm) projects onto the rope's mask...
    uv, z = project(vertices, cal.K, cal.world_to_cam)
    px = np.round(uv).astype(int)
    assert np.all((px >= 0) & (px < [cal.width, cal.height]))
    assert frame.mask[px[:, 1], px[:, 0]].mean() > 0.9
    # ...the depth there is the rope's near surface, a little in front of the vertex...
    hit = frame.mask[px[:, 1], px[:, 0]]
    depth = frame.depth[px[hit, 1], px[hit, 0]]
    gap = z[hit] - depth
    assert np.mean((gap > 0) & (gap < 2.5 * ROPE.radius)) > 0.9
    # ...and equals MuJoCo's own ray cast against the rope through that pixel, built from K and
    # world_to_cam (the ray's camera-z component is 1, so the hit distance is the z-depth).
    cam_to_world = cal.cam_to_world
    cast = []
    for u, v in px[hit]:
        ray = cam_to_world[:3, :3] @ np.array([(u - cal.K[0, 2]) / cal.K[0, 0], (v - cal.K[1, 2]) / cal.K[1, 1], 1.0])
        cast.append(mujoco.mj_rayFlex(model, data, 0, True, True, False, False, flex, cam_to_world[:3, 3].copy(), ray, None))
    assert np.mean(np.abs(np.array(cast) - depth) < 1e-3) > 0.95
    # Pixels off the rope are not in the mask and have valid depth (table or floor).
    assert 0 < frame.mask.mean() < 0.1 and np.all(frame.depth[~frame.mask] >= 0)


def test_back_projected_depth_from_four_cameras_lies_on_the_rope(rendered):
    _rig, calibrations, frames, vertices, _sim = rendered
    assert len(frames) == 4 and all(f.mask.sum() > 50 for f in frames)
    cloud = fused_point_cloud(frames, calibrations)
    distance = polyline_distance(cloud, vertices)  # to the rope's centre line
    assert np.percentile(distance, 99) < ROPE.radius + 0.003  # points sit on the rope's surface
    assert np.max(distance) < 0.01
    # and the cloud covers the whole rope
    nearest = np.min(np.linalg.norm(vertices[:, None] - cloud[None], axis=-1), axis=1)
    assert np.max(nearest) < 0.015


def test_episode_round_trips(episode):
    ep = load_episode(episode)
    meta = json.loads((episode / "meta.json").read_text())
    F, V = ep.n_frames, ROPE.n_vertices
    assert F == meta["n_frames"] >= 10 and ep.fps == 4.0
    assert ep.camera_names == ["cam0", "cam1", "cam2", "cam3"]
    assert np.allclose(np.diff(ep.time), 0.25)
    assert ep.rope_vertices.shape == (F, V, 3) and ep.joint_positions.shape == (F, 7) and ep.ee_position.shape == (F, 3)
    for cal, rgb, depth, mask in zip(ep.cameras, ep.rgb, ep.depth, ep.mask):
        assert cal.K.shape == (3, 3) and cal.world_to_cam.shape == (4, 4)
        assert rgb.shape == (F, 48, 64, 3) and depth.shape == (F, 48, 64) and mask.shape == (F, 48, 64)
        assert depth.dtype == np.float32 and mask.dtype == bool and mask.any()
    # End-effector from forward kinematics, pusher tip below it along the tool axis.
    tool_axis = ep.ee_rotation[:, :, 2]
    assert np.allclose(ep.pusher_tip, ep.ee_position + 0.10 * tool_axis, atol=1e-9)
    lean = load_episode(episode, images=False)
    assert lean.rgb is None and np.array_equal(lean.rope_vertices, ep.rope_vertices)


def test_a_push_moves_the_rope(episode):
    ep = load_episode(episode, images=False)
    push = ep.meta["push"]
    assert 0.05 <= push["length"] <= 0.15
    displacement = np.linalg.norm(ep.rope_vertices - ep.rope_vertices[0], axis=-1)
    assert displacement.max() > 0.02
    assert np.allclose(ep.rope_vertices[..., 2], TABLE.height + ROPE.radius, atol=0.004)  # stays on the table
    # The tip went down to just above the table and along the push.
    low = ep.pusher_tip[:, 2] < TABLE.height + 0.02
    assert low.any() and np.all(ep.pusher_tip[:, 2] > TABLE.height)


def _corrupt(episode, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(episode, copy)
    return copy


def test_corrupt_episodes_are_rejected_naming_the_problem(episode, tmp_path):
    bad = _corrupt(episode, tmp_path, "missing_mask")
    (bad / "cam2" / "mask" / "000003.png").unlink()
    with pytest.raises(ValueError, match=r"cam2/mask/000003\.png: missing"):
        load_episode(bad)

    bad = _corrupt(episode, tmp_path, "truncated_states")
    data = (bad / "states.npz").read_bytes()
    (bad / "states.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"states\.npz: unreadable or truncated"):
        load_episode(bad)

    bad = _corrupt(episode, tmp_path, "short_states")
    with np.load(bad / "states.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(bad / "states.npz", **{k: v[:-1] for k, v in arrays.items()})
    with pytest.raises(ValueError, match=r"states\.npz: 'time' has shape"):
        load_episode(bad)

    bad = _corrupt(episode, tmp_path, "nan_states")
    arrays["rope_vertices"] = arrays["rope_vertices"].copy()
    arrays["rope_vertices"][2, 5, 1] = np.nan
    np.savez(bad / "states.npz", **arrays)
    with pytest.raises(ValueError, match=r"'rope_vertices' holds NaN"):
        load_episode(bad)

    import cv2

    bad = _corrupt(episode, tmp_path, "wrong_size")
    cv2.imwrite(str(bad / "cam1" / "depth" / "000000.png"), np.zeros((24, 32), np.uint16))
    with pytest.raises(ValueError, match=r"cam1/depth/000000\.png: depth image is \(24, 32\)"):
        load_episode(bad)
    with pytest.raises(ValueError, match=r"cam1/depth/000000\.png: image is 32x24, camera 'cam1' is 64x48"):
        load_episode(bad, images=False)

    bad = _corrupt(episode, tmp_path, "bad_meta")
    meta = json.loads((bad / "meta.json").read_text())
    meta["cameras"][0]["K"] = [[1, 0], [0, 1]]
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"meta\.json: cameras\[0\]: 'K' must be a finite 3x3"):
        load_episode(bad)
    del meta["cameras"]
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"meta\.json: missing field 'cameras'"):
        load_episode(bad)
    (bad / "meta.json").unlink()
    with pytest.raises(ValueError, match=r"meta\.json: missing"):
        load_episode(bad)


def test_config_file_is_validated(tmp_path):
    config = load_config()
    assert isinstance(config, EpisodeConfig) and config.cameras.n == 4 and config.fps == 10.0
    bad = tmp_path / "perception.yaml"
    bad.write_text("rope:\n  n_vertices: 32\n  stiffness: 3\n")
    with pytest.raises(ValueError, match=r"unknown key 'rope\.stiffness'"):
        load_config(bad)
    bad.write_text("cameras:\n  width: -5\n")
    with pytest.raises(ValueError, match=r"'width' must be an integer"):
        load_config(bad)
    bad.write_text("push:\n  length_range: [0.2, 0.1]\n")
    with pytest.raises(ValueError, match=r"'push\.length_range' must be \[low, high\]"):
        load_config(bad)


def test_optional_cloth_lies_flat_on_the_table(robot):
    from robot_dyn.sim.deformables import ClothConfig, flex_vertices

    cloth = ClothConfig(count=6, spacing=0.03)
    sim = make_backend("mujoco", robot, scene=DeformableScene(TABLE, rope=None, cloth=cloth, pusher=None))
    sim.reset(robot.home)
    for _ in range(100):
        sim.step(np.zeros(robot.n_joints))
    v = flex_vertices(sim.model, sim.data, "cloth")
    assert v.shape == (36, 3) and np.allclose(v[:, 2], TABLE.height + cloth.radius, atol=1.5e-3)
