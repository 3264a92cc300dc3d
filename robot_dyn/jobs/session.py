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

from robot_dyn.bringup.graph import ARM_STATES, rehearsal_graph, sim_graph
from robot_dyn.bringup.processes import GraphProcesses
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.jobs.report import path_following
from robot_dyn.nodes.graph_client import GraphClient
from robot_dyn.robots import load_robot


class SimSession:
    """with SimSession(...) as s: s.joint_goal(q); s.figure_eight(...); s.stats()"""

    def __init__(self, robot: str, workdir: Path, backend: str = "mujoco", effects: str = "nominal",
                 mode: str = "lockstep", overrides: dict | None = None, wall_timeout_factor: float = 20.0,
                 record_references: bool = False, teleop: str | None = None, recorder: bool = False,
                 perception: bool = False, task: str | None = None, hardware_emulation: str | None = None,
                 policy: str | None = None, search: str | None = None, search_model: str | None = None):
        self.robot = load_robot(robot)
        self.model = RigidBody(self.robot)
        self.workdir = Path(workdir)
        overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        overrides.setdefault("sim", {})["stats_file"] = str(self.workdir / "sim_stats.json")
        overrides.setdefault("controller", {})["stats_file"] = str(self.workdir / "controller_stats.json")
        self.mode, self.state_topic = mode, "/joint_states"
        if hardware_emulation:  # the hardware graph against the emulated vendor controller (real time)
            overrides.setdefault("sim", {}).update(backend=backend, effects_profile=effects)
            self.nodes = rehearsal_graph(hardware_emulation, overrides)
            self.mode, self.state_topic = "realtime", ARM_STATES
        else:
            self.nodes = sim_graph(robot, backend, mode, effects, overrides, perception=perception, teleop=teleop,
                                   recorder=recorder, task=task, policy=policy, search=search, search_model=search_model)
        self.timeout_factor = wall_timeout_factor  # wall seconds allowed per sim second before giving up
        self.record_references = record_references  # the client keeps every reference (else the first)
        self.graph: GraphProcesses | None = None
        self.client: GraphClient | None = None

    def __enter__(self) -> "SimSession":
        self.graph = GraphProcesses(self.nodes, self.workdir).__enter__()
        try:
            self.client = GraphClient(self.graph.domain_id, record_references=self.record_references,
                                      policy="idle" if self.mode == "realtime" else "batch", state_topic=self.state_topic)
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

    def accepted(self, kind: str, start: int) -> tuple[float, float]:
        """(sim time s, duration s) of the controller's acceptance of the `kind` sent after event `start`;
        RuntimeError with the controller's reason if it refused it."""
        event = self.client.wait_for_event(self.client.controller_events, kind, wall_timeout=10.0, start=start,
                                           pattern=rf"{kind} (accepted|rejected)")
        match = re.search(r"accepted at t=([0-9.]+): duration ([0-9.]+)", event)
        if not match:
            raise RuntimeError(f"controller refused the {kind}: {event}")
        return float(match.group(1)), float(match.group(2))

    def done(self, kind: str, start: int, duration: float) -> dict:
        """Wait for the controller to say the `kind` accepted after event `start` is done (its clock
        reached its end): {'done_at_s', 'late_s'} (late: how much time scaling slowed it)."""
        event = self.client.wait_for_event(self.client.controller_events, kind, start=start, pattern=rf"{kind} done at",
                                           wall_timeout=10 + self.timeout_factor * 4 * duration)
        t_done = float(re.search(r"done at t=([0-9.]+)", event).group(1))
        late = re.search(r", ([0-9.]+) s late", event)
        return {"done_at_s": t_done, "late_s": float(late.group(1)) if late else 0.0, "event": event}

    def joint_goal(self, q_goal, settle: float = 0.5) -> dict:
        """Send a joint goal, wait for it to finish and settle; return its duration, final error and
        how late time scaling made it. Times come from the controller's events, so a client that
        lags the graph (it records every state) still measures after the goal."""
        start = len(self.client.controller_events)
        self.client.send_joint_goal(self.robot.joint_names, q_goal)
        _, duration = self.accepted("joint goal", start)
        done = self.done("joint goal", start, duration)
        self.client.wait_sim_time(done["done_at_s"] + settle, wall_timeout=10 + self.timeout_factor * settle)
        self.graph.check_alive()
        q = self.client.states[-1][1]
        return {"duration_s": duration, "late_s": done["late_s"],
                "final_error_rad_max": float(np.max(np.abs(q - np.asarray(q_goal))))}

    def figure_eight(self, radius=0.1, period=4.0, cycles=2, ramp=1.0, plane="yz") -> dict:
        """Trace a figure-8 around the current end-effector position, starting when the controller
        takes it; return tracking figures (robot_dyn.jobs.report.path_following: path_error_* judges the
        shape when the controller slowed the path, late_s > 0) and traces."""
        p0, R0 = self.model.ee_pose(self.client.states[-1][1])
        start = len(self.client.controller_events)
        self.client.send_cartesian_path(figure_eight(p0, radius, period, cycles, ramp, plane, rotation=R0),
                                        self.robot.ee_frame, start_now=True)
        t0, duration = self.accepted("cartesian path", start)
        path = figure_eight(p0, radius, period, cycles, ramp, plane, t0=t0, rotation=R0)
        done = self.done("cartesian path", start, duration)
        self.client.wait_sim_time(done["done_at_s"] + 0.1, wall_timeout=30)
        t, q, _, _ = self.client.state_arrays(path.t0, path.t_end)
        p_actual = np.array([self.model.ee_pose(qi)[0] for qi in q])
        p_desired = np.array([path.sample(ti).position for ti in t])
        return {**path_following(p_actual, p_desired), "samples": int(t.size),
                "late_s": done["late_s"], "t": t, "p_actual": p_actual, "p_desired": p_desired, "plane": plane}

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
