"""The real-time sim's camera process (robot_dyn.nodes.sim_cameras): what it publishes over DDS is
what the sim renders in process from the same state, and a failure in it reaches the sim."""
import random

import numpy as np
import pytest
from sensor_msgs.msg import Image, PointCloud2

from robot_dyn.nodes import camera_messages as cm
from robot_dyn.nodes.graph_client import GraphClient


def test_camera_process_publishes_the_in_process_render_and_reports_its_failure():
    from robot_dyn.nodes.sim_cameras import CameraProcess
    from robot_dyn.perception.episodes import RopePushSim, load_config
    from robot_dyn.perception.live import SimCameraCapture
    from robot_dyn.sim.deformables import random_rope_shape, set_flex_vertices

    config = load_config().with_images(64, 48, shadow_size=0)
    rope_sim = RopePushSim(config, render=False)
    robot, rig, sim = rope_sim.robot, rope_sim.rig, rope_sim.backend
    sim.reset(robot.home)
    set_flex_vertices(sim.model, sim.data, random_rope_shape(np.random.default_rng(3), config.rope, config.table))
    for k in range(25):  # the rope settles and the arm moves: a state that is not the model's default
        sim.step(np.sin(np.arange(robot.n_joints) + 0.1 * k))
    capture = SimCameraCapture(sim.model, rig, objects=("rope",))
    name = capture.calibrations[0].name
    received = {}
    client = GraphClient(random.randint(101, 200), name="camera_test")  # the child inherits the domain
    process = None
    try:
        topics = cm.camera_topics(name)
        for kind in ("color", "depth", "mask"):
            client.node.create_subscription(Image, topics[kind], lambda m, k=kind: received.setdefault(k, m), 10)
        client.node.create_subscription(PointCloud2, "/sim/rope_vertices", lambda m: received.setdefault("truth", m), 10)
        process = CameraProcess(sim.model, rig, capture.objects, "world", ground_truth=True)
        client.spin_until(lambda: all(client.node.count_publishers(topics[k]) for k in ("color", "depth", "mask"))
                          and client.node.count_publishers("/sim/rope_vertices"), 30, "the camera process's publishers")
        # the child may not have matched our readers yet when we see its publishers (volatile topics: a set
        # published before that is not ours; CI met this under a busy core): the same state again until one arrives
        submitted = 0
        for _ in range(15):
            process.submit(capture.snapshot(sim.data))
            submitted += 1
            try:
                client.spin_until(lambda: len(received) == 4, 2.0, "one camera set")
                break
            except TimeoutError:
                continue
        assert len(received) == 4, f"no full camera set in {submitted} submissions: {sorted(received)}"
        expected = capture.capture(sim.data)
        frame = expected.frames[0]
        assert cm.stamp_ns(received["color"].header.stamp) == int(round(sim.data.time * 1e9))
        assert np.array_equal(cm.color_from_msg(received["color"]), frame.rgb)
        assert np.array_equal(np.nan_to_num(cm.depth_from_msg(received["depth"])), frame.depth)
        assert np.array_equal(cm.mask_from_msg(received["mask"]), frame.mask) and frame.mask.any()
        points, _ = cm.points_from_cloud(received["truth"])
        assert np.allclose(points, expected.vertices["rope"], atol=1e-6)
        client.spin_until(lambda: (process.poll(), process.render_timer.count)[1] == submitted, 10, "the render reports")
        assert process.in_flight == 0 and process.skipped == 0

        process.submit(np.zeros(3))  # not this model's state: the child fails and says why
        with pytest.raises(RuntimeError, match="camera process failed: .*state"):
            client.spin_until(lambda: process.submit(capture.snapshot(sim.data)) and False, 30, "the failure")
    finally:
        if process is not None:
            process.close()
        capture.close()
        client.close()
