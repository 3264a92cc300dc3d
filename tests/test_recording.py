"""Episodes as rosbag2 directories: exact bytes back, bounded loss when the recorder is killed, clear errors."""
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from robot_dyn.recording.episode_bag import TYPESTORE, EpisodeBag, RecordingError, episode_facts, recover
from robot_dyn.recording.recorder import CAMERA_STREAM_TYPES, DEFAULT_TOPICS, Recorder

JointState = TYPESTORE.types["sensor_msgs/msg/JointState"]
Header = TYPESTORE.types["std_msgs/msg/Header"]
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
String = TYPESTORE.types["std_msgs/msg/String"]
TOPICS = {"/joint_states": "sensor_msgs/msg/JointState", "/controller/events": "std_msgs/msg/String"}


def state_bytes(k: int) -> bytes:
    """A JointState at k ms, as the middleware carries it (CDR)."""
    msg = JointState(Header(Time(k // 1000, (k % 1000) * 1_000_000), "panda_link0"), [f"j{i}" for i in range(7)],
                     np.full(7, k * 1e-3), np.full(7, -k * 1e-3), np.zeros(7))
    return bytes(TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/JointState"))


def read_bag(path):
    with Reader(path) as reader:
        messages = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
    return messages, episode_facts(path)


def test_a_bag_holds_exactly_the_bytes_written_and_the_episode_facts(tmp_path):
    bag = EpisodeBag(tmp_path / "ep", TOPICS)
    sent = [("/joint_states", k * 1_000_000, state_bytes(k)) for k in range(1500)]
    sent.append(("/controller/events", 5, bytes(TYPESTORE.serialize_cdr(String("joint goal accepted"), "std_msgs/msg/String"))))
    for topic, t, data in sent:
        bag.write(topic, t, data)
        if t == 700_000_000:
            bag.flush()
    assert bag.close({"task": "pusht"}) == {"/joint_states": 1500, "/controller/events": 1}
    messages, custom = read_bag(tmp_path / "ep")
    assert sorted(messages) == sorted(sent)
    assert custom["task"] == "pusht"
    decoded = TYPESTORE.deserialize_cdr(messages[-1][2] if messages[-1][0] == "/joint_states" else messages[0][2],
                                        "sensor_msgs/msg/JointState")
    assert decoded.header.frame_id == "panda_link0"
    with pytest.raises(RecordingError, match="exists already"):
        EpisodeBag(tmp_path / "ep", TOPICS)


def test_unknown_types_and_unwritable_folders_are_named(tmp_path):
    with pytest.raises(RecordingError, match=r"topics \['/x'\]"):
        EpisodeBag(tmp_path / "a", {"/x": "my_msgs/msg/Thing"})
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RecordingError, match=str(blocker)):
        EpisodeBag(blocker / "ep", TOPICS)


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tests.test_recording import TOPICS, state_bytes
from robot_dyn.recording.episode_bag import EpisodeBag
bag = EpisodeBag({path!r}, TOPICS)
for k in range(3000):
    bag.write("/joint_states", k * 1_000_000, state_bytes(k))
    if k == 1999:
        bag.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_leaves_what_it_flushed_recoverable(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = tmp_path / "ep"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER.format(root=root, path=str(path))])
    assert proc.returncode == -signal.SIGKILL
    assert not (path / "metadata.yaml").exists()
    out, counts = recover(path)
    messages, custom = read_bag(out)
    assert counts["/joint_states"] == len(messages) >= 2000  # everything up to the flush, maybe more
    assert [m[2] for m in messages] == [state_bytes(k) for k in range(len(messages))]
    assert custom["recovered_from"] == str(path)
    assert path.exists()  # the damaged folder stays


def test_writes_beyond_the_file_size_limit_fail_with_the_path(tmp_path):
    """A disk that refuses more bytes (here the process's file size limit, as a full disk would)."""
    code = f"""
import resource, signal, sys
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from tests.test_recording import TOPICS, state_bytes
from robot_dyn.recording.episode_bag import EpisodeBag, RecordingError
bag = EpisodeBag({str(tmp_path / "ep")!r}, TOPICS)
try:
    for k in range(20000):
        bag.write("/joint_states", k, state_bytes(k))
        if k % 500 == 0:
            bag.flush()
    bag.close()
except RecordingError as exc:
    print("ERROR", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("ERROR") and str(tmp_path / "ep") in out and "File too large" in out, out


def test_the_recorder_numbers_episodes_counts_every_message_and_discards_on_request(tmp_path):
    recorder = Recorder(tmp_path, TOPICS, flush_period=0.05)
    path = recorder.start("pusht", 0.0)
    assert path.name == "pusht_0000"
    threads = [threading.Thread(target=lambda o=o: [recorder.offer("/joint_states", (o + 2 * k) * 1_000_000,
                                                                  state_bytes(o + 2 * k)) for k in range(2000)])
               for o in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    recorder.offer("/not/recorded", 0, b"x")
    summary = recorder.stop(True, 4.0)
    assert summary.received == summary.written == {"/joint_states": 4000, "/controller/events": 0}
    assert not summary.dropped and "nothing lost" in summary.line()
    assert summary.save_s < 1.0
    messages, custom = read_bag(path)
    assert len(messages) == 4000 and custom["success"] == "true" and custom["task"] == "pusht"
    assert recorder.start("pusht", 5.0).name == "pusht_0001"
    with pytest.raises(RecordingError, match="still recording"):
        recorder.start("insert", 5.0)
    recorder.offer("/joint_states", 1, state_bytes(1))
    assert not recorder.discard().exists()
    assert recorder.start("pusht", 6.0).name == "pusht_0001"  # the discarded number is free again
    recorder.stop(False, 7.0)
    with pytest.raises(RecordingError, match="task name"):
        recorder.start("../etc", 0.0)
    with pytest.raises(RecordingError, match="no episode"):
        recorder.stop(True, 0.0)


def test_default_topics_and_camera_streams_have_known_types():
    for topic, msgtype in {**DEFAULT_TOPICS, **CAMERA_STREAM_TYPES}.items():
        assert msgtype in TYPESTORE.types, topic


def test_a_latched_message_opens_every_episode(tmp_path):
    topics = {**TOPICS, "/cameras/front/pose": "geometry_msgs/msg/TransformStamped"}
    recorder = Recorder(tmp_path, topics, latched=["/cameras/front/pose"])
    Transform = TYPESTORE.types["geometry_msgs/msg/TransformStamped"]
    pose = bytes(TYPESTORE.serialize_cdr(Transform(Header(Time(0, 0), "world"), "front_optical_frame",
                                                   TYPESTORE.types["geometry_msgs/msg/Transform"](
                                                       TYPESTORE.types["geometry_msgs/msg/Vector3"](1.0, 0.0, 0.5),
                                                       TYPESTORE.types["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0))),
                                         "geometry_msgs/msg/TransformStamped"))
    recorder.offer("/cameras/front/pose", 0, pose)  # published once, before any episode
    for episode in range(2):
        path = recorder.start("insert", 10.0 * episode)
        recorder.offer("/joint_states", 1, state_bytes(1))
        summary = recorder.stop(True, 10.0 * episode + 1)
        messages, _ = read_bag(path)
        assert ("/cameras/front/pose", int(10e9 * episode), pose) in messages
        assert summary.written["/cameras/front/pose"] == 1
    with pytest.raises(RecordingError, match="latched topics"):
        Recorder(tmp_path, TOPICS, latched=["/tf_static"])


def test_an_episode_waits_for_its_required_streams(tmp_path):
    recorder = Recorder(tmp_path, TOPICS, required=["/joint_states"])
    with pytest.raises(RecordingError, match="not ready: no message on /joint_states"):
        recorder.start("insert", 0.0)
    assert not recorder.recording and not list(tmp_path.iterdir())  # nothing opened
    recorder.offer("/joint_states", 1, state_bytes(1))  # heard once (outside an episode: not kept)
    path = recorder.start("insert", 0.0)
    recorder.offer("/joint_states", 2, state_bytes(2))
    assert recorder.stop(True, 1.0).written["/joint_states"] == 1
    assert [t for t, _, _ in read_bag(path)[0]] == ["/joint_states"]
    with pytest.raises(RecordingError, match="required topics"):
        Recorder(tmp_path, TOPICS, required=["/tf"])
