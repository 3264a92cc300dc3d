"""The LeRobot v3.0 export of recorded episodes (synthetic bags written by our recorder's writer): the fixed
clock, exact states and actions, the metadata lerobot reads, decodable videos, and bad episodes refused."""
import json

import imageio
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from robot_dyn.recording.episode_bag import TYPESTORE, EpisodeBag, RecordingError
from robot_dyn.recording.lerobot_export import export_lerobot, read_lerobot, resample_episode
from robot_dyn.robots import load_robot

ROBOT = load_robot("panda")
T = TYPESTORE.types
TOPICS = {"/joint_states": "sensor_msgs/msg/JointState", "/controller/twist_command": "geometry_msgs/msg/TwistStamped",
          "/cameras/cam0/color/image_raw": "sensor_msgs/msg/Image"}


def header(ns, frame=""):
    return T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](ns // 1_000_000_000, ns % 1_000_000_000), frame)


def cdr(msg, msgtype):
    return bytes(TYPESTORE.serialize_cdr(msg, msgtype))


def q_at(ns):
    return ROBOT.home + 0.1 * np.sin(ns * 1e-9 + np.arange(7))


def image_at(ns, h=6, w=8):
    return np.full((h, w, 3), (ns // 100_000_000 * 40) % 256, np.uint8)


def write_episode(path, task="insert", start_ns=3_000_000_000, seconds=1.0, twist_frame="panda_link0", size=(6, 8),
                  commands=True):
    """States at 500 Hz from start_ns; images at 10 Hz on the 0.1 s grid; a twist every 20 ms for the
    first half, then none (the action must fall to zero 0.1 s after the last)."""
    bag = EpisodeBag(path, TOPICS)
    n = int(seconds * 500)
    for k in range(n):
        ns = start_ns + k * 2_000_000
        msg = T["sensor_msgs/msg/JointState"](header(ns), list(ROBOT.joint_names), q_at(ns), np.zeros(7), np.zeros(7))
        bag.write("/joint_states", ns, cdr(msg, "sensor_msgs/msg/JointState"))
        if ns % 100_000_000 == 0:
            h, w = size
            img = T["sensor_msgs/msg/Image"](header(ns, "cam0_optical_frame"), h, w, "rgb8", 0, 3 * w,
                                             image_at(ns, h, w).ravel())
            bag.write("/cameras/cam0/color/image_raw", ns, cdr(img, "sensor_msgs/msg/Image"))
        if commands and k % 10 == 5 and k < n // 2:
            twist = T["geometry_msgs/msg/Twist"](T["geometry_msgs/msg/Vector3"](0.0, 1.0, 0.0),
                                                 T["geometry_msgs/msg/Vector3"](0.0, 0.0, -0.5))
            bag.write("/controller/twist_command", ns,
                      cdr(T["geometry_msgs/msg/TwistStamped"](header(ns, twist_frame), twist), "geometry_msgs/msg/TwistStamped"))
    bag.close({"task": task, "success": "true", "robot": "panda"})
    return path


def test_episodes_export_on_a_fixed_clock_with_exact_states_and_actions(tmp_path):
    episodes = [write_episode(tmp_path / "a"), write_episode(tmp_path / "b", task="pusht", start_ns=7_000_000_000, seconds=0.6)]
    report = export_lerobot(episodes, tmp_path / "ds", fps=10)
    root = report.out
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["total_episodes"] == 2
    assert info["total_frames"] == report.frames == 10 + 6 and info["total_tasks"] == 2
    assert info["features"]["observation.state"]["names"] == list(ROBOT.joint_names)
    assert info["features"]["observation.images.cam0"]["shape"] == [6, 8, 3]
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert list(tasks.index) == ["insert", "pusht"] and list(tasks["task_index"]) == [0, 1]
    meta = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(m["dataset_from_index"], m["dataset_to_index"]) for m in meta] == [(0, 10), (10, 16)]
    assert meta[1]["videos/observation.images.cam0/to_timestamp"] == pytest.approx(0.6)
    data = pq.read_table(root / "data/chunk-000/file-001.parquet").to_pydict()
    assert data["index"] == list(range(10, 16)) and data["frame_index"] == list(range(6)) and set(data["task_index"]) == {1}

    exported = read_lerobot(root)
    for e, (episode, start) in enumerate(zip(episodes, (3_000_000_000, 7_000_000_000))):
        frames = exported[e]
        grid = start + np.arange(len(frames["state"])) * 100_000_000
        assert np.array_equal(frames["state"], np.array([q_at(ns) for ns in grid], np.float32))
        assert np.array_equal(frames["timestamp"], (np.arange(len(grid)) / 10).astype(np.float32))
        # commands every 20 ms for the first half: live there; none live 0.1 s after the last
        last_command = start + (int(len(grid) * 50 / 2) - 5) * 2_000_000
        live = (grid >= start + 10_000_000) & (grid <= last_command + 100_000_000)
        assert np.array_equal(frames["action"][live], np.tile(np.float32([0, 1, 0, 0, 0, -0.5]), (live.sum(), 1)))
        assert not frames["action"][~live].any()
        video = root / f"videos/observation.images.cam0/chunk-000/file-{e:03d}.mp4"
        decoded = np.stack(list(imageio.v3.imiter(video)))
        assert decoded.shape == (len(grid), 6, 8, 3)
        assert np.abs(decoded.astype(float) - np.array([image_at(ns) for ns in grid])).mean() < 8.0
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [16] and len(stats["action"]["q99"]) == 6
    assert np.array(stats["observation.images.cam0"]["mean"]).shape == (3, 1, 1)


def test_bad_episodes_are_refused_and_nothing_half_written_stays(tmp_path):
    with pytest.raises(RecordingError, match="even sizes"):
        export_lerobot([write_episode(tmp_path / "odd", size=(5, 8))], tmp_path / "ds1", fps=10)
    with pytest.raises(RecordingError, match="frames \\['panda_link8'\\]"):
        export_lerobot([write_episode(tmp_path / "ee", twist_frame="panda_link8")], tmp_path / "ds2", fps=10)
    with pytest.raises(RecordingError, match="cameras \\['wrist'\\] were not recorded"):
        resample_episode(write_episode(tmp_path / "ok"), 10, cameras=["wrist"])
    with pytest.raises(RecordingError, match="integer frame rate"):
        export_lerobot([tmp_path / "ok"], tmp_path / "ds3", fps=7.5)
    with pytest.raises(RecordingError, match="no metadata.yaml"):
        export_lerobot([tmp_path / "missing"], tmp_path / "ds4", fps=10)
    assert not any(p.name.startswith("ds") for p in tmp_path.iterdir())  # neither the dataset nor its .partial
    (tmp_path / "taken").mkdir()
    with pytest.raises(RecordingError, match="exists already"):
        export_lerobot([tmp_path / "ok"], tmp_path / "taken", fps=10)
