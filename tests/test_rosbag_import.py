"""Real-arm data path: a rosbag2 of /joint_states (+ commanded torques) becomes a dataset."""
import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore

from robot_dyn.inverse_dynamics.collect import CollectionConfig, collect
from robot_dyn.inverse_dynamics.dataset import DatasetError, load_dataset
from robot_dyn.inverse_dynamics.excitation import FourierTrajectory
from robot_dyn.inverse_dynamics.rosbag_import import import_rosbag
from robot_dyn.robots import load_robot

ROBOT = load_robot("panda")
TS = get_typestore(Stores.ROS2_JAZZY)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A simulated episode standing in for a real recording."""
    rng = np.random.default_rng(0)
    exc = FourierTrajectory(3.0, ROBOT.home, rng.normal(0, 0.05, (7, 3)), rng.normal(0, 0.05, (7, 3)))
    path = tmp_path_factory.mktemp("sim") / "d"
    collect(exc, path, CollectionConfig(effects="nominal", excitation_periods=1, excitation_time_scales=(1.0,),
                                        point_to_point_moves=1, train_point_to_point_moves=0, figure_eight_cycles=1,
                                        lead_in_s=1.0), log=lambda *_: None)
    return load_dataset(path, ROBOT)[1][0]


def _write_bag(path, ep, with_command: bool):
    JointState, Header, Time = (TS.types[k] for k in ("sensor_msgs/msg/JointState", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    Array = TS.types["std_msgs/msg/Float64MultiArray"]
    Layout = TS.types["std_msgs/msg/MultiArrayLayout"]
    with Writer(path, version=9) as writer:
        states = writer.add_connection("/joint_states", JointState.__msgtype__, typestore=TS)
        command = writer.add_connection("/effort_command", Array.__msgtype__, typestore=TS) if with_command else None
        names = list(ROBOT.joint_names)[::-1]  # another joint order than the URDF's
        for k in range(ep.t.size):
            t_ns = int(round((100.0 + ep.t[k]) * 1e9))
            stamp = Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
            msg = JointState(header=Header(stamp=stamp, frame_id=""), name=names, position=ep["q_exact"][k][::-1].copy(),
                             velocity=ep["qd_exact"][k][::-1].copy(), effort=ep["tau"][k][::-1].copy())
            writer.write(states, t_ns, TS.serialize_cdr(msg, JointState.__msgtype__))
            if command is not None:
                cmd = Array(layout=Layout(dim=[], data_offset=0), data=ep["tau_commanded"][k].copy())
                writer.write(command, t_ns, TS.serialize_cdr(cmd, Array.__msgtype__))


@pytest.mark.parametrize("with_command", [False, True])
def test_bag_becomes_a_dataset_with_the_recorded_torques(recorded, tmp_path, with_command):
    _write_bag(tmp_path / "bag", recorded, with_command)
    out = import_rosbag(tmp_path / "bag", ROBOT, tmp_path / "data", command_topic="/effort_command" if with_command else None)
    meta, episodes = load_dataset(out, ROBOT)
    assert [e.split for e in episodes] == ["train", "heldout"] and meta["rate_hz"] == pytest.approx(1000.0, rel=1e-3)
    q = np.concatenate([e["q"] for e in episodes])
    tau = np.concatenate([e["tau"] for e in episodes])
    n = min(len(q), len(recorded.t))
    np.testing.assert_allclose(q[:n], recorded["q_exact"][:n], atol=1e-6)
    np.testing.assert_allclose(tau[:n], recorded["tau"][:n], atol=1e-6)
    qd = np.concatenate([e["qd"] for e in episodes])
    assert np.abs(qd[20:n - 20] - recorded["qd_exact"][20:n - 20]).max() < 0.02


def test_broken_or_mismatched_bags_fail_clearly(recorded, tmp_path):
    _write_bag(tmp_path / "bag", recorded, False)
    with pytest.raises(DatasetError, match="no topic '/franka/joint_states'"):
        import_rosbag(tmp_path / "bag", ROBOT, tmp_path / "d1", state_topic="/franka/joint_states")
    with pytest.raises(DatasetError, match=r"joints \['lbr_A1'"):
        import_rosbag(tmp_path / "bag", load_robot("iiwa14"), tmp_path / "d2")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: a bag")
    with pytest.raises(DatasetError, match="unreadable rosbag2"):
        import_rosbag(tmp_path / "junk", ROBOT, tmp_path / "d3")
