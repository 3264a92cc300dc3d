"""Pushing the rope toward a target shape through the graph: the sim's cameras, the perception node's
particles, the dynamics_planner node planning on them and sending the push as a Cartesian path, and the
controller with its defaults (MPC and the robust safety filter) executing it, all over DDS.

The model is the spring-mass model with its initial parameters (robot_dyn.object_dynamics.spring_mass), so
no training is needed; how well a trained GNN plans is robot-dyn bench planning's business. Small images
and a small tracker as in test_perception_graph.py."""
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from robot_dyn.bringup.graph import ConfigError, sim_graph
from robot_dyn.bringup.processes import GraphProcesses
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.nodes import camera_messages as cm
from robot_dyn.nodes.graph_client import GraphClient
from robot_dyn.object_dynamics.evaluation import chamfer
from robot_dyn.object_dynamics.models import ModelConfig, build_model, save_model
from robot_dyn.robots import load_robot

KEEP = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)

def test_the_dynamics_planner_pushes_the_rope_through_the_controller_and_observes_the_outcome(tmp_path, small_tracker):
    model_dir = tmp_path / "spring_mass"
    save_model(model_dir, build_model(ModelConfig(kind="spring_mass", history=1)), {"step_s": 0.1, "source": "truth"})
    nodes = sim_graph("panda", overrides={
        "sim": {"camera_width": 96, "camera_height": 72, "rope_seed": 5, "lockstep_timeout_s": 2.0},
        "perception": {"tracker": "gaussian", "tracking_config": small_tracker},
        "dynamics_planner": {"target": "u", "max_pushes": 1, "samples": 32, "iterations": 1, "threads": 1}},
        perception=True, dynamics_model=str(model_dir))
    robot = load_robot("panda")
    kinematics = RigidBody(robot)
    with GraphProcesses(nodes, tmp_path) as graph:
        client = GraphClient(graph.domain_id)
        try:
            truth, targets = {}, []
            client.node.create_subscription(PointCloud2, "/sim/rope_vertices",
                                            lambda m: truth.__setitem__(cm.stamp_ns(m.header.stamp), cm.points_from_cloud(m)[0]),
                                            KEEP)
            client.node.create_subscription(PointCloud2, "/dynamics_planner/target_points",
                                            lambda m: targets.append(cm.points_from_cloud(m)[0]), 1)
            events = client.dynamics_planner_events
            client.wait_for_state()
            client.wait_for_event(events, "dynamics planner ready", 60)
            ok, message = client.trigger("/dynamics_planner/start", 120)
            client.spin_until(lambda: truth, 30, "the rope's true vertices")
            assert ok, message
            assert client.trigger("/dynamics_planner/start") == (False, "a run is going on (/dynamics_planner/stop ends it)")
            before = truth[max(truth)]
            planned = client.wait_for_event(events, "push 1 planned", 60)
            done = client.wait_for_event(events, "push 1 done", 240)
            ended = client.wait_for_event(events, "gave up", 30, pattern="(gave up|reached)")
            client.spin_until(lambda: targets, 10, "the target points")
            after = truth[max(truth)]
            graph.check_alive()
            controller_events = list(client.controller_events)
            states = list(client.states)
        finally:
            client.close()
    # the push went to the controller as one path, which it ran to the end (no rejection, no preemption)
    assert any(e.startswith("cartesian path accepted") for e in controller_events), controller_events
    assert any(e.startswith("cartesian path done") for e in controller_events), controller_events
    # the tip went down to the planned start and on along the planned direction, moving the rope
    start = np.array([float(v) for v in planned.split("start (")[1].split(")")[0].split(",")])
    angle = np.radians(float(planned.split("angle ")[1].split(" deg")[0]))
    tips = np.array([p + 0.10 * R[:, 2] for p, R in (kinematics.ee_pose(q) for _, q, _, _ in states[::20])])
    low = tips[tips[:, 2] < 0.125]
    assert len(low), "the tip never came down to pushing height"
    assert np.linalg.norm(low[0, :2] - start) < 0.02, (low[0], start)
    travel = (low[-1, :2] - low[0, :2]) @ np.array([np.cos(angle), np.sin(angle)])
    assert travel > 0.05, f"the tip pushed {travel * 1e3:.0f} mm along the planned direction"
    assert np.max(np.linalg.norm(after - before, axis=1)) > 0.02, "the push moved the rope"
    # the outcome reported is the perceived rope's distance to the target; the true rope's is close to it
    reported = float(done.split("Chamfer to the target ")[1].split(" mm")[0]) * 1e-3
    actual = chamfer(after[:, :2], targets[-1][:, :2])
    assert abs(reported - actual) < 0.012, (reported, actual)
    assert "after 1 pushes" in ended, ended


def test_the_dynamics_planner_needs_perception_and_a_model(tmp_path):
    with pytest.raises(ConfigError, match="perception"):
        sim_graph("panda", dynamics_model=str(tmp_path))
    with pytest.raises(ConfigError, match="choose one"):
        sim_graph("panda", perception=True, teleop="expert", dynamics_model=str(tmp_path))
