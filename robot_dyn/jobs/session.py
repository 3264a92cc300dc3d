"""A simulation session: the graph as processes plus a client that drives and measures it.

Shared by the main job, `robot-dyn bench control` and the graph tests, so all of them
measure tracking the same way: end-effector position from forward kinematics of the
*measured* joint positions, against the analytic desired path at the same sim time.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from robot_dyn.bringup.graph import sim_graph
from robot_dyn.bringup.processes import GraphProcesses
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.jobs.report import rms
from robot_dyn.nodes.graph_client import GraphClient
from robot_dyn.robots import load_robot


class SimSession:
    """with SimSession(...) as s: s.joint_goal(q); s.figure_eight(...); s.stats()"""

    def __init__(self, robot: str, workdir: Path, backend: str = "mujoco", effects: str = "nominal",
                 mode: str = "lockstep", overrides: dict | None = None, wall_timeout_factor: float = 20.0):
        self.robot = load_robot(robot)
        self.model = RigidBody(self.robot)
        self.workdir = Path(workdir)
        overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        overrides.setdefault("sim", {})["stats_file"] = str(self.workdir / "sim_stats.json")
        overrides.setdefault("controller", {})["stats_file"] = str(self.workdir / "controller_stats.json")
        self.nodes = sim_graph(robot, backend, mode, effects, overrides)
        self.timeout_factor = wall_timeout_factor  # wall seconds allowed per sim second before giving up
        self.graph: GraphProcesses | None = None
        self.client: GraphClient | None = None

    def __enter__(self) -> "SimSession":
        self.graph = GraphProcesses(self.nodes, self.workdir).__enter__()
        try:
            self.client = GraphClient(self.graph.domain_id)
            self.client.wait_for_state(wall_timeout=60)
            for pub in (self.client.joint_goal_pub, self.client.pose_goal_pub, self.client.path_pub):
                self.client.wait_for_subscribers(pub)
            # Ready once the controller answers: in realtime mode sim time runs before it does.
            self.client.spin_until(lambda: bool(self.client.references), 60, "the controller's first reference")
            self.wait(0.1)
        except Exception:
            self.close()
            raise
        self.wall_start, self.sim_start = time.monotonic(), self.client.sim_time
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.graph is not None:
            self.graph.stop()

    # --- driving -------------------------------------------------------------
    def wait(self, duration: float) -> None:
        """Let `duration` seconds of sim time pass."""
        self.client.wait_sim_time(self.client.sim_time + duration, wall_timeout=10 + self.timeout_factor * duration)
        self.graph.check_alive()

    def _accepted_duration(self, kind: str, start: int) -> float:
        event = self.client.wait_for_event(self.client.controller_events, kind, wall_timeout=10.0, start=start)
        match = re.search(r"accepted: duration ([0-9.]+)", event)
        if not match:
            raise RuntimeError(f"controller refused the {kind}: {event}")
        return float(match.group(1))

    def joint_goal(self, q_goal, settle: float = 0.5) -> dict:
        """Send a joint goal, wait for it to finish and settle; return its duration and final error."""
        start = len(self.client.controller_events)
        self.client.send_joint_goal(self.robot.joint_names, q_goal)
        duration = self._accepted_duration("joint goal", start)
        self.wait(duration + settle)
        q = self.client.states[-1][1]
        return {"duration_s": duration, "final_error_rad_max": float(np.max(np.abs(q - np.asarray(q_goal))))}

    def figure_eight(self, radius=0.1, period=4.0, cycles=2, ramp=1.0, plane="yz", lead=0.2) -> dict:
        """Trace a figure-8 around the current end-effector position; return tracking figures and traces."""
        p0, R0 = self.model.ee_pose(self.client.states[-1][1])
        path = figure_eight(p0, radius, period, cycles, ramp, plane, t0=self.client.sim_time + lead, rotation=R0)
        start = len(self.client.controller_events)
        self.client.send_cartesian_path(path, self.robot.ee_frame)
        self._accepted_duration("cartesian path", start)
        self.wait(path.t_end - self.client.sim_time + 0.1)
        t, q, _, _ = self.client.state_arrays(path.t0, path.t_end)
        p_actual = np.array([self.model.ee_pose(qi)[0] for qi in q])
        p_desired = np.array([path.sample(ti).position for ti in t])
        err = np.linalg.norm(p_actual - p_desired, axis=1)
        return {"tracking_rms_m": rms(err), "tracking_max_m": float(err.max()), "samples": int(t.size),
                "t": t, "p_actual": p_actual, "p_desired": p_desired, "plane": plane}

    # --- measuring -----------------------------------------------------------
    def real_time_factor(self) -> float:
        """Sim seconds per wall second since the session was ready (the whole graph over DDS)."""
        return (self.client.sim_time - self.sim_start) / (time.monotonic() - self.wall_start)

    def node_stats(self) -> dict:
        """Stop the graph and read the statistics each node wrote at shutdown."""
        self.close()
        stats = {}
        for name in ("sim", "controller"):
            path = self.workdir / f"{name}_stats.json"
            stats[name] = json.loads(path.read_text()) if path.exists() else {}
        return stats
