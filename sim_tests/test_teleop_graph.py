"""Teleoperation over DDS in real time: twist commands into the controller, the teleop node's scripted
operator driving the arm, bad commands refused with the field named."""
import numpy as np

from robot_dyn.jobs.session import SimSession
from robot_dyn.paths import config_path


def _ee(s, q):
    return s.model.ee_pose(q)[0]


def test_twist_commands_move_the_arm_stop_it_when_they_expire_and_bad_ones_are_refused(tmp_path):
    with SimSession("panda", tmp_path, mode="realtime") as s:
        c = s.client
        q0 = c.states[-1][1].copy()
        start = len(c.controller_events)
        c.send_twist([0.0, 0.0, 1.0], stamp=max(c.sim_time - 1.0, 1e-3))  # a second old
        c.send_twist([0.0, 0.0, 1.0], frame_id="camera")
        c.send_twist([np.nan, 0.0, 0.0], stamp=0.0)
        c.send_twist([0.0, 0.0, 2.0], stamp=0.0)  # unitless beyond 1
        for field in ("header.stamp", "header.frame_id", "twist.linear"):
            c.wait_for_event(c.controller_events, "", start=start, pattern=rf"twist command rejected .*{field}")
        s.wait(0.3)
        assert np.max(np.abs(c.states[-1][1] - q0)) < 1e-3  # none moved the arm

        # 0.15 m/s up (unitless 1.0), stamped "now", for 1 s of sim time, then nothing
        p0 = _ee(s, c.states[-1][1])
        start = len(c.controller_events)
        t_end = c.sim_time + 1.0
        while c.sim_time < t_end:
            c.send_twist([0.0, 0.0, 1.0], stamp=0.0)
            c.spin_until(lambda t=c.sim_time: c.sim_time >= t + 0.02, 10, "20 ms of sim time")
        c.wait_for_event(c.controller_events, "twist following started", start=start)

        def stream_ended():  # every following the stream started is done (a client that lagged past the twist
            # timeout mid-stream let one come to rest, and its next command started another)
            events = c.controller_events[start:]
            return sum(e.startswith("twist done") for e in events) >= sum(e.startswith("twist following started") for e in events)

        c.spin_until(stream_ended, 30, "the end of the twist stream's motion")
        s.wait(0.3)
        rise = _ee(s, c.states[-1][1])[2] - p0[2]
        # At most 0.15 m/s for as long as the controller followed the stream (its events say how long: a client
        # whose view of sim time lags on a loaded machine streams for longer than 1 s of sim time; one CI run
        # followed for 1.58 s), plus the 11 mm stop; at least most of 1 s (a lagging client only adds to it).
        followed = sum(float(e.split(" after ")[1].split(" s")[0]) for e in c.controller_events[start:]
                       if e.startswith("twist done"))
        assert 0.08 < rise < 0.15 * followed + 0.012 + 0.005, (rise, followed)
        t, q, qd, _ = c.state_arrays(c.sim_time - 0.2)
        assert np.max(np.abs(qd)) < 0.01 and np.max(np.abs(q - q[0])) < 1e-3  # at rest, holding

        # a joint goal takes over from a twist stream, and the goal is reached
        start = len(c.controller_events)
        t_end = c.sim_time + 0.3
        while c.sim_time < t_end:  # a stream, so that the goal meets a live twist
            c.send_twist([1.0, 0.0, 0.0], stamp=0.0)
            c.spin_until(lambda t=c.sim_time: c.sim_time >= t + 0.02, 10, "20 ms of sim time")
        result = s.joint_goal(s.robot.home, settle=0.3)
        assert any(e.startswith("twist preempted") for e in c.controller_events[start:]), c.controller_events[start:]
        assert result["final_error_rad_max"] < 2e-3
        stats = s.node_stats()
        events, robot_events = list(c.controller_events), list(c.robot_events)
    # the four bad ones; a stall could make a few of the ~80 streamed ones come stale (header.stamp, as the
    # second-old one: the controller logs only the first refusal of each field at fault, so none is for another)
    assert 4 <= stats["controller"]["twist_rejections"] <= 8, events
    assert all(e.split(": ")[1] in ("header.stamp", "header.frame_id", "twist.linear")
               for e in events if e.startswith("twist command rejected")), events
    _no_reference_refused_but_for_a_stall(robot_events, events, stats)


def test_the_scripted_operator_drives_the_arm_through_its_waypoints(tmp_path):
    script = config_path("teleop/square.yaml")
    with SimSession("panda", tmp_path, mode="realtime", teleop="scripted",
                    overrides={"teleop": {"script": str(script), "seed": 1}}) as s:
        c = s.client
        c.wait_for_event(c.teleop_events, "script started", wall_timeout=30)
        t_started = c.sim_time
        # the script's offsets are from where it started: the first desired pose, the arm at home (by the
        # time this client reads the event, the arm may be on its way)
        p_start = _ee(s, s.robot.home)
        c.wait_for_event(c.teleop_events, "script done", wall_timeout=120)
        scripted_s = c.sim_time - t_started
        s.wait(0.5)
        p_end = _ee(s, c.states[-1][1])
        t, q, _, _ = c.state_arrays()
        reach = max(np.linalg.norm(_ee(s, qi) - p_start) for qi in q[:: 25])
        events, robot_events = list(c.controller_events), list(c.robot_events)
        stats = s.node_stats()
    # the square's far corner is 0.14 m from its start; the operator returns within its 3 mm tolerance
    assert reach > 0.12, reach
    assert np.linalg.norm(p_end - p_start) < 0.003 + 0.002, p_end - p_start
    assert any(e.startswith("twist following started") for e in events), events
    controller = stats["controller"]
    # the operator's twists (50 Hz) are followed unless one comes stale: a busy core can hold the controller
    # back past a command's 0.1 s of validity (CI met a 0.33 s stall mid-square: 5 refused, the arm held, the
    # square went on), and it is refused, as designed. None is refused for anything else (the controller logs
    # the first refusal for each field at fault), and the stale are rare.
    refused = [e for e in events if e.startswith("twist command rejected")]
    assert all("header.stamp: the command is" in e for e in refused), refused
    assert controller["twist_rejections"] <= 0.05 * 50 * scripted_s, (controller["twist_rejections"], scripted_s)
    # stamp -> the first reference after it went out: a state period plus the middleware, not tens of ms
    assert controller["teleop_latency_count"] > 100
    assert controller["teleop_latency_ms_p99"] < 50, controller
    _no_reference_refused_but_for_a_stall(robot_events, events, stats)


def _no_reference_refused_but_for_a_stall(robot_events, controller_events, stats):
    """No reference was refused for what it asked. A stall is the machine's doing (CI met the controller held
    off its core 0.32 s under a busy core, issue 10): the robot layer holds the arm when references stop, refuses
    those that come stale, and, mid-motion, the one or two that jumped ahead while it held (a discontinuity),
    until the controller's next state restarts it from the arm (OuterLoop.resync). All that is as designed."""
    refused = [e for e in robot_events if "reference rejected" in e]
    stale = [e for e in refused if "is stale" in e]
    jumps = [e for e in refused if "a discontinuity" in e]
    assert len(stale) + len(jumps) == len(refused) == stats["sim"]["rejected_references"], refused
    if jumps:
        holds = [e for e in robot_events if e.endswith("holding position")]
        restarts = [e for e in controller_events if "aborted" in e and e.endswith("restarted from the measured position")]
        assert holds and restarts and len(jumps) <= 4 * len(holds), (jumps, holds, restarts)


def test_a_gamepad_moves_the_arm_only_with_the_dead_man_held_and_a_silent_one_stops_it(tmp_path):
    with SimSession("panda", tmp_path, mode="realtime", teleop="joy") as s:
        c = s.client
        c.wait_for_subscribers(c.joy_pub)
        p0 = _ee(s, c.states[-1][1])
        stick = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # right stick forward: +z (joy_axes 4)
        for held in (0, 1):
            buttons = [0] * 11
            buttons[4] = held  # the left bumper: the dead-man
            t_end = c.sim_time + 0.6
            while c.sim_time < t_end:  # joy_node's autorepeat, 20 Hz
                c.send_joy(stick, buttons)
                c.spin_until(lambda t=c.sim_time: c.sim_time >= t + 0.05, 10, "50 ms of sim time")
            if not held:
                assert np.linalg.norm(_ee(s, c.states[-1][1]) - p0) < 1e-3  # not without the dead-man
        rise = _ee(s, c.states[-1][1])[2] - p0[2]
        assert rise > 0.03, rise  # ~0.6 s at up to 0.15 m/s (less the deadband and the ramp)
        # the gamepad goes silent with the stick pushed: the teleop node stops after joy_timeout_s (0.5 s),
        # the controller's twist timeout then brakes the arm
        c.spin_until(lambda t=c.sim_time: c.sim_time >= t + 1.5, 30, "1.5 s of sim time")
        t, q, qd, _ = c.state_arrays(c.sim_time - 0.3)
        assert np.max(np.abs(qd)) < 0.01, np.max(np.abs(qd))
        travel_after = _ee(s, q[-1])[2] - p0[2] - rise
        assert travel_after < 0.15 * (0.5 + 0.1 + 0.2) + 0.01, travel_after  # wall-clock timeout, twist timeout, braking
