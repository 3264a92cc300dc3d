"""Reading an episode back for replay: its commands on their recorded clock, its measured motion, and how
closely a replay repeats it.

Times are the messages' header stamps (the graph's clock; a command stamped 0, 'now', at its
recording time), made relative to the episode's first joint state, so a replay can send each command at the same offset from its own start. Arrays:
joint positions rad in the robot's joint order; end-effector positions m, base frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from robot_dyn.recording.episode_bag import TYPESTORE, RecordingError, header_ns, message_time


@dataclass(frozen=True)
class TwistCommand:
    t: float  # s after the episode's first state
    linear: np.ndarray  # (3,) as sent (the controller's units)
    angular: np.ndarray  # (3,)
    frame_id: str


@dataclass(frozen=True)
class RecordedEpisode:
    t: np.ndarray  # (T,) s after the first state
    q: np.ndarray  # (T, n) rad, in `joint_names` order
    joint_names: tuple
    commands: list  # TwistCommand, in time order


def read_episode(path: Path, joint_names) -> RecordedEpisode:
    """The states and twist commands of the episode at `path`; RecordingError names what is missing."""
    path = Path(path)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises its own errors for a folder that is not a finished bag
        raise RecordingError(f"{path}: not a readable rosbag2 folder ({exc})") from None
    try:
        by_topic = {c.topic: c for c in reader.connections}
        if "/joint_states" not in by_topic:
            raise RecordingError(f"{path}: no /joint_states recorded")
        states = [TYPESTORE.deserialize_cdr(d, c.msgtype) for c, _, d in reader.messages(connections=[by_topic["/joint_states"]])]
        twists = [(t, TYPESTORE.deserialize_cdr(d, c.msgtype)) for c, t, d in
                  reader.messages(connections=[by_topic["/controller/twist_command"]])] if "/controller/twist_command" in by_topic else []
    finally:
        reader.close()
    if not states:
        raise RecordingError(f"{path}: /joint_states has no messages")
    names = list(states[0].name)
    missing = [j for j in joint_names if j not in names]
    if missing:
        raise RecordingError(f"{path}: /joint_states lacks the joints {missing}")
    order = [names.index(j) for j in joint_names]
    t0 = header_ns(states[0].header)
    t = np.array([(header_ns(m.header) - t0) * 1e-9 for m in states])
    q = np.array([np.asarray(m.position)[order] for m in states])
    commands = sorted((TwistCommand((message_time(t, m.header) - t0) * 1e-9,
                                    np.array([m.twist.linear.x, m.twist.linear.y, m.twist.linear.z]),
                                    np.array([m.twist.angular.x, m.twist.angular.y, m.twist.angular.z]), m.header.frame_id)
                       for t, m in twists), key=lambda c: c.t)
    return RecordedEpisode(t, q, tuple(joint_names), commands)


def compare(recorded_t, recorded_ee, replayed_t, replayed_ee) -> dict:
    """How far the replayed end-effector path (m) is from the recorded one at the same times after start:
    max and RMS distance (m) over the recorded span, and the distance at its end."""
    recorded_t, replayed_t = np.asarray(recorded_t), np.asarray(replayed_t)
    span = recorded_t <= replayed_t[-1]
    if span.sum() < 2:
        raise ValueError("the replay ended before the recording's second state")
    replayed = np.column_stack([np.interp(recorded_t[span], replayed_t, replayed_ee[:, k]) for k in range(3)])
    error = np.linalg.norm(replayed - np.asarray(recorded_ee)[span], axis=1)
    return {"max_ee_error_m": float(error.max()), "rms_ee_error_m": float(np.sqrt(np.mean(error**2))),
            "final_ee_error_m": float(error[-1]), "compared_s": float(recorded_t[span][-1])}
