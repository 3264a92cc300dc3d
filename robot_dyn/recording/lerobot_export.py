"""Recorded episodes -> a LeRobot v3.0 dataset (what lerobot 0.4.x's LeRobotDataset reads).

Layout (lerobot's path templates; one data file and one video file per episode and camera, so an
export appends nothing to a file another episode owns):
  meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet
  data/chunk-CCC/file-FFF.parquet, videos/observation.images.<camera>/chunk-CCC/file-FFF.mp4
with episode e in chunk e // 1000, file e % 1000.

Every episode is resampled onto one fixed clock, frame k at t0 + k / fps, with `timestamp` written as
exactly frame_index / fps (a frame's time that is not on this grid is what LeRobot's users meet
most as errors: its video decoder accepts 0.1 ms). t0 is the first camera frame (else the first
state); the episode ends at the last state. Each frame holds what was last known at its time:
- observation.state (float32, n): the measured joint positions, rad, URDF joint order;
- action (float32, 6): the operator's command in force, the unitless twist [vx vy vz wx wy wz] in
  the base frame as sent on /controller/twist_command (zero when none was live: older than the
  controller's twist timeout). A command's time is its stamp, or when it was recorded if stamped 0. This is what a policy outputs through the same interface;
- observation.images.<camera>: the camera's color image (MP4, H.264, yuv420p, constant frame rate).
States come at 500 Hz and images at the camera rate, so at 10 fps they fall exactly on the grid
(t0 is a camera frame's stamp).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_dyn.recording.episode_bag import TYPESTORE, RecordingError, episode_facts, header_ns, message_time

CODEBASE_VERSION = "v3.0"
CHUNK_SIZE = 1000
TWIST_AXES = ("vx", "vy", "vz", "wx", "wy", "wz")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
TWIST_TIMEOUT = 0.1  # s, the controller's default twist_timeout_s: an older command no longer moves the arm
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


@dataclass
class EpisodeFrames:
    """One episode on the fixed clock: T frames."""

    task: str
    state: np.ndarray  # (T, n) rad
    action: np.ndarray  # (T, 6) unitless twist, base frame
    images: dict = field(default_factory=dict)  # camera -> (T, H, W, 3) uint8
    joint_names: tuple = ()
    robot: str = ""


def _held(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each grid time, the index of the last stamp at or before it (-1: none yet)."""
    return np.searchsorted(stamps, grid, side="right") - 1


def resample_episode(path: Path, fps: float, cameras=None) -> EpisodeFrames:
    """An episode folder (the recorder's rosbag2) as frames on the fixed clock (see the module's text).
    cameras: the camera names to include (default: every camera recorded). RecordingError names what
    is missing or wrong."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    facts = episode_facts(path)
    with Reader(path) as reader:
        by_topic = {c.topic: c for c in reader.connections}

        def messages(topic, with_log_time=False):
            connection = by_topic.get(topic)
            if connection is None:
                return []
            out = [(t, TYPESTORE.deserialize_cdr(d, connection.msgtype)) for _, t, d in reader.messages(connections=[connection])]
            return out if with_log_time else [m for _, m in out]

        states = messages("/joint_states")
        twists = messages("/controller/twist_command", with_log_time=True)
        recorded = sorted(t.split("/")[2] for t in by_topic if t.startswith("/cameras/") and t.endswith("/color/image_raw"))
        cameras = recorded if cameras is None else list(cameras)
        unknown = sorted(set(cameras) - set(recorded))
        if unknown:
            raise RecordingError(f"{path}: cameras {unknown} were not recorded (recorded: {recorded})")
        images = {name: messages(f"/cameras/{name}/color/image_raw") for name in cameras}
    if not states:
        raise RecordingError(f"{path}: no /joint_states: nothing to export")
    for name, frames in images.items():
        if not frames:
            raise RecordingError(f"{path}: /cameras/{name}/color/image_raw has no messages")
        if frames[0].encoding != "rgb8":
            raise RecordingError(f"{path}: /cameras/{name}/color/image_raw: encoding '{frames[0].encoding}', expected rgb8")
    joint_names = tuple(states[0].name)
    state_t = np.array([header_ns(m.header) for m in states])
    if np.any(np.diff(state_t) <= 0):
        raise RecordingError(f"{path}: /joint_states stamps do not increase")
    # the first frame: the first image of the first camera once every camera and the states have begun
    t0 = max([int(state_t[0])] + [header_ns(frames[0].header) for frames in images.values()])
    if images:
        first = np.array([header_ns(m.header) for m in next(iter(images.values()))])
        t0 = int(first[first >= t0][0])
    period_ns = 1e9 / fps
    count = int(np.floor((state_t[-1] - t0) / period_ns + 1e-6)) + 1
    grid = t0 + np.round(np.arange(count) * period_ns).astype(np.int64)
    state = np.array([m.position for m in states], float)[_held(state_t, grid)]
    action = np.zeros((count, 6))
    if twists:
        twist_t = np.array([message_time(t, m.header) for t, m in twists])
        order = np.argsort(twist_t, kind="stable")
        twist_t = twist_t[order]
        values = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z,
                            m.twist.angular.x, m.twist.angular.y, m.twist.angular.z] for _, m in twists])[order]
        frames_of = [twists[i][1].header.frame_id for i in order]
        held = _held(twist_t, grid)
        live = (held >= 0) & (grid - twist_t[np.maximum(held, 0)] <= TWIST_TIMEOUT * 1e9)
        from robot_dyn.robots import load_robot

        base = load_robot(facts.get("robot", "panda")).base_link
        foreign = {f for f in frames_of if f not in ("", base)}
        if foreign:
            raise RecordingError(f"{path}: twist commands in frames {sorted(foreign)}: only base-frame commands export")
        action[live] = values[held[live]]
    out = {}
    for name, frames in images.items():
        stamps = np.array([header_ns(m.header) for m in frames])
        held = _held(stamps, grid)
        if np.any(held < 0):
            raise RecordingError(f"{path}: camera {name} has no image at the episode's start")
        h, w = frames[0].height, frames[0].width
        out[name] = np.stack([np.asarray(frames[i].data, np.uint8).reshape(h, w, 3) for i in held])
    return EpisodeFrames(facts.get("task", "demo"), state, action, out, joint_names, facts.get("robot", ""))


def _encode(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 MP4, yuv420p, constant frame rate: frame k at k / fps (imageio's bundled ffmpeg)."""
    import imageio.v2 as imageio

    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise RecordingError(f"{path}: images of {w}x{h} px: yuv420p video needs even sizes")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio.get_writer(str(path), fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1,
                                ffmpeg_log_level="error", ffmpeg_params=["-g", "2"])
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()


def _stats(values: np.ndarray) -> dict:
    """min, max, mean, std, count and quantiles per component of (N, D) values (LeRobot's stats)."""
    out = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0)}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(values, q, axis=0)
    out = {k: v.tolist() for k, v in out.items()}
    out["count"] = [int(values.shape[0])]
    return out


def _image_stats(frames: np.ndarray) -> dict:
    """Per-channel stats of images scaled to [0, 1], shaped (3, 1, 1) as LeRobot keeps them."""
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    stats = _stats(pixels)
    out = {k: [[[v]] for v in vals] for k, vals in stats.items() if k != "count"}
    out["count"] = [int(frames.shape[0])]
    return out


@dataclass
class ExportReport:
    out: Path
    episodes: int
    frames: int
    seconds_per_episode: list


def export_lerobot(episodes, out: Path, fps: float, cameras=None, robot_type: str | None = None) -> ExportReport:
    """Write the episodes (recorder folders) as one LeRobot v3.0 dataset at `out` (must not exist)."""
    import time

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if not (np.isfinite(fps) and fps > 0 and float(fps).is_integer()):
        raise RecordingError(f"--fps: LeRobot keeps an integer frame rate, got {fps}")
    fps = int(fps)
    if out.exists():
        raise RecordingError(f"{out} exists already: export into a new folder")
    episodes = [Path(e) for e in episodes]
    if not episodes:
        raise RecordingError("no episodes to export")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tasks: dict[str, int] = {}
    rows, timings, all_state, all_action, all_images = [], [], [], [], {}
    features = None
    index = 0
    try:
        for e, episode in enumerate(episodes):
            started = time.perf_counter()
            frames = resample_episode(episode, fps, cameras)
            n, length = frames.state.shape[1], frames.state.shape[0]
            episode_features = {"observation.state": {"dtype": "float32", "shape": [n], "names": list(frames.joint_names)},
                                "action": {"dtype": "float32", "shape": [6], "names": list(TWIST_AXES)}}
            for name, images in frames.images.items():
                h, w = images.shape[1:3]
                episode_features[f"observation.images.{name}"] = {
                    "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                    "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                             "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}}
            if features is None:
                features = episode_features
            elif episode_features != features:
                raise RecordingError(f"{episode}: its joints or cameras differ from the first episode's ({episodes[0]})")
            task_index = tasks.setdefault(frames.task, len(tasks))
            robot_type = robot_type or frames.robot or None  # the recorded robot, unless told
            chunk, file = divmod(e, CHUNK_SIZE)
            table = pa.table({
                "observation.state": pa.array(frames.state.astype(np.float32).tolist(), pa.list_(pa.float32(), n)),
                "action": pa.array(frames.action.astype(np.float32).tolist(), pa.list_(pa.float32(), 6)),
                "timestamp": pa.array((np.arange(length) / fps).astype(np.float32), pa.float32()),
                "frame_index": pa.array(np.arange(length), pa.int64()),
                "episode_index": pa.array(np.full(length, e), pa.int64()),
                "index": pa.array(index + np.arange(length), pa.int64()),
                "task_index": pa.array(np.full(length, task_index), pa.int64()),
            })
            data_file = tmp / DATA_PATH.format(chunk_index=chunk, file_index=file)
            data_file.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, data_file)
            row = {"episode_index": e, "tasks": [frames.task], "length": length, "data/chunk_index": chunk,
                   "data/file_index": file, "dataset_from_index": index, "dataset_to_index": index + length,
                   "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for name, images in frames.images.items():
                key = f"observation.images.{name}"
                _encode(tmp / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file), images, fps)
                row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                            f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": length / fps})
                all_images.setdefault(key, []).append(images[:: max(1, length // 20)])  # sampled, as LeRobot does
            rows.append(row)
            all_state.append(frames.state)
            all_action.append(frames.action)
            index += length
            timings.append(time.perf_counter() - started)
        meta = tmp / "meta"
        (meta / "episodes/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), meta / "episodes/chunk-000/file-000.parquet")
        pd.DataFrame({"task_index": list(tasks.values())}, index=list(tasks)).to_parquet(meta / "tasks.parquet")
        stats = {"observation.state": _stats(np.concatenate(all_state)), "action": _stats(np.concatenate(all_action))}
        stats.update({key: _image_stats(np.concatenate(chunks)) for key, chunks in all_images.items()})
        (meta / "stats.json").write_text(json.dumps(stats, indent=2))
        scalar = {"dtype": "int64", "shape": [1], "names": None}
        features.update({"timestamp": {"dtype": "float32", "shape": [1], "names": None}, "frame_index": scalar,
                         "episode_index": scalar, "index": scalar, "task_index": scalar})
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes),
                "total_frames": index, "total_tasks": len(tasks), "chunks_size": CHUNK_SIZE, "data_files_size_in_mb": 100,
                "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
                "data_path": DATA_PATH, "video_path": VIDEO_PATH if all_images else None, "features": features}
        (meta / "info.json").write_text(json.dumps(info, indent=2))
        tmp.rename(out)  # the dataset appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportReport(out, len(episodes), index, timings)


def read_lerobot(root: Path) -> dict:
    """Our own reader of an export's tabular part: episode index -> {'state', 'action', 'timestamp'} (float32
    arrays), for round-trip checks without lerobot."""
    import pyarrow.parquet as pq

    root = Path(root)
    info = json.loads((root / "meta/info.json").read_text())
    out = {}
    for file in sorted((root / "data").glob("*/*.parquet")):
        table = pq.read_table(file).to_pydict()
        for e in sorted(set(table["episode_index"])):
            rows = [i for i, v in enumerate(table["episode_index"]) if v == e]
            out[e] = {"state": np.array([table["observation.state"][i] for i in rows], np.float32),
                      "action": np.array([table["action"][i] for i in rows], np.float32),
                      "timestamp": np.array([table["timestamp"][i] for i in rows], np.float32),
                      "fps": info["fps"]}
    return out
