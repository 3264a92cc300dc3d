"""Unit tests of robot_dyn.hardware_bridge (pure numpy, no ROS)."""
import math

import numpy as np
import pytest

from robot_dyn import hardware_bridge as hb

PANDA = [f"panda_joint{i}" for i in range(1, 8)]
LBR = [f"lbr_A{i}" for i in range(1, 8)]
Q = np.array([0.1, -0.7, 0.2, -2.3, 0.3, 1.6, 0.8])
QD = np.array([0.5, -0.4, 0.3, 0.2, -0.1, 0.6, -0.7])
QDD = np.array([1.0, 2.0, -3.0, 0.5, -0.5, 4.0, -1.5])
TAU = np.array([1.0, -2.0, 3.0, -4.0, 0.5, -0.25, 0.125])
STAMP = 1_700_000_000_250_000_000  # ns


def franka(**kw):
    """A Panda-model reference to an FR3's JTC (the renaming the prefix map does), unless told otherwise."""
    args = dict(joint_names=PANDA, positions=Q, velocities=QD, accelerations=QDD, effort=TAU, stamp_ns=STAMP)
    args.update({k: v for k, v in kw.items() if k in args})
    options = {"prefix_map": {"panda_joint": "fr3_joint"}, **{k: v for k, v in kw.items() if k not in args}}
    return hb.franka_jtc_command(**args, **options)


def kuka(**kw):
    args = dict(joint_names=LBR, positions=Q, velocities=QD, accelerations=QDD, effort=TAU, stamp_ns=STAMP)
    args.update({k: v for k, v in kw.items() if k in args})
    options = {k: v for k, v in kw.items() if k not in args}
    return hb.kuka_torque_command(**args, **options)


# --- Franka: names, order, timing, prediction -------------------------------------------


def test_franka_renames_panda_joints_to_fr3_in_controller_order():
    cmd = franka(extrapolate=False)
    assert cmd.joint_names == tuple(f"fr3_joint{i}" for i in range(1, 8))
    assert cmd.positions == pytest.approx(Q.tolist())
    assert cmd.velocities == pytest.approx(QD.tolist())
    assert cmd.accelerations == pytest.approx(QDD.tolist())
    assert cmd.effort == pytest.approx(TAU.tolist())


def test_the_fr3_models_names_pass_through_by_default():
    cmd = hb.franka_jtc_command(list(hb.FR3_JOINTS), Q, QD, QDD, TAU, STAMP, extrapolate=False)
    assert cmd.joint_names == hb.FR3_JOINTS and cmd.positions == pytest.approx(Q.tolist())
    with pytest.raises(ValueError, match=r"^joint_names: unknown joint 'panda_joint1'"):
        hb.franka_jtc_command(PANDA, Q, QD, QDD, TAU, STAMP)  # a Panda model needs its prefix map


def test_franka_reorders_a_shuffled_reference_into_controller_order():
    perm = [3, 0, 6, 1, 5, 2, 4]
    cmd = franka(
        joint_names=[PANDA[i] for i in perm],
        positions=Q[perm], velocities=QD[perm], accelerations=QDD[perm], effort=TAU[perm],
        extrapolate=False,
    )
    assert cmd.joint_names == hb.FR3_JOINTS
    assert cmd.positions == pytest.approx(Q.tolist())
    assert cmd.effort == pytest.approx(TAU.tolist())


def test_franka_point_is_horizon_ahead_and_keeps_the_reference_stamp():
    cmd = franka(horizon_s=0.02)
    assert cmd.time_from_start == (0, 20_000_000)
    assert cmd.stamp == (1_700_000_000, 250_000_000)
    assert franka(use_reference_stamp=False).stamp == (0, 0)
    assert franka(horizon_s=1.5).time_from_start == (1, 500_000_000)


def test_franka_extrapolates_the_point_to_stamp_plus_horizon():
    h = 0.02
    cmd = franka(horizon_s=h)
    assert cmd.positions == pytest.approx((Q + QD * h + 0.5 * QDD * h * h).tolist(), abs=1e-12)
    assert cmd.velocities == pytest.approx((QD + QDD * h).tolist(), abs=1e-12)
    assert cmd.accelerations == pytest.approx(QDD.tolist())
    # the feedforward torque is not extrapolated
    assert cmd.effort == pytest.approx(TAU.tolist())


def test_franka_can_leave_effort_out_for_a_jtc_without_effort_feedforward():
    assert franka(include_effort=False).effort == []


def test_franka_outputs_plain_python_floats():
    cmd = franka()
    for values in (cmd.positions, cmd.velocities, cmd.accelerations, cmd.effort):
        assert isinstance(values, list) and all(type(v) is float for v in values)
    assert all(type(v) is int for v in cmd.stamp + cmd.time_from_start)


def test_custom_prefix_map_and_target_joints():
    targets = [f"left_fr3_joint{i}" for i in range(1, 8)]
    cmd = franka(prefix_map={"panda_joint": "left_fr3_joint"}, target_joints=targets, extrapolate=False)
    assert list(cmd.joint_names) == targets


def test_longest_prefix_wins():
    names = [f"arm_panda_joint{i}" for i in range(1, 8)]
    cmd = franka(joint_names=names, prefix_map={"arm_": "wrong_", "arm_panda_joint": "fr3_joint"})
    assert cmd.joint_names == hb.FR3_JOINTS


def test_empty_optional_fields_mean_zeros():
    cmd = franka(velocities=[], accelerations=[], effort=[])
    assert cmd.positions == pytest.approx(Q.tolist())
    assert cmd.velocities == [0.0] * 7 and cmd.accelerations == [0.0] * 7 and cmd.effort == [0.0] * 7


def test_input_arrays_are_not_modified():
    q = Q.copy()
    kuka(positions=q, damping_ff=[2.0] * 7, lookahead_s=0.01)
    franka(positions=q)
    assert np.array_equal(q, Q)


# --- rejection of bad input, naming the field --------------------------------------------


@pytest.mark.parametrize("field", ["positions", "velocities", "accelerations", "effort"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected_naming_field_and_joint(field, bad):
    values = {"positions": Q, "velocities": QD, "accelerations": QDD, "effort": TAU}[field].copy()
    values[2] = bad
    for convert in (franka, kuka):
        names = PANDA if convert is franka else LBR
        with pytest.raises(ValueError, match=rf"^{field}: .*{names[2]}"):
            convert(**{field: values})


@pytest.mark.parametrize("field", ["positions", "velocities", "accelerations", "effort"])
def test_wrong_length_is_rejected_naming_field(field):
    values = {"positions": Q, "velocities": QD, "accelerations": QDD, "effort": TAU}[field]
    with pytest.raises(ValueError, match=rf"^{field}: 6 values for 7 joints"):
        franka(**{field: values[:6]})
    with pytest.raises(ValueError, match=rf"^{field}: 8 values for 7 joints"):
        kuka(**{field: np.append(values, 0.0)})


def test_empty_positions_are_rejected():
    with pytest.raises(ValueError, match=r"^positions: 0 values"):
        franka(positions=[])


def test_non_numeric_values_are_rejected():
    with pytest.raises(ValueError, match=r"^velocities: not a list of numbers"):
        franka(velocities=["fast"] * 7)


def test_unknown_joint_is_rejected():
    names = PANDA[:6] + ["panda_finger_joint1"]
    with pytest.raises(ValueError, match=r"^joint_names: unknown joint 'panda_finger_joint1'"):
        franka(joint_names=names)
    with pytest.raises(ValueError, match=r"^joint_names: unknown joint 'panda_joint1'"):
        kuka(joint_names=PANDA)  # KUKA map does not know Panda joints
    with pytest.raises(ValueError, match=r"^joint_names: unknown joint 'panda_joint8'"):
        franka(joint_names=PANDA[:6] + ["panda_joint8"])


def test_missing_and_duplicate_joints_are_rejected():
    with pytest.raises(ValueError, match=r"^joint_names: 6 joints given, 7 expected \(missing \['fr3_joint7'\]\)"):
        franka(joint_names=PANDA[:6], positions=Q[:6], velocities=QD[:6], accelerations=QDD[:6], effort=TAU[:6])
    with pytest.raises(ValueError, match=r"^joint_names: duplicates"):
        franka(joint_names=PANDA[:6] + ["panda_joint1"])


@pytest.mark.parametrize("stamp", [-1, 1.5, math.nan, True, "now"])
def test_bad_stamp_is_rejected(stamp):
    with pytest.raises(ValueError, match=r"^header\.stamp:"):
        franka(stamp_ns=stamp)


@pytest.mark.parametrize("horizon", [0.0, -0.01, math.nan, math.inf])
def test_bad_horizon_is_rejected(horizon):
    with pytest.raises(ValueError, match=r"^horizon_s:"):
        franka(horizon_s=horizon)


def test_bad_lookahead_is_rejected():
    with pytest.raises(ValueError, match=r"^lookahead_s:"):
        kuka(lookahead_s=-0.001)


def test_effort_above_limit_is_rejected_and_within_limit_passes():
    limit = [87.0] * 4 + [12.0] * 3
    franka(effort_limit=limit)  # TAU is well inside
    over = TAU.copy()
    over[5] = -12.5
    with pytest.raises(ValueError, match=r"^effort: feedforward above effort_limit at joints \['fr3_joint6'\]"):
        franka(effort=over, effort_limit=limit)
    with pytest.raises(ValueError, match=r"^effort: .*lbr_A1"):
        kuka(effort_limit=0.5)  # one value for every joint
    with pytest.raises(ValueError, match=r"^effort_limit:"):
        kuka(effort_limit=[1.0, 2.0])


def test_bad_target_joints_and_prefix_map_are_rejected():
    with pytest.raises(ValueError, match=r"^target_joints:"):
        franka(target_joints=["fr3_joint1"] * 7)
    with pytest.raises(ValueError, match=r"^joint_prefix_map:"):
        hb.parse_prefix_map(["panda_joint-fr3_joint"])
    with pytest.raises(ValueError, match=r"^joint_prefix_map:"):
        hb.parse_prefix_map([])


def test_parse_prefix_map():
    assert hb.parse_prefix_map(["panda_joint:fr3_joint", "lbr_A:lbr_A"]) == {
        "panda_joint": "fr3_joint",
        "lbr_A": "lbr_A",
    }


# --- KUKA ---------------------------------------------------------------------------------


def test_kuka_command_is_setpoint_and_feedforward_in_a1_to_a7_order():
    perm = [6, 5, 4, 3, 2, 1, 0]
    cmd = kuka(joint_names=[LBR[i] for i in perm], positions=Q[perm], velocities=QD[perm],
               accelerations=QDD[perm], effort=TAU[perm])
    assert cmd.joint_position == pytest.approx(Q.tolist())
    assert cmd.torque == pytest.approx(TAU.tolist())
    assert len(cmd.joint_position) == len(cmd.torque) == 7


def test_kuka_lookahead_and_damping_feedforward():
    dt = 0.003
    d = np.array([60.0, 80.0, 30.0, 30.0, 3.0, 2.0, 0.2])
    cmd = kuka(lookahead_s=dt, damping_ff=d)
    qd_pred = QD + QDD * dt
    assert cmd.joint_position == pytest.approx((Q + QD * dt + 0.5 * QDD * dt * dt).tolist(), abs=1e-12)
    assert cmd.torque == pytest.approx((TAU + d * qd_pred).tolist(), abs=1e-12)
    with pytest.raises(ValueError, match=r"^damping_ff:"):
        kuka(damping_ff=[-1.0] * 7)


def test_kuka_hold_command():
    hold = hb.kuka_hold_command(Q)
    assert hold.joint_position == pytest.approx(Q.tolist()) and hold.torque == [0.0] * 7
    with pytest.raises(ValueError, match=r"^joint_position: .*lbr_A4"):
        hb.kuka_hold_command(np.where(np.arange(7) == 3, np.nan, Q))
    with pytest.raises(ValueError, match=r"^joint_position: 6 values"):
        hb.kuka_hold_command(Q[:6])


def test_is_stale():
    assert not hb.is_stale(STAMP, STAMP + 50_000_000, 0.05)
    assert hb.is_stale(STAMP, STAMP + 50_000_001, 0.05)
    assert not hb.is_stale(STAMP, STAMP - 10_000_000, 0.05)  # from the future: not stale
    with pytest.raises(ValueError, match=r"^stale_timeout_s:"):
        hb.is_stale(STAMP, STAMP, 0.0)


# --- joint states back to the project's names ----------------------------------------------


def test_joint_state_is_renamed_back_and_fingers_are_dropped():
    names = ["fr3_finger_joint1"] + list(hb.FR3_JOINTS)
    pos = np.concatenate([[0.04], Q])
    vel = np.concatenate([[0.0], QD])
    names_out, p, v, e = hb.joint_state_to_project(names, pos, vel, [], hb.FRANKA_PREFIX_MAP)
    assert names_out == list(hb.FR3_JOINTS)
    names_out, _, _, _ = hb.joint_state_to_project(names, pos, vel, [], {"panda_joint": "fr3_joint"})
    assert names_out == PANDA
    assert p == pytest.approx(Q.tolist()) and v == pytest.approx(QD.tolist()) and e == []


def test_joint_state_identity_map_and_rejections():
    names_out, p, _, e = hb.joint_state_to_project(LBR, Q, QD, TAU, hb.KUKA_PREFIX_MAP)
    assert names_out == LBR and e == pytest.approx(TAU.tolist())
    with pytest.raises(ValueError, match=r"^velocity: 6 values"):
        hb.joint_state_to_project(LBR, Q, QD[:6], [], hb.KUKA_PREFIX_MAP)
    with pytest.raises(ValueError, match=r"^position: .*lbr_A1"):
        hb.joint_state_to_project(LBR, np.where(np.arange(7) == 0, np.nan, Q), [], [], hb.KUKA_PREFIX_MAP)


def test_the_extrapolated_point_is_checked_against_the_limits_again():
    """A reference inside the limits whose point, predicted horizon_s ahead, is outside is refused."""
    from robot_dyn.robots import load_robot

    fr3 = load_robot("fr3")
    limits = hb.limits_in_target_order(fr3.joint_names, fr3.q_min, fr3.q_max, hb.FRANKA_PREFIX_MAP, hb.FR3_JOINTS)
    assert np.array_equal(limits[0], fr3.q_min) and np.array_equal(limits[1], fr3.q_max)
    q = fr3.home.copy()
    q[5] = fr3.q_max[5] - 0.001  # 1 mrad inside, moving out at 0.5 rad/s: 10 mrad out 20 ms later
    qd = np.zeros(7)
    qd[5] = 0.5
    args = dict(joint_names=list(fr3.joint_names), positions=q, velocities=qd, accelerations=np.zeros(7),
                effort=np.zeros(7), stamp_ns=STAMP, prefix_map=hb.FRANKA_PREFIX_MAP, position_limits=limits)
    with pytest.raises(ValueError, match=r"positions: the point 0.02 s ahead leaves the position limits: fr3_joint6="):
        hb.franka_jtc_command(**args)
    assert hb.franka_jtc_command(**{**args, "extrapolate": False}).positions[5] == q[5]  # the point itself is inside
    to_lbr = {"fr3_joint": "lbr_A"}  # the same limits under the KUKA's names
    lbr_limits = hb.limits_in_target_order(fr3.joint_names, fr3.q_min, fr3.q_max, to_lbr, hb.LBR_JOINTS)
    with pytest.raises(ValueError, match=r"positions: the setpoint 0.05 s ahead leaves the position limits: lbr_A6="):
        hb.kuka_torque_command(**{**args, "prefix_map": to_lbr, "position_limits": lbr_limits}, lookahead_s=0.05)
    assert hb.kuka_torque_command(**{**args, "prefix_map": to_lbr, "position_limits": lbr_limits}).joint_position[5] == q[5]
    with pytest.raises(ValueError, match="joint_prefix_map: .* no limits for"):
        hb.limits_in_target_order(fr3.joint_names, fr3.q_min, fr3.q_max, {"panda_joint": "fr3_joint"}, hb.FR3_JOINTS)


def test_age_counts_from_the_stamp_or_from_the_arrival():
    assert hb.freshness_stamp_ns(STAMP, STAMP + 5, True) == STAMP
    assert hb.freshness_stamp_ns(0, STAMP, True) == STAMP  # stamp 0: apply on receipt
    assert hb.freshness_stamp_ns(STAMP - 10**9, STAMP, False) == STAMP  # another machine's clock


def test_franka_stale_window_must_stay_below_the_horizon():
    hb.check_franka_timing(0.015, 0.02)
    hb.check_franka_timing(0.05, 0.02, use_reference_stamp=False)  # ages from arrival: JTC starts on receipt
    with pytest.raises(ValueError, match=r"stale_timeout_s \(0.05\) must be below horizon_s \(0.02\)"):
        hb.check_franka_timing(0.05, 0.02)
