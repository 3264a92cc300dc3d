"""robot-dyn: the project's command line.

  robot-dyn sim                 the main job: graph in MuJoCo, headless, writes runs/<stamp>/
  robot-dyn launch sim          start the sim graph as processes (plain venv; no ros2 launch needed)
  robot-dyn bench control       control benchmarks, one JSON object
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _sim(args) -> int:
    from robot_dyn.jobs.sim_demo import run_demo

    os.environ.setdefault("MUJOCO_GL", "egl")
    run_dir = run_demo(args.robot, args.backend, args.effects, Path(args.out), video=not args.no_video)
    print((run_dir / "report.md").read_text())
    return 0


def _launch(args) -> int:
    from robot_dyn.bringup.graph import sim_graph
    from robot_dyn.bringup.processes import GraphProcesses

    nodes = sim_graph(args.robot, args.backend, args.mode, args.effects)
    domain = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    workdir = Path(args.log_dir) / time.strftime("%Y%m%d-%H%M%S")
    print(f"starting {[n.name for n in nodes]} in ROS_DOMAIN_ID={domain}; parameter files in {workdir}; Ctrl-C stops")
    with GraphProcesses(nodes, workdir, domain_id=domain, echo=True) as graph:
        deadline = time.monotonic() + args.duration if args.duration else None
        try:
            while deadline is None or time.monotonic() < deadline:
                graph.check_alive()
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0


def _bench(args) -> int:
    if args.what != "control":
        raise SystemExit(f"unknown benchmark '{args.what}'")
    from robot_dyn.bench.control import bench_control

    result = bench_control(tuple(args.robots), quick=args.quick, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="robot-dyn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sim", help="the main job: joint goals + figure-8 in MuJoCo, report in runs/")
    p.add_argument("--robot", default="panda")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    p.add_argument("--effects", default="nominal", help="unmodelled effects profile (configs/sim_effects.yaml)")
    p.add_argument("--out", default="runs")
    p.add_argument("--no-video", action="store_true")
    p.set_defaults(func=_sim)

    p = sub.add_parser("launch", help="start a node graph as processes")
    p.add_argument("graph", choices=["sim"])
    p.add_argument("--robot", default="panda")
    p.add_argument("--backend", default=None, choices=["mujoco", "pybullet"], help="default: configs/sim.yaml")
    p.add_argument("--mode", default=None, choices=["lockstep", "realtime"], help="default: configs/sim.yaml")
    p.add_argument("--effects", default=None, help="default: configs/sim.yaml")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many wall seconds (0: run until Ctrl-C)")
    p.add_argument("--log-dir", default="runs/launch")
    p.set_defaults(func=_launch)

    p = sub.add_parser("bench", help="benchmarks; print one JSON object")
    p.add_argument("what", choices=["control"])
    p.add_argument("--json", action="store_true", help="compact single-line JSON")
    p.add_argument("--robots", nargs="+", default=["panda", "iiwa14"])
    p.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    p.set_defaults(func=_bench)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
