"""The emulated vendor laws (robot_dyn.sim.vendor_laws) against what upstream's code does."""
import numpy as np
import pytest

from robot_dyn import paths
from robot_dyn.sim.vendor_laws import JtcEffortLaw, JtcSettings

YAML = paths.hardware_path("franka/fr3_impedance_controllers.yaml")
JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]
DT = 0.001


@pytest.fixture
def law():
    settings = JtcSettings.from_controllers_yaml(YAML)
    law = JtcEffortLaw(settings, torque_rate=1e9)  # the rate limit has its own test
    law.observe(np.zeros(7))
    return law


def test_settings_come_from_the_deployed_controller_file():
    st = JtcSettings.from_controllers_yaml(YAML)
    assert st.joints == tuple(JOINTS) and st.cmd_timeout == 0.03
    assert st.p.tolist() == [300.0, 300.0, 300.0, 300.0, 125.0, 75.0, 25.0] and st.d[6] == 0.57
    assert not st.i.any() and not st.ff_velocity_scale.any()


def test_malformed_controller_files_name_the_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(YAML.read_text().replace("fr3_joint3: {p: 300.0", "fr3_joint3: {p: -1.0"))
    with pytest.raises(ValueError, match=r"fr3_arm_controller.gains.fr3_joint3.p: expected a number >= 0"):
        JtcSettings.from_controllers_yaml(bad)
    bad.write_text(YAML.read_text().replace("command_interfaces: [effort]", "command_interfaces: [position]"))
    with pytest.raises(ValueError, match="command_interfaces"):
        JtcSettings.from_controllers_yaml(bad)


def test_holds_the_activation_position_then_splines_to_the_point_and_holds_it(law):
    st = law.settings
    q, qd = np.full(7, 0.01), np.full(7, 0.2)
    assert np.allclose(law.torque(0.0, q, qd, DT), st.p * -q - st.d * qd)  # hold at 0 before any message
    point = np.linspace(0.1, 0.7, 7)
    assert law.receive(0.001, 0.001, JOINTS[::-1], 0.02, point[::-1], velocities=np.full(7, 0.5), effort=np.full(7, 2.0))
    law.torque(0.001, q, qd, DT)
    tau = law.torque(0.021, q, qd, DT)  # at the point's time: the point as sent, velocity and effort too
    assert np.allclose(tau, st.p * (point - q) + st.d * (0.5 - qd) + 2.0)
    assert np.allclose(law.torque(0.04, q, qd, DT), tau)  # held after its time, until cmd_timeout


def test_a_message_starts_from_the_last_commanded_state_and_effort_ramps_linearly(law):
    law.torque(0.0, np.zeros(7), np.zeros(7), DT)  # commanded at t = 0 (JTC's time of it): rest at 0, effort 0
    law.receive(0.0005, 0.001, JOINTS, 0.02, np.full(7, 0.1), effort=np.full(7, 4.0))
    q_mid, _, _, effort_mid = law._sample(0.0105)  # halfway from (0, rest) to (0.021, the point)
    assert np.allclose(q_mid, 0.05) and np.allclose(effort_mid, 2.0)


def test_jtc_rejections_and_stamp_zero(law):
    assert not law.receive(1.0, 0.95, JOINTS, 0.02, np.zeros(7))
    assert "non-zero start time (0.9500) that ends in the past" in law.drain_events()[-1][1]
    assert not law.receive(1.0, 1.0, JOINTS[:6], 0.02, np.zeros(6))
    assert not law.receive(1.0, 1.0, JOINTS, 0.02, [np.nan] * 7)
    assert law.rejected == 3 and law.mode == "hold"
    assert law.receive(1.0, 0.0, JOINTS, 0.02, np.full(7, 0.1))  # stamp 0: starts on receipt
    assert law._segment[1] == pytest.approx(1.02)


def test_cmd_timeout_holds_the_measured_position_with_zero_velocity_and_effort(law):
    st = law.settings
    law.receive(0.0, 0.0, JOINTS, 0.02, np.full(7, 0.1), velocities=np.full(7, 1.0), effort=np.full(7, 3.0))
    q = np.full(7, 0.08)
    law.torque(0.0499, q, np.zeros(7), DT)
    assert law.mode == "track"  # not yet: within cmd_timeout after the point
    tau = law.torque(0.0501, q, np.full(7, 0.1), DT)
    assert law.mode == "hold" and law.hold_events == 1
    assert np.allclose(tau, -st.d * 0.1)  # at the measured position, zero velocity and effort
    assert any("Aborted due to command timeout" in text for _, text in law.drain_events())


def test_franka_limits_the_torque_rate():
    law = JtcEffortLaw(JtcSettings.from_controllers_yaml(YAML))
    law.observe(np.zeros(7))
    tau = law.torque(0.0, np.full(7, -1.0), np.zeros(7), DT)  # a 300 Nm step asked
    assert np.allclose(tau, 1.0)  # 1000 Nm/s for 1 ms


# --- KUKA: lbr_fri_ros2's torque command path and KUKA's joint impedance ------------------------

def _lbr(tau=0.04):
    from robot_dyn.sim.vendor_laws import LbrSettings, LbrTorqueLaw

    lim = np.full(7, 2.9)
    law = LbrTorqueLaw(LbrSettings(np.full(7, 800.0), 0.8, tau, -lim, lim, np.full(7, 1.5)), np.full(7, 0.5))
    law.observe(np.zeros(7))
    return law


def test_lbr_holds_the_measured_position_with_zero_torque_before_the_first_command():
    law = _lbr()
    assert np.allclose(law.torque(0.0, np.full(7, 0.01), np.zeros(7), DT), -8.0) and law.mode == "hold"


def test_lbr_filters_the_setpoint_with_upstreams_time_constant():
    law = _lbr(tau=0.04)
    assert law.receive(0.0, np.full(7, 0.1), np.full(7, 1.0))
    for k in range(40):  # one time constant
        tau = law.torque(k * DT, np.zeros(7), np.zeros(7), DT)
    assert np.allclose(law._q_f, 0.1 * (1 - np.exp(-1.0)), rtol=1e-9)  # 63 % of the way after tau
    assert np.allclose(tau, 800.0 * law._q_f + 1.0)
    fast = _lbr(tau=0.0001)
    fast.receive(0.0, np.full(7, 0.1), np.zeros(7))
    fast.torque(0.0, np.zeros(7), np.zeros(7), DT)
    assert np.allclose(fast._q_f, 0.1, rtol=1e-4)  # the overlay's 0.1 ms: no lag worth the name


def test_lbr_command_guard_ends_the_session_and_nan_commands_are_skipped():
    law = _lbr(tau=0.0001)
    law.receive(0.0, np.full(7, 0.1), np.zeros(7))
    assert not law.receive(0.001, [np.nan] * 7, np.zeros(7)) and law._target[0][0] == 0.1  # skipped, as upstream
    assert not law.receive(0.001, np.zeros(6), np.zeros(6)) and law.rejected == 1
    law.torque(0.0, np.zeros(7), np.zeros(7), DT)
    law.receive(0.002, np.full(7, 3.0), np.zeros(7))  # beyond the position limits
    law.torque(0.002, np.zeros(7), np.zeros(7), DT)
    assert law.mode == "stopped" and "left COMMANDING_ACTIVE" in law.drain_events()[-1][1]
    assert not law.receive(0.003, np.zeros(7), np.zeros(7))  # the session is over


def test_kuka_path_in_process_upstreams_setpoint_filter_costs_tracking():
    """The controller's loop -> the adapter's conversion -> lbr_fri_ros2 + KUKA's law against MuJoCo: the
    overlay's 0.1 ms filter tracks the figure-8 better than upstream's 40 ms (its lag acts as extra damping)."""
    from robot_dyn.jobs.kuka_rehearsal import rehearse_kuka

    ours, upstream = rehearse_kuka(0.0001, period=3.0), rehearse_kuka(0.04, period=3.0)
    assert ours["guard_stops"] == upstream["guard_stops"] == 0
    assert ours["goal_error_rad_max"] < 1e-3 and ours["figure8_rms_m"] < 1e-3  # the project's law, in effect
    assert upstream["figure8_rms_m"] > 3 * ours["figure8_rms_m"], (ours, upstream)
