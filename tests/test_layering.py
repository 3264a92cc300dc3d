"""The cores never import rclpy (README, Layout), not even inside a function: no core module names rclpy,
the nodes or the jobs (which drive the graph) in any import statement, and importing them all in a fresh
interpreter leaves rclpy unloaded. So the cores run, and are tested, without ROS."""
import ast
import subprocess
import sys
from pathlib import Path

import robot_dyn

CORES = ("robots", "dynamics", "sim", "control", "inverse_dynamics", "safety", "perception", "teleop", "recording",
         "tasks", "imitation", "search", "object_dynamics", "bringup")
FORBIDDEN = ("rclpy", "robot_dyn.nodes", "robot_dyn.jobs", "robot_dyn.bench")
ROOT = Path(robot_dyn.__file__).parent


def _core_files():
    return sorted(p for core in CORES for p in (ROOT / core).rglob("*.py"))


def test_no_core_module_names_ros_the_nodes_or_the_jobs_in_an_import():
    found = []
    for path in _core_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                      if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    assert not found, found


def test_importing_every_core_module_leaves_rclpy_unloaded():
    modules = [f"robot_dyn.{p.relative_to(ROOT).with_suffix('').as_posix().replace('/', '.')}".removesuffix(".__init__")
               for p in _core_files()]
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "    assert 'rclpy' not in sys.modules, name + ' imported rclpy'\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={"MUJOCO_GL": "egl", "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
