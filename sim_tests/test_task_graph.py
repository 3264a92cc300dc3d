"""Imitation tasks over DDS in real time: each task's scene with its tool on the flange, the task's expert
driving through the teleop node (seeing what the sim publishes), the score recorded with the episode."""
import numpy as np
from rosbags.rosbag2 import Reader

from robot_dyn.jobs.session import SimSession
from robot_dyn.recording.episode_bag import TYPESTORE


def test_the_insert_expert_puts_the_peg_in_through_the_teleop_path_and_the_episode_records_it(tmp_path):
    out = tmp_path / "recordings"
    overrides = {"sim": {"task_seed": 9}, "teleop": {"seed": 9}, "recorder": {"out_dir": str(out), "task": "insert"}}
    with SimSession("panda", tmp_path, mode="realtime", task="insert", teleop="expert", recorder=True,
                    overrides=overrides) as s:
        c = s.client
        ok, path = c.recorder("start")
        assert ok, path
        c.wait_for_event(c.teleop_events, "expert done", wall_timeout=180)
        s.wait(0.5)
        ok, _ = c.recorder("stop")
        assert ok
        events = list(c.controller_events)
        stats = s.node_stats()
    assert stats["controller"]["twist_rejections"] == 0, events
    assert stats["sim"]["rejected_references"] == 0
    with Reader(path) as reader:
        topics = {c.topic: c for c in reader.connections}
        success = [TYPESTORE.deserialize_cdr(d, "std_msgs/msg/Bool").data
                   for _, _, d in reader.messages(connections=[topics["/task/success"]])]
        score = [TYPESTORE.deserialize_cdr(d, "std_msgs/msg/Float64").data
                 for _, _, d in reader.messages(connections=[topics["/task/score"]])]
        wrench = [TYPESTORE.deserialize_cdr(d, "geometry_msgs/msg/WrenchStamped").wrench.force
                  for _, _, d in reader.messages(connections=[topics["/task/contact_wrench"]])]
        twists = topics["/controller/twist_command"].msgcount
    assert success[-1] and not success[0], (success[0], success[-1])
    assert score[-1] == 1.0 and score[0] == 0.0
    force = np.array([[f.x, f.y, f.z] for f in wrench])
    assert np.linalg.norm(force, axis=1).max() > 0.5  # the peg touched the fixture (it searched by feel)
    assert twists > 100  # the expert drove through /controller/twist_command


def test_the_pusht_expert_pushes_the_block_home_seeing_it_on_its_topic_and_the_wrist_camera_moves_with_the_arm(tmp_path):
    out = tmp_path / "recordings"
    sim = {"task_seed": 7, "cameras": True, "camera_width": 64, "camera_height": 48, "camera_shadow_size": 0}
    overrides = {"sim": sim, "teleop": {"seed": 7}, "recorder": {"out_dir": str(out), "task": "pusht"}}
    with SimSession("panda", tmp_path, mode="realtime", task="pusht", teleop="expert", recorder=True,
                    overrides=overrides) as s:
        c = s.client
        ok, path = c.recorder("start")
        assert ok, path
        c.wait_for_event(c.teleop_events, "expert done", wall_timeout=240)
        s.wait(0.5)
        ok, _ = c.recorder("stop")
        assert ok
        stats = s.node_stats()
    assert stats["controller"]["twist_rejections"] == 0
    with Reader(path) as reader:
        topics = {c.topic: c for c in reader.connections}

        def messages(topic):
            return [TYPESTORE.deserialize_cdr(d, topics[topic].msgtype) for _, _, d in reader.messages(connections=[topics[topic]])]

        score = [m.data for m in messages("/task/score")]
        blocks = messages("/task/block_pose")
        twists = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in messages("/controller/twist_command")]
        wrist = messages("/cameras/wrist/pose")
        fixed = messages("/cameras/cam0/pose")
        images = topics["/cameras/wrist/color/image_raw"].msgcount
    assert score[-1] > 0.95 and score[0] < 0.95, (score[0], score[-1])
    assert len(blocks) == len(score)  # the block's pose with every score
    moved = np.hypot(blocks[-1].pose.position.x - blocks[0].pose.position.x, blocks[-1].pose.position.y - blocks[0].pose.position.y)
    assert moved > 0.02
    # the expert commands at the task's 10 Hz (sim time)
    assert 0.08 < np.median(np.diff(twists)) < 0.12, np.median(np.diff(twists))
    # the wrist camera's pose comes with each of its images and moves; the fixed cameras' pose once
    assert len(wrist) >= images > 50 and len(fixed) == 1
    path_length = sum(np.hypot(a.transform.translation.x - b.transform.translation.x,
                               a.transform.translation.y - b.transform.translation.y) for a, b in zip(wrist, wrist[1:]))
    assert path_length > 0.1
