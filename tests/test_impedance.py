"""The robot layer: the law, its limits, reference validation and the stale-reference watchdog."""
import numpy as np
import pytest

from robot_dyn.control.impedance import (
    ImpedanceSettings, ReferenceRejected, RobotLayer, impedance_torque, limit_torque, validate_reference,
)
from robot_dyn.robots import load_robot

ROBOT = load_robot("panda")
N = ROBOT.n_joints


def make_layer(**overrides):
    layer = RobotLayer(ROBOT, ImpedanceSettings.from_robot(ROBOT, **overrides))
    layer.observe(ROBOT.home)
    return layer


def test_law_is_feedforward_plus_spring_plus_damper():
    q, qd = ROBOT.home, np.full(N, 0.1)
    q_d = q + 0.01
    tau = impedance_torque(q, qd, q_d, np.zeros(N), np.ones(N), ROBOT.stiffness, ROBOT.damping)
    np.testing.assert_allclose(tau, 1 + ROBOT.stiffness * 0.01 - ROBOT.damping * 0.1)


def test_torque_and_rate_limits_hold():
    tau_prev = np.zeros(N)
    out = limit_torque(np.full(N, 1e4), tau_prev, ROBOT.tau_max, ROBOT.dtau_max, 1e-3)
    np.testing.assert_allclose(out, ROBOT.dtau_max * 1e-3)  # rate limit first: 1 Nm per ms
    big = np.full(N, 1e4)
    for _ in range(200):
        tau_prev = limit_torque(big, tau_prev, ROBOT.tau_max, ROBOT.dtau_max, 1e-3)
    np.testing.assert_allclose(tau_prev, ROBOT.tau_max)


def test_layer_starts_in_hold_and_tracks_a_fresh_reference():
    layer = make_layer()
    q = ROBOT.home.copy()
    tau = layer.torque(0.0, q + 0.01, np.zeros(N), 1e-3)
    assert layer.mode == "hold"
    assert np.all(np.sign(tau[ROBOT.safe_stiffness > 0]) <= 0)  # pulls back toward where it was
    assert layer.submit(0.0, 0.0, ROBOT.joint_names, q, efforts=np.full(N, 0.5))
    layer.torque(0.001, q, np.zeros(N), 1e-3)
    assert layer.mode == "track"


@pytest.mark.parametrize("field, kwargs, message", [
    ("positions", {"positions": [np.nan] + [0.0] * 6}, r"positions: NaN or infinite value for joints \['panda_joint1'\]"),
    ("velocities", {"velocities": [np.inf] + [0.0] * 6}, r"velocities: NaN or infinite"),
    ("effort", {"efforts": [0.0] * 6 + [np.nan]}, r"effort: NaN or infinite value for joints \['panda_joint7'\]"),
    ("length", {"positions": [0.0] * 6}, r"positions: 6 values for 7 joints"),
    ("limits", {"positions": [0.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0]}, r"positions: outside joint limits: panda_joint4=0.5000"),
    ("speed", {"velocities": [0.0] * 6 + [10.0]}, r"velocities: above the velocity limit at joints \['panda_joint7'\]"),
    ("torque", {"efforts": [100.0] + [0.0] * 6}, r"effort: feedforward above the torque limit"),
    ("acceleration", {"accelerations": [0.0] * 3 + [1e5] + [0.0] * 3}, r"accelerations: above 2x the acceleration limit at joints \['panda_joint4'\]"),
])
def test_bad_references_are_rejected_naming_the_field(field, kwargs, message):
    args = {"positions": ROBOT.home.tolist()} | kwargs
    with pytest.raises(ReferenceRejected, match=message):
        validate_reference(ROBOT, 0.0, ROBOT.joint_names, **args)


def test_unknown_missing_and_duplicate_joint_names_are_rejected():
    names = list(ROBOT.joint_names)
    with pytest.raises(ReferenceRejected, match=r"unknown joints \['elbow'\]"):
        validate_reference(ROBOT, 0.0, names[:-1] + ["elbow"], ROBOT.home)
    with pytest.raises(ReferenceRejected, match=r"6 joints given, 7 expected \(missing \['panda_joint7'\]\)"):
        validate_reference(ROBOT, 0.0, names[:-1], ROBOT.home[:-1])
    with pytest.raises(ReferenceRejected, match="duplicate"):
        validate_reference(ROBOT, 0.0, names[:-1] + [names[0]], ROBOT.home)


def test_reference_in_another_joint_order_is_reordered():
    names = list(ROBOT.joint_names)[::-1]
    ref = validate_reference(ROBOT, 0.0, names, ROBOT.home[::-1])
    np.testing.assert_allclose(ref.q, ROBOT.home)


def test_rejected_reference_does_not_move_the_arm_and_is_recorded():
    layer = make_layer()
    q = ROBOT.home.copy()
    layer.torque(0.0, q, np.zeros(N), 1e-3)
    bad = ROBOT.home.copy()
    bad[0] = np.nan
    assert not layer.submit(0.0, 0.0, ROBOT.joint_names, bad)
    assert layer.reference is None and layer.rejected == 1
    assert "positions: NaN" in layer.drain_events()[-1][1]
    np.testing.assert_allclose(layer.torque(0.001, q, np.zeros(N), 1e-3), 0.0)


def test_watchdog_holds_measured_position_with_safe_gains_after_stale_timeout():
    layer = make_layer()
    q = ROBOT.home.copy()
    q_d = q + 0.04
    assert layer.submit(0.0, 0.0, ROBOT.joint_names, q_d, efforts=np.full(N, 1.0))
    t = 0.0
    while t < 0.05:  # fresh: tracks q_d with feedforward (rate limits ramp the torque up)
        tau = layer.torque(t, q, np.zeros(N), 1e-3)
        t += 1e-3
    assert layer.mode == "track" and np.all(tau > 0)
    tau = layer.torque(0.0505, q, np.zeros(N), 1e-3)
    assert layer.mode == "hold"
    assert any("reference stale" in text for _, text in layer.drain_events())
    # Holding where it was at the switch: the torque decays toward zero (no feedforward, no pull to q_d).
    for k in range(300):
        tau = layer.torque(0.051 + k * 1e-3, q, np.zeros(N), 1e-3)
    np.testing.assert_allclose(tau, 0.0, atol=1e-9)


def test_stale_or_future_stamp_is_rejected():
    layer = make_layer()
    assert not layer.submit(1.0, 0.9, ROBOT.joint_names, ROBOT.home)
    assert not layer.submit(1.0, 1.011, ROBOT.joint_names, ROBOT.home)  # beyond the 10 ms the layer keeps
    assert layer.submit(1.0, 1.008, ROBOT.joint_names, ROBOT.home)
    texts = [t for _, t in layer.drain_events()]
    assert "stale" in texts[0] and "future" in texts[1]


def test_nothing_is_accepted_before_the_arm_position_is_known():
    layer = RobotLayer(ROBOT, ImpedanceSettings.from_robot(ROBOT))
    assert not layer.submit(0.0, 0.0, ROBOT.joint_names, ROBOT.home + 0.5)
    assert "no measured joint position yet" in layer.drain_events()[-1][1]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="'stiffness' must be one or 7 finite non-negative numbers"):
        make_layer(stiffness=np.ones(3))
    layer = make_layer()
    with pytest.raises(ValueError, match="'stale_timeout' must be a positive"):
        layer.update_settings(ImpedanceSettings.from_robot(ROBOT, stale_timeout=-1.0))
    with pytest.raises(ValueError, match="'stale_timeout' must be a positive"):  # a list where a number belongs
        layer.update_settings(ImpedanceSettings.from_robot(ROBOT, stale_timeout=[1.0, 2.0]))
    with pytest.raises(ValueError, match="'damping' must be one or 7"):
        layer.update_settings(ImpedanceSettings.from_robot(ROBOT, damping="soft"))
    assert layer.settings.stale_timeout == 0.05  # the old settings stay


def test_late_reference_stops_at_the_horizon_instead_of_keeping_its_velocity():
    layer = make_layer(stiffness=np.zeros(N), safe_stiffness=np.zeros(N))
    qd_ref = np.full(N, 0.5)
    assert layer.submit(0.0, 0.0, ROBOT.joint_names, ROBOT.home, velocities=qd_ref)
    horizon = layer.settings.extrapolation_horizon
    for k in range(40):  # let the rate limiter settle on the tracking torque
        tau_fresh = layer.torque(horizon / 2, ROBOT.home, qd_ref, 1e-3)
    np.testing.assert_allclose(tau_fresh, 0.0, atol=1e-9)  # moving as referenced: no damping force
    for k in range(40):
        tau_late = layer.torque(horizon + 0.01, ROBOT.home, qd_ref, 1e-3)
    assert layer.mode == "track"
    np.testing.assert_allclose(tau_late, -ROBOT.damping * qd_ref, rtol=1e-9)  # brakes toward rest


def test_a_reference_extrapolated_over_the_horizon_stays_on_the_outer_loops_path():
    """The layer rides through a silent controller (extrapolation_horizon past the last reference)
    only because a reference is the constant-acceleration segment that the outer loop integrates
    between its ticks: along a figure-8, the layer's torque on the arm placed where the loop's
    reference for horizon later puts it is the stiffness times a few urad, where a late layer
    (stopping at the horizon's point) pulls against the arm's velocity."""
    from robot_dyn.control.outer_loop import OuterLoop
    from robot_dyn.control.trajectory import figure_eight

    loop = OuterLoop(ROBOT)
    loop.start(0.0, ROBOT.home)
    p0, R0 = loop.desired_pose()
    loop.command_cartesian_path(0.0, figure_eight(p0, 0.1, 4.0, 1, 1.0, t0=0.0, rotation=R0))
    refs, t = [], 0.0
    while loop.motion is not None:
        t += 0.002
        refs.append(loop.tick(t))
    settings = dict(dtau_max=np.full(N, 1e9))  # the law alone, no rate limit from zero
    horizon = ImpedanceSettings.from_robot(ROBOT).extrapolation_horizon
    ticks = int(round(horizon / 0.002))
    worst_on, worst_late = 0.0, 0.0
    for k in range(0, len(refs) - ticks - 2, 25):
        ref, ahead, beyond = refs[k], refs[k + ticks], refs[k + ticks + 2]
        layer = make_layer(**settings)
        layer.observe(ref.q)
        assert layer.submit(ref.stamp, ref.stamp, ROBOT.joint_names, ref.q, ref.qd, ref.qdd)
        tau = layer.torque(ahead.stamp, ahead.q, ahead.qd, 1e-3)
        worst_on = max(worst_on, float(np.max(np.abs(tau))))
        late = layer.torque(beyond.stamp, beyond.q, beyond.qd, 1e-3)
        worst_late = max(worst_late, float(np.max(np.abs(late))))
    assert horizon >= 0.008
    assert worst_on < 0.02, worst_on  # Nm: 2e-5 rad against 1000 Nm/rad at most
    assert worst_late > 50 * worst_on, (worst_late, worst_on)


def test_reference_far_from_the_measured_position_is_rejected_as_a_discontinuity():
    layer = make_layer()
    layer.torque(0.0, ROBOT.home, np.zeros(N), 1e-3)
    jump = ROBOT.home.copy()
    jump[4] += 0.2
    assert not layer.submit(0.0, 0.0, ROBOT.joint_names, jump)
    assert "panda_joint5 is 0.200 rad from the measured position" in layer.drain_events()[-1][1]
    near = ROBOT.home + 0.01
    assert layer.submit(0.0, 0.0, ROBOT.joint_names, near)
