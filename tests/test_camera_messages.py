"""The live camera path without a graph: conversions between camera data and ROS messages
(robot_dyn.nodes.camera_messages), the synchroniser, the newest-only hand-over, frame-set
checks and the sim-side capture (robot_dyn.perception.live)."""
import os
import threading
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
from sensor_msgs.msg import Image, PointCloud2

from robot_dyn.nodes import camera_messages as cm
from robot_dyn.perception.cameras import CameraCalibration, CameraFrame, intrinsics, project
from robot_dyn.perception.baseline import PointCloudTracker
from robot_dyn.perception.live import (JointHistory, LatestSlot, LiveTracker, StampSynchronizer, check_frame_set,
                                       labelled_particles)


def _calibration(name="cam0", w=8, h=6):
    T = np.eye(4)
    T[:3, :3] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # looking straight down
    T[:3, 3] = -T[:3, :3] @ np.array([0.5, 0.0, 1.0])
    return CameraCalibration(name, intrinsics(45.0, w, h), T, w, h)


# --- images ---------------------------------------------------------------------

def test_images_round_trip_with_ros_encodings():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 2.0, (6, 8)).astype(np.float32)
    depth[0, :3] = 0.0  # no return
    mask = rng.random((6, 8)) > 0.5
    color, d, m = cm.frame_msgs(CameraFrame("cam0", rgb, depth, mask), 12.5)
    assert (color.encoding, d.encoding, m.encoding) == ("rgb8", "32FC1", "mono8")
    assert color.header.frame_id == d.header.frame_id == "cam0_optical_frame"
    assert cm.stamp_ns(color.header.stamp) == cm.stamp_ns(m.header.stamp) == 12_500_000_000
    raw = np.frombuffer(bytes(d.data), "<f4").reshape(6, 8)
    assert np.all(np.isnan(raw[0, :3])), "no return is NaN on the wire (REP 118)"
    assert set(np.unique(np.frombuffer(bytes(m.data), np.uint8))) <= {0, 255}
    assert np.array_equal(cm.color_from_msg(color), rgb)
    assert np.array_equal(cm.depth_from_msg(d), depth)  # NaN back to 0 = invalid
    assert np.array_equal(cm.mask_from_msg(m), mask)


def test_other_camera_encodings_and_row_padding():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgr = Image(height=2, width=3, encoding="bgr8", step=12,  # 3 bytes of padding per row
                data=np.hstack([rgb[..., ::-1].reshape(2, 9), np.zeros((2, 3), np.uint8)]).tobytes())
    assert np.array_equal(cm.color_from_msg(bgr), rgb)
    mm = np.array([[0, 1500], [65535, 250]], np.uint16)
    d16 = Image(height=2, width=2, encoding="16UC1", step=4, data=mm.astype("<u2").tobytes())
    assert np.allclose(cm.depth_from_msg(d16), [[0.0, 1.5], [65.535, 0.25]])
    big = np.array([[1.25, np.inf], [-1.0, np.nan]], ">f4")
    dbe = Image(height=2, width=2, encoding="32FC1", is_bigendian=1, step=8, data=big.tobytes())
    assert np.array_equal(cm.depth_from_msg(dbe), [[1.25, 0.0], [0.0, 0.0]])  # inf, negative, NaN: no return


@pytest.mark.parametrize("msg, field", [
    (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)), "depth: encoding"),
    (Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(12)), "depth: data"),
    (Image(height=2, width=2, encoding="32FC1", step=4, data=bytes(8)), "depth: step"),
    (Image(height=0, width=2, encoding="32FC1", step=8, data=b""), "depth: height/width"),
])
def test_malformed_images_name_the_field(msg, field):
    with pytest.raises(ValueError, match=field):
        cm.depth_from_msg(msg, "depth")


def test_camera_info_and_pose_give_back_the_calibration():
    cal = _calibration(w=160, h=120)
    info = cm.camera_info_msg(cal, 1.0)
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], cal.K) and info.header.frame_id == "cam0_optical_frame"
    pose = cm.camera_pose_msg(cal, 1.0, "world")
    assert (pose.header.frame_id, pose.child_frame_id) == ("world", "cam0_optical_frame")
    assert np.allclose([pose.transform.translation.x, pose.transform.translation.y, pose.transform.translation.z],
                       [0.5, 0.0, 1.0])  # the camera's position in the world
    back = cm.calibration_from_msgs("cam0", info, cm.world_to_cam_from_msg(pose, "world"))
    assert np.allclose(back.K, cal.K) and np.allclose(back.world_to_cam, cal.world_to_cam, atol=1e-12)
    assert (back.width, back.height) == (160, 120)


def test_bad_camera_info_and_pose_name_the_field():
    cal = _calibration()
    info = cm.camera_info_msg(cal, 0.0)
    info.k = [0.0] * 9  # an uncalibrated camera
    with pytest.raises(ValueError, match="camera_info: k"):
        cm.intrinsics_from_msg(info)
    info = cm.camera_info_msg(cal, 0.0)
    info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="camera_info: d: nonzero distortion"):
        cm.intrinsics_from_msg(info)
    pose = cm.camera_pose_msg(cal, 0.0, "map")
    with pytest.raises(ValueError, match="pose: header.frame_id: expected 'world'"):
        cm.world_to_cam_from_msg(pose, "world")
    pose = cm.camera_pose_msg(cal, 0.0, "world")
    pose.transform.rotation.w = 3.0
    with pytest.raises(ValueError, match="pose: transform: .*quaternion norm"):
        cm.world_to_cam_from_msg(pose, "world")


def test_frame_whose_image_size_differs_from_camera_info_is_refused():
    cal = _calibration(w=8, h=6)
    info = cm.camera_info_msg(cal, 0.0)
    frame = CameraFrame("cam0", np.zeros((6, 8, 3), np.uint8), np.ones((6, 8), np.float32), np.ones((6, 8), bool))
    color, depth, mask = cm.frame_msgs(frame, 0.0)
    small = cm.mask_msg(np.ones((5, 8), bool), 0.0, "cam0_optical_frame")
    assert cm.frame_from_msgs("cam0", color, depth, mask, info).depth.shape == (6, 8)
    with pytest.raises(ValueError, match=r"/cameras/cam0/mask: height/width: image is 8x5, /cameras/cam0/color/camera_info says 8x6"):
        cm.frame_from_msgs("cam0", color, depth, small, info)


# --- point clouds ------------------------------------------------------------------

def test_particles_point_cloud_round_trip():
    pts, labels = labelled_particles(np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]), np.array([1.0, 2.0, 3.0]))
    msg = cm.particles_msg(pts, labels, 3.0, "world")
    assert [f.name for f in msg.fields] == ["x", "y", "z", "label"] and msg.point_step == 16 and msg.width == 3
    xyz, lab = cm.points_from_cloud(msg)
    assert np.allclose(xyz, pts, atol=1e-7) and lab.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="NaN"):
        cm.particles_msg([[np.nan, 0, 0]], [0], 0.0)
    broken = PointCloud2(height=1, width=3, point_step=16, row_step=48, fields=msg.fields[1:], data=msg.data)
    with pytest.raises(ValueError, match="cloud: fields: no 'x'"):
        cm.points_from_cloud(broken)


# --- synchronisation and hand-over ---------------------------------------------------

def test_synchroniser_matches_stamps_and_names_silent_streams():
    keys = [("a", "color"), ("a", "info"), ("b", "color"), ("b", "info")]
    sync = StampSynchronizer(keys)
    out = []
    for stamp in (100, 200):  # two captures, their messages interleaved
        for k in keys[:3]:
            assert sync.add(k, stamp, (k, stamp)) is None
    out.append(sync.add(("b", "info"), 200, "late"))
    assert out[0][0] == 200 and out[0][1][("a", "color")] == (("a", "color"), 200) and out[0][1][("b", "info")] == "late"
    assert sync.discarded == 3  # the incomplete capture at 100 is stale now
    assert all(not q for q in sync.queues.values())
    silent = StampSynchronizer(keys, queue_size=2)
    for stamp in range(10):
        for k in keys[:3]:
            assert silent.add(k, stamp, None) is None
    assert silent.missing() == [("b", "info")] and max(len(q) for q in silent.queues.values()) <= 2


def test_synchroniser_with_slop_pairs_nearby_stamps():
    sync = StampSynchronizer(["x", "y"], slop_ns=5)
    assert sync.add("x", 100, 1) is None
    assert sync.add("y", 120, 2) is None  # too far
    assert sync.add("x", 118, 3)[1] == {"x": 3, "y": 2}


def test_latest_slot_keeps_the_newest_and_counts_drops():
    slot = LatestSlot()
    taken = []

    def worker():
        while (item := slot.take(timeout=1.0)) is not None:
            taken.append(item)
            time.sleep(0.02)  # slower than the producer

    thread = threading.Thread(target=worker)
    thread.start()
    for i in range(50):
        slot.put(i)
        time.sleep(0.002)
    time.sleep(0.1)
    slot.close()
    thread.join(5)
    assert taken[-1] == 49 and taken == sorted(taken)
    assert slot.dropped == 50 - len(taken) and slot.dropped > 20


def test_frame_set_checks():
    cal = _calibration()
    ok = CameraFrame("cam0", np.zeros((6, 8, 3), np.uint8), np.ones((6, 8), np.float32), np.ones((6, 8), bool))
    empty = CameraFrame("cam1", ok.rgb, ok.depth, np.zeros((6, 8), bool))
    cal1 = CameraCalibration("cam1", cal.K, cal.world_to_cam, 8, 6)
    assert check_frame_set([ok, empty], [cal, cal1]) == ["cam1"]  # one occluded view is fine
    with pytest.raises(ValueError, match="mask: empty in every camera"):
        check_frame_set([empty], [cal1])
    nodepth = CameraFrame("cam0", ok.rgb, np.zeros((6, 8), np.float32), ok.mask)  # NaN depth arrives as 0
    with pytest.raises(ValueError, match="depth: no valid value in any camera"):
        check_frame_set([nodepth], [cal])
    corner = np.zeros((6, 8), bool)
    corner[0, 0] = True
    outside = CameraFrame("cam0", ok.rgb, np.where(corner, 1.0, 0.0).astype(np.float32), ~corner)
    with pytest.raises(ValueError, match="mask: empty in every camera"):  # depth only outside the mask
        check_frame_set([outside], [cal])
    wrong = CameraFrame("cam0", ok.rgb[:5], ok.depth, ok.mask)
    with pytest.raises(ValueError, match="cam0: rgb: image is 8x5, camera_info says 8x6"):
        check_frame_set([wrong], [cal])


def test_joint_history_interpolates_at_the_stamp_within_tolerance():
    h = JointHistory(horizon_s=1e-7)  # 100 ns
    for k in range(50):
        h.add(k * 10, np.full(7, float(k)))
    assert h.at(480, 3)[0] == 48 and h.at(484, 6)[0] == pytest.approx(48.4) and h.at(478, 3)[0] == 48
    assert h.at(495, 3) is None and h.at(495, 5)[0] == 49  # only the state before: the nearest
    assert h.at(100, 3) is None and len(h._stamps) < 30  # older than the horizon: forgotten
    late = threading.Timer(0.05, h.add, (500, np.full(7, 50.0)))
    late.start()
    assert h.at(500, 0, wait_s=2.0)[0] == 50  # waits for the state of the images' tick
    h.add(5, np.zeros(7))  # a restarted clock
    assert h.at(5, 0)[0] == 0 and h.at(481, 3) is None


# --- the rendered scene: messages carry what the cameras see ---------------------------

@pytest.fixture(scope="module")
def scene():
    """The rope scene with the configured rig at 64x48 (no shadows), the rope in a random shape."""
    from robot_dyn.perception.episodes import load_config
    from robot_dyn.perception.live import SimCameraCapture
    from robot_dyn.robots import load_robot
    from robot_dyn.sim.backend import make_backend
    from robot_dyn.sim.deformables import DeformableScene, random_rope_shape, set_flex_vertices

    config = load_config().with_images(64, 48, shadow_size=0)
    robot = load_robot(config.robot)

    def build():
        rig = config.cameras.build()
        sim = make_backend("mujoco", robot, scene=[DeformableScene(config.table, config.rope, pusher=config.pusher), rig])
        sim.reset(robot.home)
        set_flex_vertices(sim.model, sim.data, random_rope_shape(np.random.default_rng(2), config.rope, config.table))
        return sim, rig

    sim, rig = build()
    capture = SimCameraCapture(sim.model, rig, rate_hz=50.0)
    yield build, sim, capture, robot
    capture.close()


def test_capturing_between_ticks_leaves_physics_bit_identical(scene):
    build, _, _, robot = scene
    from robot_dyn.perception.live import SimCameraCapture

    def run(cameras):
        sim, rig = build()
        capture = SimCameraCapture(sim.model, rig, rate_hz=50.0) if cameras else None
        captures = 0
        for k in range(200):
            sim.step(2.0 * np.sin(np.arange(robot.n_joints) + 0.01 * k))
            if capture is not None and capture.due(sim.time):
                capture.capture(sim.data)
                captures += 1
        if capture is not None:
            capture.close()
        return sim.data.qpos.copy(), sim.data.qvel.copy(), captures

    q0, v0, _ = run(False)
    q1, v1, captures = run(True)
    assert captures == 11  # at sim time 0 (the first step) and every 20 ms up to 0.2 s
    assert np.array_equal(q0, q1) and np.array_equal(v0, v1)


def test_messages_carry_a_calibration_that_projects_the_rope_into_its_mask(scene):
    _, sim, capture, _ = scene
    shot = capture.capture(sim.data)
    vertices = shot.vertices["rope"]
    hits = total = 0
    for frame, cal in zip(shot.frames, capture.calibrations):
        color, depth, mask = cm.frame_msgs(frame, shot.time)
        info, pose = cm.camera_info_msg(cal, shot.time), cm.camera_pose_msg(cal, shot.time)
        back = cm.frame_from_msgs(cal.name, color, depth, mask, info)
        assert np.array_equal(back.rgb, frame.rgb) and np.array_equal(back.mask, frame.mask)
        assert np.array_equal(back.depth, frame.depth)
        received = cm.calibration_from_msgs(cal.name, info, cm.world_to_cam_from_msg(pose))
        uv, z = project(vertices, received.K, received.world_to_cam)
        px = np.round(uv).astype(int)
        inside = (z > 0) & (px[:, 0] >= 0) & (px[:, 0] < cal.width) & (px[:, 1] >= 0) & (px[:, 1] < cal.height)
        hits += int(back.mask[px[inside, 1], px[inside, 0]].sum())
        total += len(vertices)
    assert hits > 0.8 * total, f"only {hits} of {total} projected rope vertices land in the masks"


def test_live_tracker_gives_particles_on_the_rope_and_restarts_on_a_new_calibration(scene):
    _, sim, capture, _ = scene
    from robot_dyn.sim.deformables import polyline_distance

    shot = capture.capture(sim.data)
    live = LiveTracker(PointCloudTracker, n_particles=20, min_spacing=0.01)
    result = live.step(shot.frames, capture.calibrations)
    assert result.initialised and result.particles.shape == (20, 3)
    assert np.max(polyline_distance(result.particles, shot.vertices["rope"])) < 0.015
    again = live.step(shot.frames, capture.calibrations)
    assert not again.initialised and live.initialisations == 1
    same = [CameraCalibration(c.name, c.K.copy(), c.world_to_cam.copy(), c.width, c.height) for c in capture.calibrations]
    assert not live.step(shot.frames, same).initialised  # equal calibrations (as parsed again from each set's messages)
    shifted = capture.calibrations[:3] + [CameraCalibration("cam3", capture.calibrations[3].K * [[1.01], [1.01], [1]],
                                                            capture.calibrations[3].world_to_cam, 64, 48)]
    assert live.step(shot.frames, shifted).initialised and live.initialisations == 2  # a new calibration: start again
