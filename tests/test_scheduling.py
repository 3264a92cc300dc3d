"""The scheduling a real-time node asks for (robot_dyn.nodes.parameters.realtime_priority), checked in a
child process so that this one keeps its own: every thread that exists gets SCHED_FIFO where the
machine permits it (else niceness -10), and a process the node starts afterwards runs at the
normal policy (an MPC solve or a renderer must never hold up the loop)."""
import json
import subprocess
import sys

CHILD = r"""
import json, os, subprocess, sys, threading
from robot_dyn.nodes.parameters import realtime_priority

warnings = []
class Log:
    def warning(self, text): warnings.append(text)

started = threading.Event(); stop = threading.Event()
def wait():
    started.set(); stop.wait()
worker = threading.Thread(target=wait); worker.start(); started.wait()
realtime_priority(Log())
threads = {int(t): os.sched_getscheduler(int(t)) & ~os.SCHED_RESET_ON_FORK for t in os.listdir("/proc/self/task")}
nice = {int(t): os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}
child = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"],
                       capture_output=True, text=True, check=True).stdout.split()
stop.set(); worker.join()
print(json.dumps({"policies": sorted(set(threads.values())), "nice": sorted(set(nice.values())), "n_threads": len(threads),
                  "child": [int(v) for v in child], "warnings": warnings, "fifo": os.SCHED_FIFO, "other": os.SCHED_OTHER}))
"""


def test_realtime_priority_covers_every_thread_and_not_the_children():
    out = json.loads(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60).stdout)
    assert out["n_threads"] >= 2
    if out["policies"] == [out["fifo"]]:  # permitted here: every thread, the one started before the call too
        assert out["warnings"] == []
        assert out["child"][0] == out["other"], "a child process inherited the real-time policy"
    elif out["nice"] == [-10]:  # FIFO refused, niceness permitted
        assert out["policies"] == [out["other"]]
    else:  # neither: the node says so and runs on
        assert out["policies"] == [out["other"]] and out["warnings"], out
