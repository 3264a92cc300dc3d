"""Teleoperation cores: shaping, the devices (a real pseudo-terminal for the keyboard), the scripted operator
driving the real outer loop through its twist mode."""
import os
import pty

import numpy as np
import pinocchio as pin
import pytest

from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.robots import load_robot
from robot_dyn.teleop.devices import DeviceUnavailable, JoyMapping, Keyboard, SpaceMouse
from robot_dyn.teleop.scripted import OperatorSettings, ScriptedOperator, Waypoint, load_script, waypoints_from_script
from robot_dyn.teleop.shaping import ShapingSettings, shape

ROBOT = load_robot("panda")


def test_shaping_has_a_continuous_deadband_scales_and_clips():
    settings = ShapingSettings(deadband=0.2, scales=(1.0, -1.0, 0.5, 1.0, 1.0, 0.0)).validated()
    out = shape([0.1, 0.6, 1.0, 0.2000001, -1.5, 1.0], settings)
    np.testing.assert_allclose(out, [0.0, -0.5, 0.5, 0.0, -1.0, 0.0], atol=1e-6)
    for bad in ([0.0] * 5, [np.nan] + [0.0] * 5):
        with pytest.raises(ValueError, match="device axes"):
            shape(bad, settings)
    with pytest.raises(ValueError, match="axis_scales"):
        ShapingSettings(scales=(2.0,) * 6).validated()
    with pytest.raises(ValueError, match="deadband"):
        ShapingSettings(deadband=1.0).validated()


def test_joy_mapping_reads_axes_and_the_dead_man_and_names_a_short_message():
    mapping = JoyMapping().validated()
    axes, buttons = [0.1, 0.2, 0.0, 0.4, 0.5, 0.0, 0.0, 0.0], [0] * 11
    reading = mapping.read(axes, buttons)
    np.testing.assert_allclose(reading.axes, [0.2, 0.1, 0.5, 0.0, 0.0, 0.4])
    assert not reading.enabled
    buttons[4] = 1
    assert mapping.read(axes, buttons).enabled
    with pytest.raises(ValueError, match="joy axes: the mapping reads axis 4 but the message has 2"):
        mapping.read([0.0, 0.0], buttons)
    with pytest.raises(ValueError, match="joy buttons"):
        mapping.read(axes, [0, 0])
    assert JoyMapping(deadman_button=-1).read(axes, []).enabled
    with pytest.raises(ValueError, match="joy_axes"):
        JoyMapping(axes=(0, 1, 2)).validated()


def test_a_missing_spacemouse_names_what_to_install_or_plug_in():
    with pytest.raises(DeviceUnavailable, match="pyspacemouse|SpaceMouse"):
        SpaceMouse()


def test_keyboard_needs_a_terminal_and_holds_a_key_for_its_hold_time():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as not_a_tty, pytest.raises(DeviceUnavailable, match="interactive terminal"):
        Keyboard(stream=not_a_tty)
    os.close(write_end)
    controller, terminal = pty.openpty()
    with os.fdopen(terminal) as stream:
        keyboard = Keyboard(hold=0.5, stream=stream)
        try:
            assert not keyboard.read(0.0).enabled
            os.write(controller, b"wf")
            reading = keyboard.read(1.0)
            assert reading.enabled
            np.testing.assert_array_equal(reading.axes, [1, 0, -1, 0, 0, 0])
            assert keyboard.read(1.4).enabled and not keyboard.read(1.6).enabled  # released: stops after hold
            os.write(controller, b"a ")  # space stops at once
            assert not keyboard.read(1.7).enabled
        finally:
            keyboard.close()
    os.close(controller)


def run_operator(operator: ScriptedOperator, duration: float):
    """The operator at 50 Hz on the real outer loop at 500 Hz (commands stamped now). Returns the loop
    and the desired positions when each waypoint was passed."""
    loop = OuterLoop(ROBOT, OuterLoopConfig())
    loop.start(0.0, ROBOT.home)
    reached, index = [], 0
    for k in range(1, int(duration / 0.002)):
        t = k * 0.002
        if k % 10 == 1:
            p, R = loop.desired_pose()
            command = operator.command(t, p, R)
            if operator.index > index:
                reached.append(p)
                index = operator.index
            if command is None:
                break
            loop.command_twist(loop.time, loop.time, command[:3], command[3:], "base")
        loop.tick(t)
    return loop, reached


def test_the_scripted_operator_reaches_its_waypoints_through_the_twist_mode_and_repeats_by_seed():
    p0, R0 = OuterLoop(ROBOT, OuterLoopConfig()).model.ee_pose(ROBOT.home)
    turned = pin.exp3(np.array([0.0, 0.0, 0.5])) @ R0  # 0.5 rad about the base's z
    script = [Waypoint(p0 + [0.08, 0.0, -0.05], pause=0.2), Waypoint(p0 + [0.0, 0.1, 0.0], rotation=turned),
              Waypoint(p0, rotation=np.array(R0))]
    operator = ScriptedOperator(script, OperatorSettings(), seed=3)
    loop, reached = run_operator(operator, 20.0)
    assert operator.done, f"stopped at waypoint {operator.index}"
    assert len(reached) == len(script)
    for waypoint, p in zip(script, reached):
        assert np.linalg.norm(p - waypoint.position) < waypoint.tolerance
    np.testing.assert_allclose(loop.desired_pose()[1], R0, atol=0.03)
    again = [ScriptedOperator(script, seed=s).command(0.5, p0, R0) for s in (3, 3, 4)]
    np.testing.assert_array_equal(again[0], again[1])
    assert not np.array_equal(again[0], again[2])


def test_scripts_load_with_offsets_and_bad_ones_name_the_field(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("waypoints:\n  - offset: [0.05, 0, 0]\n    pause_s: 0.5\n"
                    "  - position: [0.4, 0.0, 0.5]\n    quaternion: [1, 0, 0, 0]\n")
    waypoints = waypoints_from_script(load_script(good), [0.3, 0.0, 0.5])
    np.testing.assert_allclose(waypoints[0].position, [0.35, 0.0, 0.5])
    assert waypoints[0].pause == 0.5 and waypoints[0].rotation is None
    np.testing.assert_allclose(waypoints[1].rotation, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    for text, field in (("waypoints: []\n", "non-empty list"),
                        ("waypoints:\n  - offset: [0, 0]\n", r"waypoints\[0\].offset"),
                        ("waypoints:\n  - offset: [0, 0, 0]\n    position: [0, 0, 0]\n", "exactly one"),
                        ("waypoints:\n  - offset: [0, 0, 0]\n    quaternion: [0, 0, 0, 2]\n", "unit quaternion"),
                        ("waypoints:\n  - offset: [0, 0, 0]\n    pause_s: -1\n", "pause_s"),
                        ("waypoints:\n  - offset: [0, 0, 0]\n    speed: 1\n", "unknown fields"),
                        ("waypoints: [\n", "cannot read")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=field):
            load_script(bad)
