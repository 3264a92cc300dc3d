"""Graph tests: the nodes as separate processes over real DDS (FastDDS from the PyPI wheels).

When a graph test fails, the tails of its nodes' logs (written under the test's tmp_path by
GraphProcesses) are added to the failure report, so a CI failure shows what the nodes said."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

LOG_TAIL_LINES = 25
# A small Gaussian tracker (150 Gaussians, few iterations) that keeps up with 96x72 sim cameras on a loaded
# 2-core machine: the live perception tests' (test_perception_graph.py, test_dynamics_planner_graph.py)
SMALL_TRACKER = """tracking:
  max_gaussians: 150
  voxel_size: 0.006
  init_iterations: 10
  iterations: 5
  warm_start_velocity: 0.5
  n_particles: 24
  particle_min_spacing: 0.01
"""


@pytest.fixture
def small_tracker(tmp_path) -> str:
    """The path of a tracking config file holding SMALL_TRACKER."""
    path = tmp_path / "tracking.yaml"
    path.write_text(SMALL_TRACKER)
    return str(path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.when != "call" or not report.failed or tmp_path is None:
        return
    for log in sorted(Path(tmp_path).rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.sections.append((f"node log {log.relative_to(tmp_path)} (last {len(lines)} lines)", "\n".join(lines)))
