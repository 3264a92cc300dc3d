"""robot-dyn replay EPISODE: play a recorded episode's twist commands back into the graph and say how
closely the arm repeats the recorded motion.

The graph is the episode's own (robot, task scene and seed, mode: from its metadata). The arm is
first brought to the recorded first state by a joint goal; then each command goes out at its
recorded offset from the start, on the graph's clock, through the same /controller/twist_command
a teleop device uses. The report compares the end-effector paths (forward kinematics of the
measured joints) at equal times after the start.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.jobs.session import SimSession
from robot_dyn.recording.episode_bag import episode_facts
from robot_dyn.recording.replay import compare, read_episode
from robot_dyn.robots import load_robot
from robot_dyn.tasks import TASK_NAMES


def replay(episode: Path, mode: str | None = None, workdir: Path | None = None) -> dict:
    """Replay `episode`; returns the comparison (robot_dyn.recording.replay.compare) and what was replayed."""
    facts = episode_facts(episode)
    robot_name = facts.get("robot", "panda")
    scene = facts.get("scene", "")
    task = scene if scene in TASK_NAMES else None
    robot = load_robot(robot_name)
    recorded = read_episode(episode, robot.joint_names)
    if not recorded.commands:
        raise ValueError(f"{episode}: no /controller/twist_command recorded: nothing to replay")
    mode = mode or facts.get("mode", "realtime")
    overrides = {"sim": {"task_seed": int(facts.get("task_seed", -1))}} if task else {}
    workdir = Path(workdir or tempfile.mkdtemp(prefix="replay-"))
    with SimSession(robot_name, workdir, mode=mode, task=task, overrides=overrides) as s:
        c = s.client
        goal = s.joint_goal(recorded.q[0], settle=0.3)
        start = c.sim_time
        for command in recorded.commands:
            c.spin_until(lambda: c.sim_time >= start + command.t, 10 + 20 * command.t, "the next command's time")
            c.send_twist(command.linear, command.angular, command.frame_id, stamp=0.0)
        s.wait(max(recorded.t[-1] - (c.sim_time - start), 0.0) + 0.1)
        t, q, _, _ = c.state_arrays(start)
    model = RigidBody(robot)  # the flange's path (the tool is rigid on it)
    flange = lambda qs: np.array([model.ee_pose(qi)[0] for qi in qs])  # noqa: E731
    report = compare(recorded.t, flange(recorded.q), t - start, flange(q))
    report.update({"episode": str(episode), "commands": len(recorded.commands), "mode": mode,
                   "start_error_rad": goal["final_error_rad_max"]})
    return report
