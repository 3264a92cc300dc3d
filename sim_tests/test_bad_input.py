"""Bad references over DDS: rejected with the reason logged, and the arm does not move."""
import numpy as np
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_dyn.bringup.graph import sim_graph
from robot_dyn.bringup.processes import GraphProcesses
from robot_dyn.nodes.graph_client import GraphClient
from robot_dyn.nodes.messages import to_stamp
from robot_dyn.robots import load_robot


def _reference(stamp, names, positions, velocities=(), effort=()):
    msg = JointTrajectory()
    msg.header.stamp = to_stamp(stamp)
    msg.joint_names = list(names)
    msg.points = [JointTrajectoryPoint(positions=list(positions), velocities=list(velocities), effort=list(effort))]
    return msg


def test_bad_references_are_rejected_and_nothing_moves(tmp_path):
    robot = load_robot("panda")
    sim_only = [n for n in sim_graph("panda") if n.name == "sim"]  # this test is the controller
    names, home = list(robot.joint_names), robot.home
    nan = home.copy()
    nan[2] = np.nan
    beyond = home.copy()
    beyond[3] = robot.q_max[3] + 0.2
    cases = [
        ("NaN", lambda t: _reference(t, names, nan), "positions: NaN or infinite value for joints ['panda_joint3']"),
        ("count", lambda t: _reference(t, names[:6], home[:6]), "6 joints given, 7 expected"),
        ("unknown", lambda t: _reference(t, names[:6] + ["wrist"], home), "unknown joints ['wrist']"),
        ("limits", lambda t: _reference(t, names, beyond), "positions: outside joint limits: panda_joint4"),
        ("lengths", lambda t: _reference(t, names, home, velocities=[0.0] * 3), "velocities: 3 values for 7 joints"),
        ("jump", lambda t: _reference(t, names, home + 0.3), "rad from the measured position"),
    ]
    with GraphProcesses(sim_only, tmp_path) as graph:
        c = GraphClient(graph.domain_id)
        try:
            c.wait_for_state()
            c.wait_for_subscribers(c.reference_pub)
            q0 = c.states[-1][1]
            for label, make, reason in cases:
                for _ in range(25):  # 50 ms of bad references, each answering a lockstep tick
                    n = len(c.states)
                    c.reference_pub.publish(make(c.sim_time))
                    c.spin_until(lambda: len(c.states) > n, 10, f"the tick after a {label} reference")
                events = [e for e in c.robot_events if "reference rejected" in e]
                assert any(reason in e for e in events), (label, events[-3:])
            t, q, qd, tau = c.state_arrays()
            assert t[-1] - t[0] > 0.2
            assert np.max(np.abs(q - q0)) < 1e-6, "the arm moved"
            assert np.max(np.abs(tau)) < 1e-6, "torque was commanded"
        finally:
            c.close()
    log = (tmp_path / "sim.log").read_text()
    assert "reference rejected: positions: NaN" in log and "unknown joints ['wrist']" in log
