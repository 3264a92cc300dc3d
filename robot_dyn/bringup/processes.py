"""Start a node set as separate processes in a plain virtual environment (no ros2 launch).

Each node gets a parameter file written from its NodeSpec, its own log file, and the
graph's own ROS_DOMAIN_ID with discovery kept on this host, so concurrent graphs
(tests, a developer's ROS setup) do not see each other.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from robot_dyn.bringup.graph import NodeSpec


def isolated_ros_env(domain_id: int) -> dict:
    """Environment variables that keep a graph on this host in its own DDS domain."""
    return {"ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"}


class GraphProcesses:
    """Context manager: start the nodes, stop them (SIGINT, then SIGKILL) on exit."""

    def __init__(self, nodes: list[NodeSpec], workdir: Path, domain_id: int | None = None, echo: bool = False):
        self.nodes, self.workdir = nodes, Path(workdir)
        self.domain_id = domain_id if domain_id is not None else random.randint(1, 100)
        self.echo = echo
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "GraphProcesses":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **isolated_ros_env(self.domain_id))
        for node in self.nodes:
            self.start(node, env)
        return self

    def start(self, node: NodeSpec, env: dict | None = None) -> None:
        env = env or dict(os.environ, PYTHONUNBUFFERED="1", **isolated_ros_env(self.domain_id))
        params_file = self.workdir / f"{node.name}.params.yaml"
        params_file.write_text(yaml.safe_dump({node.name: {"ros__parameters": node.parameters}}, sort_keys=False))
        cmd = [sys.executable, "-m", node.module, "--ros-args", "-r", f"__node:={node.name}", "--params-file", str(params_file)]
        for source, target in node.remappings:
            cmd += ["-r", f"{source}:={target}"]
        out = None if self.echo else open(self.workdir / f"{node.name}.log", "w")
        self.procs[node.name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        """Raise with the log's tail if a node died."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"node '{name}' exited with code {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else "(no log)"

    def kill(self, name: str) -> None:
        """SIGKILL one node, as a crash would."""
        self.procs[name].kill()
        self.procs[name].wait()

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """SIGINT every node still running (SIGKILL after `timeout`); returns each node's exit code
        (0: a clean exit; -9: killed)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return {name: proc.returncode for name, proc in self.procs.items()}

    def __exit__(self, *exc) -> None:
        self.stop()
