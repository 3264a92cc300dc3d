"""The Franka adapter over DDS: a project reference (the FR3 model) comes out as a JTC trajectory for
fr3_joint*; NaN, jumps, stale stamps and what the FR3 cannot reach (now or at the extrapolated point)
are refused before they reach JTC; a zero stamp (published by hand) goes on as 'start on receipt'."""
import time

from sensor_msgs.msg import JointState
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
    robot = load_robot("fr3")
    spec = NodeSpec("hardware_adapter", "hardware_adapter", "robot_dyn.nodes.hardware_adapter_node", {"target": "franka"})
    with GraphProcesses([spec], tmp_path) as graph:
        client = GraphClient(graph.domain_id)
        try:
            received, renamed = [], []
            client.node.create_subscription(JointTrajectory, "/fr3_arm_controller/joint_trajectory", received.append, 10)
            client.node.create_subscription(JointState, "/robot_dyn/joint_states", renamed.append, 100)
            arm_state = client.node.create_publisher(JointState, "/franka/joint_states", 10)
            client.wait_for_subscribers(client.reference_pub)
            client.spin_until(lambda: client.node.count_subscribers("/impedance_reference") > 0, 30, "the adapter")

            def now():
                return client.node.get_clock().now().nanoseconds * 1e-9

            def reference(positions):
                msg = JointTrajectory(joint_names=list(robot.joint_names))
                msg.header.stamp = to_stamp(now())
                msg.points = [JointTrajectoryPoint(positions=list(positions), velocities=[0.1] * 7, effort=[0.5] * 7)]
                return msg

            # Without a state from the arm nothing is forwarded.
            client.spin_until(lambda: (client.reference_pub.publish(reference(robot.home)),
                                       "no joint state from the arm yet" in graph.log_tail("hardware_adapter"))[1], 10, "refusal")
            fr3 = JointState(name=[f"fr3_joint{i}" for i in range(1, 8)], position=robot.home.tolist())

            def publish_both():
                arm_state.publish(fr3)
                client.reference_pub.publish(reference(robot.home))
                return bool(received)

            client.spin_until(publish_both, 30, "a forwarded trajectory")
            client.spin_until(lambda: bool(renamed), 10, "the renamed joint state")
            assert list(renamed[-1].name) == list(robot.joint_names)
            # the arm's 1 kHz states go on at state_rate_hz (500): at most every other one
            _drain(client, 0.5)  # the unstamped states sent while waiting are through
            before, t0 = len(renamed), now() + 1.0
            for k in range(40):
                state = JointState(name=fr3.name, position=fr3.position)
                state.header.stamp = to_stamp(t0 + 0.001 * k)
                arm_state.publish(state)
                _drain(client, 0.002)
            _drain(client, 0.3)
            assert 10 <= len(renamed) - before <= 20, len(renamed) - before
            out = received[-1]
            assert out.joint_names == [f"fr3_joint{i}" for i in range(1, 8)]
            assert out.points[0].effort.tolist() == [0.5] * 7
            assert abs(out.points[0].positions[0] - (robot.home[0] + 0.1 * 0.02)) < 1e-9  # predicted to the horizon
            _drain(client, 0.5)  # the valid references sent while waiting are still arriving
            n = len(received)
            client.reference_pub.publish(reference([float("nan")] * 7))
            client.spin_until(lambda: "positions: NaN" in graph.log_tail("hardware_adapter"), 10, "the NaN rejection")
            client.reference_pub.publish(reference(robot.home + 0.3))
            client.spin_until(lambda: "discontinuity" in graph.log_tail("hardware_adapter"), 10, "the jump rejection")
            panda_only = robot.home.copy()
            panda_only[5] = 0.3  # inside the Panda's joint 6 range, outside the FR3's [0.5445, 4.5169]
            client.reference_pub.publish(reference(panda_only))
            client.spin_until(lambda: "fr3_joint6=0.3000 not in [0.5445" in graph.log_tail("hardware_adapter"), 10,
                              "the FR3's joint limit")
            moving_out = robot.home.copy()
            moving_out[5] = robot.q_max[5] - 0.001  # inside, but 10 mrad outside at the point horizon_s ahead
            arm_state.publish(JointState(name=fr3.name, position=moving_out.tolist()))  # the arm is there
            client.spin_until(lambda: abs(renamed[-1].position[5] - moving_out[5]) < 1e-9, 10, "the arm near the limit")
            msg = reference(moving_out)
            msg.points[0].velocities = [0.0] * 5 + [0.5, 0.0]
            client.reference_pub.publish(msg)
            client.spin_until(lambda: "the point 0.02 s ahead leaves the position limits: fr3_joint6" in
                              graph.log_tail("hardware_adapter"), 10, "the extrapolated point's limit")
            old = reference(robot.home)
            old.header.stamp = to_stamp(now() - 0.03)  # JTC would drop it (stamp + 20 ms horizon has passed)
            client.reference_pub.publish(old)
            client.spin_until(lambda: "reference is stale" in graph.log_tail("hardware_adapter"), 10, "the stale rejection")
            _drain(client, 0.3)
            assert len(received) == n
            arm_state.publish(fr3)  # back home
            client.spin_until(lambda: abs(renamed[-1].position[5] - robot.home[5]) < 1e-9, 10, "the arm home")
            by_hand = reference(robot.home)
            by_hand.header.stamp.sec, by_hand.header.stamp.nanosec = 0, 0  # first-run checklist, step 1
            client.reference_pub.publish(by_hand)
            client.spin_until(lambda: len(received) > n, 10, "the zero-stamped reference forwarded")
            assert (received[-1].header.stamp.sec, received[-1].header.stamp.nanosec) == (0, 0)
        finally:
            client.close()
