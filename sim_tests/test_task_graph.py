"""An imitation task over DDS in real time: the insert scene with its peg on the flange, the task's expert
driving through the teleop node, the score published and recorded with the episode."""
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
