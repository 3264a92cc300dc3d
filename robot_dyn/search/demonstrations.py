"""Demonstrated searches: the part of an insertion episode where the peg rests on the fixture and the
operator looks for the hole.

All of it in the fixture's frame (robot_dyn.tasks.insert.InsertConfig.to_fixture: origin at the nominal
hole on the top face, z out of the face along the hole's axis), so a leaning fixture's searches read as a
level one's. A search begins when the peg first touches the fixture's top (the applied force presses into
the face by more than `contact_n` and the tip is within `surface_band` of it) and ends when the peg drops
into the hole (the tip `entered` below the face) or the episode ends. What is kept, per sample: the
tip's offset from the nominal hole on the face (d = 2: x, y, m), its velocity (m/s), and the force
the robot applied on the part (3,) N, fixture axes: minus the contact wrench the part exerts on the peg
(the sim's /task/contact_wrench, or a real arm's estimated external wrench published there).

Sources: an in-process episode (the tip and contact force per outer tick, robot_dyn.search.execution)
or a recorded episode folder (the recorder's rosbag2: /joint_states through forward kinematics with
the task's tool, /task/contact_wrench), so a real arm's bag is read the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DemoError(ValueError):
    """A demonstration that cannot be read or holds no search; the message names the episode and field."""


@dataclass
class SearchDemo:
    """t (T,) s; offsets (T, d) m from the nominal hole on the face; velocities (T, d) m/s; forces (T, 3) N
    applied by the robot on the part, fixture axes; found: the peg dropped into the hole at its end."""

    t: np.ndarray
    offsets: np.ndarray
    velocities: np.ndarray
    forces: np.ndarray
    found: bool
    source: str = ""

    @property
    def duration(self) -> float:
        return float(self.t[-1] - self.t[0])

    def resampled(self, rate_hz: float) -> "SearchDemo":
        """The samples nearest a grid at rate_hz (fewer, less correlated samples for fitting)."""
        grid = np.arange(self.t[0], self.t[-1] + 1e-9, 1.0 / rate_hz)
        k = np.clip(np.searchsorted(self.t, grid), 0, len(self.t) - 1)
        return SearchDemo(self.t[k], self.offsets[k], self.velocities[k], self.forces[k], self.found, self.source)


def search_segment(t, tip, applied_force, entered: float = 0.0007, contact_n: float = 1.0,
                   surface_band: float = 0.002, smoothing_s: float = 0.05, source: str = "") -> SearchDemo:
    """The search in an episode's samples: t (T,) s, tip (T, 3) m and applied_force (T, 3) N (the robot on
    the part), fixture frame (the top face at z = 0, the nominal hole at x = y = 0). Velocities are finite
    differences over `smoothing_s`. DemoError when the peg never rests on the top."""
    t, tip, force = np.asarray(t, float), np.asarray(tip, float), np.asarray(applied_force, float)
    if t.ndim != 1 or tip.shape != (len(t), 3) or force.shape != (len(t), 3):
        raise DemoError(f"{source}: expected t (T,), tip (T, 3) and force (T, 3), got {t.shape}, {tip.shape}, {force.shape}")
    if not (np.all(np.isfinite(tip)) and np.all(np.isfinite(force)) and np.all(np.diff(t) > 0)):
        raise DemoError(f"{source}: tip and force must be finite and the times increasing")
    resting = (force[:, 2] < -contact_n) & (np.abs(tip[:, 2]) < surface_band)
    if not resting.any():
        raise DemoError(f"{source}: the peg never rests on the fixture's top (no force above {contact_n} N there): no search")
    first = int(np.argmax(resting))
    dropped = np.flatnonzero(tip[first:, 2] < -entered)
    last = first + int(dropped[0]) if dropped.size else len(t) - 1
    if last - first < 2:
        raise DemoError(f"{source}: the peg dropped in at its first touch: no search to learn from")
    offsets = tip[first:last + 1, :2]
    times = t[first:last + 1]
    lag = max(1, int(round(smoothing_s / max(np.median(np.diff(times)), 1e-6) / 2)))
    ahead, behind = np.minimum(np.arange(len(times)) + lag, len(times) - 1), np.maximum(np.arange(len(times)) - lag, 0)
    velocities = (offsets[ahead] - offsets[behind]) / (times[ahead] - times[behind])[:, None]
    return SearchDemo(times, offsets, velocities, force[first:last + 1], bool(dropped.size), source)


def demo_from_episode(path: str | Path, task=None, wrench_topic: str = "/task/contact_wrench") -> SearchDemo:
    """The search in a recorded episode folder (a rosbag2: the recorder's, or a real arm's): the tip from
    /joint_states by forward kinematics with the task's tool (the robot named in its metadata, else the
    Panda), the applied force from `wrench_topic` held to each state: a WrenchStamped of the force the
    part exerts on the tool, base frame (the sim's contact wrench, or a robot's estimated external
    wrench). task: the `insert` task (default: configs/tasks/insert.yaml)."""
    from rosbags.rosbag2 import Reader

    from robot_dyn.dynamics.rigid_body import RigidBody
    from robot_dyn.recording.episode_bag import RecordingError, episode_facts, header_ns
    from robot_dyn.recording.lerobot_export import TYPESTORE
    from robot_dyn.robots import load_robot
    from robot_dyn.robots.tools import with_tool
    from robot_dyn.tasks import load_task

    path = Path(path)
    try:
        facts = episode_facts(path)
    except RecordingError as exc:
        raise DemoError(str(exc)) from None
    task = task or load_task("insert")
    try:
        with Reader(path) as reader:
            by_topic = {c.topic: c for c in reader.connections}
            for topic in ("/joint_states", wrench_topic):
                if topic not in by_topic:
                    raise DemoError(f"{path}: {topic}: not recorded (a search needs the arm's states and the contact wrench)")

            def read(topic):
                connection = by_topic[topic]
                return [TYPESTORE.deserialize_cdr(d, connection.msgtype) for _, _, d in reader.messages(connections=[connection])]

            states, wrenches = read("/joint_states"), read(wrench_topic)
    except DemoError:
        raise
    except Exception as exc:  # rosbags raises its own errors for damaged files
        raise DemoError(f"{path}: not a readable episode ({exc})") from None
    if not states or not wrenches:
        raise DemoError(f"{path}: {'/joint_states' if not states else wrench_topic}: no messages")
    robot = with_tool(load_robot(facts.get("robot") or "panda"), task.tool)
    names = list(states[0].name)
    missing = sorted(set(robot.joint_names) - set(names))
    if missing:
        raise DemoError(f"{path}: /joint_states: joints {missing} of '{robot.name}' are missing")
    order = [names.index(n) for n in robot.joint_names]
    model = RigidBody(robot)
    t = np.array([header_ns(m.header) for m in states]) * 1e-9
    tip = np.array([task.tool.tip(*model.ee_pose(np.asarray(m.position, float)[order])) for m in states])
    wrench_t = np.array([header_ns(m.header) for m in wrenches]) * 1e-9
    contact = np.array([[m.wrench.force.x, m.wrench.force.y, m.wrench.force.z] for m in wrenches])
    held = np.clip(np.searchsorted(wrench_t, t, side="right") - 1, 0, len(wrench_t) - 1)
    c = task.config
    return search_segment(t, c.to_fixture(tip), c.axes_to_fixture(-contact[held]), source=str(path))
