"""The Franka adapter over DDS: a project reference comes out as a JTC trajectory for fr3_joint*."""
import time

from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_dyn.bringup.graph import NodeSpec
from robot_dyn.bringup.processes import GraphProcesses
from robot_dyn.nodes.graph_client import GraphClient
from robot_dyn.nodes.messages import to_stamp
from robot_dyn.robots import load_robot


def _drain(client, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.executor.spin_once(timeout_sec=0.01)


def test_franka_adapter_forwards_a_reference(tmp_path):
    robot = load_robot("panda")
    spec = NodeSpec("hardware_adapter", "hardware_adapter", "robot_dyn.nodes.hardware_adapter_node", {"target": "franka"})
    with GraphProcesses([spec], tmp_path) as graph:
        client = GraphClient(graph.domain_id)
        try:
            received = []
            client.node.create_subscription(JointTrajectory, "/fr3_arm_controller/joint_trajectory", received.append, 10)
            client.wait_for_subscribers(client.reference_pub)
            msg = JointTrajectory(joint_names=list(robot.joint_names))
            msg.header.stamp = to_stamp(12.5)
            msg.points = [JointTrajectoryPoint(positions=robot.home.tolist(), velocities=[0.1] * 7, effort=[0.5] * 7)]
            client.spin_until(lambda: client.node.count_subscribers("/impedance_reference") > 0, 30, "the adapter")
            client.spin_until(lambda: (client.reference_pub.publish(msg), bool(received))[1], 30, "a forwarded trajectory")
            out = received[-1]
            assert out.joint_names == [f"fr3_joint{i}" for i in range(1, 8)]
            assert out.points[0].effort.tolist() == [0.5] * 7
            assert abs(out.points[0].positions[0] - (robot.home[0] + 0.1 * 0.02)) < 1e-9  # predicted to the horizon
            bad = JointTrajectory(joint_names=list(robot.joint_names))
            bad.points = [JointTrajectoryPoint(positions=[float("nan")] * 7)]
            _drain(client, 0.5)  # the valid references sent while waiting are still arriving
            n = len(received)
            client.reference_pub.publish(bad)
            client.spin_until(lambda: "reference rejected" in graph.log_tail("hardware_adapter"), 10, "the rejection")
            _drain(client, 0.3)
            assert len(received) == n
        finally:
            client.close()
