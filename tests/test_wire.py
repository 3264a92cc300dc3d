"""The hand-written CDR codecs of /joint_states and /impedance_reference against rclpy's own serialiser."""
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_dyn.nodes import wire

RNG = np.random.default_rng(0)
NAMES = [f"panda_joint{i}" for i in range(1, 8)]


def _random_names(k):
    return ["j" * int(RNG.integers(1, 12)) + str(i) for i in range(k)]


def _random_state():
    names = _random_names(int(RNG.integers(0, 9)))
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(RNG.integers(0, 2**31)), int(RNG.integers(0, 10**9))
    msg.header.frame_id = "f" * int(RNG.integers(0, 5))
    msg.name = names
    msg.position, msg.velocity, msg.effort = (RNG.normal(size=int(RNG.choice([0, len(names), 3]))).tolist() for _ in range(3))
    return msg


def _random_trajectory():
    msg = JointTrajectory()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(RNG.integers(0, 2**31)), int(RNG.integers(0, 10**9))
    msg.joint_names = _random_names(int(RNG.integers(0, 8)))
    for _ in range(int(RNG.integers(0, 4))):
        point = JointTrajectoryPoint()
        point.positions, point.velocities, point.accelerations, point.effort = (
            RNG.normal(size=int(RNG.integers(0, 8))).tolist() for _ in range(4))
        point.time_from_start.sec, point.time_from_start.nanosec = int(RNG.integers(0, 100)), int(RNG.integers(0, 10**9))
        msg.points.append(point)
    return msg


def _stamp_ns(stamp):
    return stamp.sec * 10**9 + stamp.nanosec


def test_decoders_read_what_rclpy_writes():
    states, refs = wire.JointStateDecoder(), wire.ReferenceDecoder()
    for _ in range(200):
        msg = _random_state()
        for data in (wire.decode_joint_state(bytes(serialize_message(msg))), states.decode(bytes(serialize_message(msg)))):
            assert (data.stamp_ns, data.frame_id, data.name) == (_stamp_ns(msg.header.stamp), msg.header.frame_id, list(msg.name))
            for mine, theirs in ((data.position, msg.position), (data.velocity, msg.velocity), (data.effort, msg.effort)):
                np.testing.assert_array_equal(mine, np.asarray(theirs, float))
        traj = _random_trajectory()
        for data in (wire.decode_joint_trajectory(bytes(serialize_message(traj))), refs.decode(bytes(serialize_message(traj)))):
            assert (data.stamp_ns, data.joint_names, len(data.points)) == (_stamp_ns(traj.header.stamp), list(traj.joint_names), len(traj.points))
            for mine, theirs in zip(data.points, traj.points):
                for field in ("positions", "velocities", "accelerations", "effort"):
                    np.testing.assert_array_equal(getattr(mine, field), np.asarray(getattr(theirs, field), float))
                assert mine.time_from_start_ns == _stamp_ns(theirs.time_from_start)


def test_encoders_write_what_rclpy_reads_and_stream_decoders_read_back():
    states, refs = wire.JointStateEncoder(NAMES, "base"), wire.ReferenceEncoder(NAMES)
    state_stream, ref_stream = wire.JointStateDecoder(), wire.ReferenceDecoder()
    for _ in range(50):
        stamp = int(RNG.integers(0, 2**31 * 10**9))  # ns
        q, qd, qdd, tau = RNG.normal(size=(4, 7))
        msg = deserialize_message(states.encode(stamp, q, qd, tau), JointState)
        assert (_stamp_ns(msg.header.stamp), msg.header.frame_id, list(msg.name)) == (stamp, "base", NAMES)
        np.testing.assert_array_equal([msg.position, msg.velocity, msg.effort], [q, qd, tau])
        ref = deserialize_message(refs.encode(stamp, q, qd, qdd, tau), JointTrajectory)
        assert (_stamp_ns(ref.header.stamp), list(ref.joint_names), len(ref.points)) == (stamp, NAMES, 1)
        point = ref.points[0]
        np.testing.assert_array_equal([point.positions, point.velocities, point.accelerations, point.effort], [q, qd, qdd, tau])
        assert _stamp_ns(point.time_from_start) == 0
        # the stream decoders' reused layout (our bytes pad with zeros, so every message after the first takes it)
        data = state_stream.decode(states.encode(stamp, q, qd, tau))
        assert (data.stamp_ns, data.name) == (stamp, NAMES)
        np.testing.assert_array_equal([data.position, data.velocity, data.effort], [q, qd, tau])
        data = ref_stream.decode(refs.encode(stamp, q, qd, qdd, tau))
        assert (data.stamp_ns, data.joint_names, len(data.points)) == (stamp, NAMES, 1)
        np.testing.assert_array_equal([data.points[0].positions, data.points[0].effort], [q, tau])


def test_encoders_leave_out_what_they_are_told_to_and_set_time_from_start():
    """The hardware adapter's messages: a JTC point 20 ms ahead without effort, a state without effort."""
    q, qd, qdd = RNG.normal(size=(3, 7))
    ref = deserialize_message(wire.ReferenceEncoder(NAMES, time_from_start_ns=20_000_000, effort=False).encode(7, q, qd, qdd),
                              JointTrajectory)
    point = ref.points[0]
    assert (_stamp_ns(ref.header.stamp), _stamp_ns(point.time_from_start), len(point.effort)) == (7, 20_000_000, 0)
    np.testing.assert_array_equal([point.positions, point.velocities, point.accelerations], [q, qd, qdd])
    state = deserialize_message(wire.JointStateEncoder(NAMES, velocity=True, effort=False).encode(5, q, qd), JointState)
    assert (_stamp_ns(state.header.stamp), list(state.name), len(state.effort)) == (5, NAMES, 0)
    np.testing.assert_array_equal([state.position, state.velocity], [q, qd])


def test_a_stream_decoder_notices_every_change_of_shape():
    """The reused layout must not read arrays where another message of the same size has others."""
    decoder = wire.JointStateDecoder()
    for position, velocity in (([1.0] * 7, []), ([], [2.0] * 7), ([3.0] * 7, []), ([4.0] * 3, [5.0] * 4)):
        msg = JointState(name=["x"] * 7, position=position, velocity=velocity)
        data = decoder.decode(bytes(serialize_message(msg)))
        np.testing.assert_array_equal(data.position, position)
        np.testing.assert_array_equal(data.velocity, velocity)


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x00\x00", b"\x00\x01\x00\x00" + b"\x01\x00\x00\x00" * 3 + b"\xff\xff\x00\x00",
                                  b"\x00\x00\x00\x00" + bytes(40)])
def test_bytes_that_are_not_a_message_raise_a_clear_error(data):
    with pytest.raises(wire.WireError, match="JointState"):
        wire.decode_joint_state(data)


def _path_message(n, uniform=True):
    from geometry_msgs.msg import Transform, Twist
    from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

    msg = MultiDOFJointTrajectory()
    msg.header.stamp.sec, msg.header.frame_id = 3, "x" * int(RNG.integers(0, 6))
    msg.joint_names = ["ee" * int(RNG.integers(1, 4))]
    for k in range(n):
        point = MultiDOFJointTrajectoryPoint()
        tr = Transform()
        tr.translation.x, tr.translation.y, tr.translation.z = RNG.normal(size=3).tolist()
        quat = RNG.normal(size=4)
        tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w = (quat / np.linalg.norm(quat)).tolist()
        point.transforms = [tr]
        if uniform or k % 3:
            v, a = Twist(), Twist()
            v.linear.x, v.linear.y, v.linear.z, v.angular.x, v.angular.y, v.angular.z = RNG.normal(size=6).tolist()
            a.linear.x, a.linear.y, a.linear.z, a.angular.x, a.angular.y, a.angular.z = RNG.normal(size=6).tolist()
            point.velocities, point.accelerations = [v], ([a] if uniform or k % 2 else [])
        point.time_from_start.sec, point.time_from_start.nanosec = k, 10 * k
        msg.points.append(point)
    return msg


@pytest.mark.parametrize("n, uniform", [(0, True), (1, True), (2, True), (500, True), (7, False), (50, False)])
def test_cartesian_paths_decode_as_rclpy_reads_them(n, uniform):
    from robot_dyn.nodes.messages import cartesian_path_from_data, pose_to_arrays
    from geometry_msgs.msg import Pose

    msg = _path_message(n, uniform)
    data = wire.decode_cartesian_path(bytes(serialize_message(msg)))
    assert (data.stamp_ns, data.frame_id, data.joint_names) == (3 * 10**9, msg.header.frame_id, list(msg.joint_names))
    for k, point in enumerate(msg.points):
        tr = point.transforms[0]
        assert data.time_from_start_ns[k] == _stamp_ns(point.time_from_start)
        np.testing.assert_array_equal(data.translation[k], [tr.translation.x, tr.translation.y, tr.translation.z])
        np.testing.assert_array_equal(data.rotation[k], [tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w])
        for twists, got, count in ((point.velocities, data.velocity[k], data.counts[k, 1]),
                                   (point.accelerations, data.acceleration[k], data.counts[k, 2])):
            want = [[t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z] for t in twists] or [[0.0] * 6]
            np.testing.assert_array_equal(got, want[0])
            assert count == len(twists)
    if n >= 2:  # the rotations the path is built with are pinocchio's for the same quaternions
        path = cartesian_path_from_data(data, 0.0)
        for k, point in enumerate(msg.points):
            pose = Pose(orientation=point.transforms[0].rotation)
            np.testing.assert_allclose(path.R[k], pose_to_arrays(pose)[1], atol=1e-12)


def test_cartesian_path_errors_name_the_point():
    from robot_dyn.nodes.messages import cartesian_path_from_data

    msg = _path_message(5)
    msg.points[3].transforms[0].rotation.w += 0.5
    with pytest.raises(ValueError, match=r"points\[3\].transforms\[0\].rotation: quaternion norm"):
        cartesian_path_from_data(wire.decode_cartesian_path(bytes(serialize_message(msg))), 0.0)
    msg = _path_message(5)
    msg.points[2].transforms = []
    with pytest.raises(ValueError, match=r"points\[2\].transforms: expected exactly one"):
        cartesian_path_from_data(wire.decode_cartesian_path(bytes(serialize_message(msg))), 0.0)


def test_joint_positions_come_in_the_robots_order_whatever_the_messages():
    robot_order = ["a", "b", "c"]
    positions = wire.JointPositions(robot_order)
    first = serialize_message(JointState(name=["c", "a", "b"], position=[3.0, 1.0, 2.0]))
    np.testing.assert_array_equal(positions(first), [1.0, 2.0, 3.0])
    reordered = serialize_message(JointState(name=["b", "c", "x", "a"], position=[2.0, 3.0, 9.0, 1.0]))
    np.testing.assert_array_equal(positions(reordered), [1.0, 2.0, 3.0])  # a new layout: the order again
    with pytest.raises(ValueError, match=r"joints \['b'\] missing"):
        positions(serialize_message(JointState(name=["a", "c"], position=[1.0, 3.0])))
