"""The safety filter in the sim graph: MuJoCo, the controller node, DDS.

Distances are measured on the *measured* joint positions (forward kinematics of the
guarded spheres), with no margin: they must never be below -1 mm.
"""
import numpy as np
import yaml

from robot_dyn.jobs.session import SimSession
from robot_dyn.paths import config_path
from robot_dyn.safety.barriers import SphereKinematics, barrier_rows
from robot_dyn.safety.sets import load_safe_sets, obstacle_from_fields

GOAL_OFFSET = np.array([0.0, 0.45, 0.0, 0.45, 0.0, -0.1, 0.0])  # from home: forward and down


def _min_distance(s: SimSession, sets, obstacles, t_from: float) -> float:
    kin = SphereKinematics(s.robot, sets)
    _, q, qd, _ = s.client.state_arrays(t_from)
    return min(float(barrier_rows(kin, sets, obstacles, qi, np.zeros_like(qi), 0.0).h.min()) for qi in q[::5])


def test_goal_inside_an_obstacle_is_approached_never_entered(tmp_path):
    config = yaml.safe_load(config_path("safety.yaml").read_text())
    with SimSession("panda", tmp_path, overrides={"controller": {"safety_filter": "robust"}}) as probe:
        goal = probe.robot.home + GOAL_OFFSET
        p_goal, _ = probe.model.ee_pose(goal)
    # a ball centred on where the flange would end up
    config["obstacles"] = [{"name": "ball", "shape": "sphere", "center": p_goal.tolist(), "radius": 0.05}]
    path = tmp_path / "safety.yaml"
    path.write_text(yaml.safe_dump(config))
    sets = load_safe_sets(probe.robot, path)
    with SimSession("panda", tmp_path / "run", overrides={"controller": {"safety_config": str(path)}}) as s:
        t0 = s.client.sim_time
        s.joint_goal(goal, settle=1.0)
        stopped_at = _min_distance(s, sets, sets.obstacles, t0)
        p_end, _ = s.model.ee_pose(s.client.states[-1][1])
        stats = s.node_stats()["controller"]
    assert stopped_at > -1e-3, f"entered the obstacle by {-stopped_at * 1000:.1f} mm"
    flange = next(sphere.radius for sphere in sets.spheres if sphere.name == "flange")
    assert np.linalg.norm(p_end - p_goal) < 0.05 + flange + 0.03, "stopped far short of the obstacle"
    assert "safety_filter_us_p99" in stats


def test_moving_obstacle_pushes_the_arm_away(tmp_path):
    with SimSession("panda", tmp_path) as s:
        sets = load_safe_sets(s.robot)
        kin = SphereKinematics(s.robot, sets)
        p_hand, _ = s.model.ee_pose(s.robot.home)
        start = p_hand + np.array([0.0, 0.25, 0.0])
        published = []  # (sim time, centre) of each obstacle message
        for k in range(80):  # 4 s at 20 Hz, 7 cm/s toward the hand, ending 3 cm past its centre
            center = start + np.array([0.0, -0.07 * 0.05 * k, 0.0])
            published.append((s.client.sim_time, center))
            s.client.send_sphere_obstacles([(1, center, 0.04)])
            s.wait(0.05)
        t, q, _, _ = s.client.state_arrays(published[0][0])
        moved = np.linalg.norm(s.model.ee_pose(q[-1])[0] - p_hand)
    stamps = np.array([p[0] for p in published])
    distances = []
    for ti, qi in zip(t[::5], q[::5]):  # each measured state against the obstacle as last published
        center = published[max(0, int(np.searchsorted(stamps, ti, side="right")) - 1)][1]
        ball = (obstacle_from_fields("ball", "sphere", 0.04, center=center),)
        distances.append(barrier_rows(kin, sets, ball, qi, np.zeros_like(qi), 0.0).h.min())
    assert moved > 0.03, f"the arm moved only {moved * 1000:.0f} mm"
    assert min(distances) > -1e-3, f"the obstacle got {-min(distances) * 1000:.1f} mm into the arm"


def test_malformed_obstacles_are_rejected_with_a_reason(tmp_path):
    with SimSession("panda", tmp_path) as s:
        s.client.send_sphere_obstacles([(7, [0.5, 0.0, np.nan], 0.05)])
        event = s.client.wait_for_event(s.client.controller_events, "obstacle rejected")
        s.client.send_sphere_obstacles([(8, [0.5, 0.0, 0.3], -0.05)])
        second = s.client.wait_for_event(s.client.controller_events, "obstacle rejected", start=s.client.controller_events.index(event) + 1)
    assert "marker 'test'/7" in event and "not finite" in event
    assert "marker 'test'/8" in second and "scale" in second
