"""One URDF, three engines: the same mass matrix and gravity; malformed files fail clearly."""
import shutil

import mujoco
import numpy as np
import pybullet as p
import pytest

from robot_dyn import paths
from robot_dyn.dynamics import RigidBody
from robot_dyn.robots import RobotModelError, load_robot
from robot_dyn.robots.engines import mujoco_arm_spec, pybullet_body, pybullet_joint_indices

ROBOTS = ["panda", "fr3", "iiwa14"]


def _random_configurations(robot, n=25, seed=0):
    return np.random.default_rng(seed).uniform(robot.q_min, robot.q_max, (n, robot.n_joints))


@pytest.mark.parametrize("name", ROBOTS)
def test_mass_matrix_and_gravity_agree_across_engines(name):
    robot = load_robot(name)
    rb = RigidBody(robot)
    model = mujoco_arm_spec(robot).compile()
    data = mujoco.MjData(model)
    client = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        body = pybullet_body(robot, client)
        idx = pybullet_joint_indices(body, robot, client)
        worst = {"mujoco_M": 0.0, "mujoco_g": 0.0, "pybullet_M": 0.0, "pybullet_g": 0.0}
        for q in _random_configurations(robot):
            M, g = rb.mass_matrix(q), rb.gravity(q)
            data.qpos[:] = q
            data.qvel[:] = 0
            mujoco.mj_forward(model, data)
            M_mj = np.zeros((robot.n_joints, robot.n_joints))
            mujoco.mj_fullM(model, data, M_mj)
            for i, qi in zip(idx, q):
                p.resetJointState(body, i, qi, 0.0, physicsClientId=client)
            M_pb = np.array(p.calculateMassMatrix(body, q.tolist(), physicsClientId=client))
            g_pb = np.array(p.calculateInverseDynamics(body, q.tolist(), [0.0] * 7, [0.0] * 7, physicsClientId=client))
            worst["mujoco_M"] = max(worst["mujoco_M"], np.linalg.norm(M_mj - M) / np.linalg.norm(M))
            worst["mujoco_g"] = max(worst["mujoco_g"], np.linalg.norm(data.qfrc_bias - g) / np.linalg.norm(g))
            worst["pybullet_M"] = max(worst["pybullet_M"], np.linalg.norm(M_pb - M) / np.linalg.norm(M))
            worst["pybullet_g"] = max(worst["pybullet_g"], np.linalg.norm(g_pb - g) / np.linalg.norm(g))
    finally:
        p.disconnect(client)
    # MuJoCo agrees with pinocchio to round-off (~1e-15); PyBullet's own multibody algorithms
    # reach ~1e-10 on the mass matrix and ~1e-15 on gravity. Both well inside 1e-6.
    assert worst["mujoco_M"] < 1e-6 and worst["mujoco_g"] < 1e-6, worst
    assert worst["pybullet_M"] < 1e-6 and worst["pybullet_g"] < 1e-6, worst


@pytest.mark.parametrize("name", ROBOTS)
def test_regressor_times_parameters_is_rnea(name):
    rb = RigidBody(load_robot(name))
    rng = np.random.default_rng(1)
    pi = rb.inertial_parameters()
    for q in _random_configurations(rb.robot, 10):
        qd, qdd = rng.normal(size=(2, rb.n))
        np.testing.assert_allclose(rb.regressor(q, qd, qdd) @ pi, rb.rnea(q, qd, qdd), atol=1e-10)


@pytest.mark.parametrize("name", ROBOTS)
def test_rnea_is_mass_matrix_times_acceleration_plus_bias(name):
    rb = RigidBody(load_robot(name))
    rng = np.random.default_rng(2)
    q = _random_configurations(rb.robot, 1)[0]
    qdd = rng.normal(size=rb.n)
    zero = np.zeros(rb.n)
    np.testing.assert_allclose(rb.rnea(q, zero, qdd), rb.mass_matrix(q) @ qdd + rb.gravity(q), atol=1e-10)


def test_jacobian_matches_finite_difference_of_forward_kinematics():
    rb = RigidBody(load_robot("panda"))
    q = rb.robot.home + 0.1
    jac = rb.ee_jacobian(q)
    eps = 1e-7
    for j in range(rb.n):
        dq = np.zeros(rb.n)
        dq[j] = eps
        dp = (rb.ee_pose(q + dq)[0] - rb.ee_pose(q - dq)[0]) / (2 * eps)
        np.testing.assert_allclose(jac[:3, j], dp, atol=1e-6)


@pytest.fixture
def robot_copy(tmp_path, monkeypatch):
    """A private copy of urdf/ and configs/ to break on purpose."""
    for folder in ("urdf", "configs"):
        shutil.copytree(paths.share_dir() / folder, tmp_path / folder)
    monkeypatch.setattr(paths, "share_dir", lambda: tmp_path)
    return tmp_path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_malformed_xml_names_the_file(robot_copy):
    (robot_copy / "urdf/panda.urdf").write_text("<robot name='panda'><link name='a'></robot>")
    with pytest.raises(RobotModelError, match=r"panda\.urdf: malformed XML"):
        load_robot("panda")


def test_missing_effort_limit_names_the_joint(robot_copy):
    text = (robot_copy / "urdf/panda.urdf").read_text()
    start = text.index('<joint name="panda_joint3"')
    limit = text.index("<limit", start)
    effort = text.index("effort=", limit)
    end = text.index('"', text.index('"', effort) + 1) + 1
    (robot_copy / "urdf/panda.urdf").write_text(text[:effort] + text[end:])
    with pytest.raises(RobotModelError, match=r"joint 'panda_joint3' <limit> has no 'effort'"):
        load_robot("panda")


def test_negative_mass_names_the_link(robot_copy):
    text = (robot_copy / "urdf/panda.urdf").read_text()
    start = text.index('<link name="panda_link4"')
    mass = text.index('<mass value="', start) + len('<mass value="')
    (robot_copy / "urdf/panda.urdf").write_text(text[:mass] + "-" + text[mass:])
    with pytest.raises(RobotModelError, match=r"link 'panda_link4': mass must be positive"):
        load_robot("panda")


def test_unknown_end_effector_frame_is_reported(robot_copy):
    _edit(robot_copy / "configs/robots/panda.yaml", "ee_frame: panda_link8", "ee_frame: panda_hand")
    with pytest.raises(RobotModelError, match=r"end-effector frame 'panda_hand' is not a link"):
        load_robot("panda")


def test_robot_config_wrong_length_names_the_field(robot_copy):
    _edit(robot_copy / "configs/robots/panda.yaml", "stiffness: [600.0, 600.0, 600.0,", "stiffness: [600.0, 600.0,")
    with pytest.raises(RobotModelError, match=r"field 'stiffness' must be one or 7 positive numbers"):
        load_robot("panda")


def test_unknown_robot_lists_the_known_ones():
    with pytest.raises(RobotModelError, match=r"no robot config .* for robot 'ur5'"):
        load_robot("ur5")


def test_the_fr3_is_its_own_robot_with_its_narrower_limits():
    """franka_description robots/fr3/joint_limits.yaml, not the Panda's: a goal and a reference the Panda can
    reach are refused for the FR3 (its joint 6 starts at 0.5445 rad, the Panda's at -0.0175)."""
    from robot_dyn.control.impedance import ReferenceRejected, validate_reference
    from robot_dyn.control.outer_loop import GoalRejected, OuterLoop

    panda, fr3 = load_robot("panda"), load_robot("fr3")
    assert fr3.joint_names[0] == "fr3_joint1" and fr3.ee_frame == "fr3_link8"
    np.testing.assert_allclose(fr3.q_min, [-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
    np.testing.assert_allclose(fr3.q_max, [2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])
    np.testing.assert_allclose(fr3.qd_max, [2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26])
    # the same kinematics as the Panda
    q = fr3.home + 0.1
    np.testing.assert_allclose(RigidBody(fr3).ee_pose(q)[0], RigidBody(panda).ee_pose(q)[0], atol=1e-12)
    goal = panda.home.copy()
    goal[5] = 0.2  # fine for a Panda
    for robot, refused in ((panda, False), (fr3, True)):
        loop = OuterLoop(robot)
        loop.start(0.0, robot.home)
        if refused:
            with pytest.raises(GoalRejected, match="joint6"):
                loop.command_joint_goal(0.0, goal)
            with pytest.raises(ReferenceRejected, match="joint6"):
                validate_reference(robot, 0.0, robot.joint_names, goal)
        else:
            loop.command_joint_goal(0.0, goal)
