"""Graph tests: the nodes as separate processes over real DDS (FastDDS from the PyPI wheels).

When a graph test fails, the tails of its nodes' logs (written under the test's tmp_path by
GraphProcesses) are added to the failure report, so a CI failure shows what the nodes said."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

LOG_TAIL_LINES = 25


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
