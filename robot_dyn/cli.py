"""robot-dyn: the project's command line.

  robot-dyn sim                 the main job: graph in MuJoCo, headless, writes runs/<stamp>/
  robot-dyn launch sim          start the sim graph as processes (plain venv; no ros2 launch needed)
  robot-dyn bench control       control benchmarks, one JSON object
  robot-dyn bench safety        safety filter: 200+ randomised scenarios, violations and timing
  robot-dyn excitation          optimise an excitation trajectory, report its condition number
  robot-dyn collect inverse-dynamics   record an inverse-dynamics dataset in simulation
  robot-dyn train inverse-dynamics     train a model (nominal|identified|blackbox|hybrid) on it
  robot-dyn record rope         record rope-push RGB-D episodes (images, ground truth) for offline tracking
  robot-dyn track EPISODE       track a recorded episode with 3D Gaussians, score it against the ground truth
  robot-dyn bench tracking      tracking accuracy and speed, one JSON object
  robot-dyn record pushes       rope pushes as particle trajectories (a dynamics dataset)
  robot-dyn train dynamics      a particle dynamics model (GNN, MLP, spring-mass) on such a dataset
  robot-dyn predict MODEL --dataset DIR   a model's rollout of a whole push beside the real one (mp4)
  robot-dyn bench dynamics      dynamics models against the ground truth on held-out pushes, one JSON object
  robot-dyn bench planning --model DIR   pushing the rope to target shapes with the model, in closed loop
  robot-dyn launch sim --perception    the graph with the rope scene, cameras and the perception node
  robot-dyn launch sim --perception --dynamics-model DIR   and the dynamics planner (/dynamics_planner/start)
  robot-dyn launch sim --mode realtime --teleop joy    drive the arm with a gamepad (joy_node on /joy)
  robot-dyn launch sim --mode realtime --record        record demonstrations (/recorder/start, /recorder/stop)
  robot-dyn launch sim --mode realtime --task insert --teleop expert   the insert task's scripted expert at work
  robot-dyn recording recover DIR      a valid bag from what a killed recorder left
  robot-dyn recording info DIR...      episodes' task, success, duration and messages per topic
  robot-dyn replay DIR                 play an episode's commands back; how closely the arm repeats it
  robot-dyn export lerobot DIR... --out DATASET --fps 10   a LeRobot v3.0 dataset of recorded episodes
  robot-dyn demos --task insert --episodes 10   expert demonstrations, recorded through the real-time graph
  robot-dyn demos --task pusht --episodes 200 --in-process   the same, generated in one process (bulk)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from robot_dyn.tasks import TASK_NAMES


def _overrides(pairs) -> dict:
    """--param node.name=value (value parsed as YAML) -> {node: {name: value}}."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        node, dot, name = key.partition(".")
        if not (sep and dot and node and name):
            raise SystemExit(f"--param expects node.name=value, got '{pair}'")
        out.setdefault(node, {})[name] = yaml.safe_load(value)
    return out


def _sim(args) -> int:
    from robot_dyn.jobs.sim_demo import run_demo

    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.hardware_emulation == "kuka":  # in one process: the KUKA's message type cannot be built here
        import json

        from robot_dyn.jobs.kuka_rehearsal import kuka_report

        print(json.dumps(kuka_report(), indent=2))
        return 0
    run_dir = run_demo(args.robot, args.backend, args.effects, Path(args.out), video=not args.no_video,
                       overrides=_overrides(args.param), hardware_emulation=args.hardware_emulation)
    print((run_dir / "report.md").read_text())
    return 0


def _launch(args) -> int:
    from robot_dyn.bringup.graph import sim_graph
    from robot_dyn.bringup.processes import GraphProcesses

    # Ctrl-C must stop the graph even where SIGINT came in ignored (Python then installs no handler: a
    # launcher started in the background by a non-interactive shell ignored it and took the nodes'
    # clean exits for failures)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the nodes too, instead of orphaning them
    nodes = sim_graph(args.robot, args.backend, args.mode, args.effects, overrides=_overrides(args.param),
                      perception=args.perception, teleop=args.teleop, recorder=args.record, task=args.task,
                      policy=args.policy, search=args.search, search_model=args.search_model,
                      dynamics_model=args.dynamics_model)
    domain = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    workdir = Path(args.log_dir) / time.strftime("%Y%m%d-%H%M%S")
    print(f"starting {[n.name for n in nodes]} in ROS_DOMAIN_ID={domain}; parameter files in {workdir}; Ctrl-C stops")
    graph = GraphProcesses(nodes, workdir, domain_id=domain, echo=True).__enter__()
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            graph.check_alive()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        codes = graph.stop()
    failed = {name: code for name, code in codes.items() if code != 0}
    for name, code in failed.items():
        print(f"node '{name}' exited with code {code}", file=sys.stderr)
    return 1 if failed else 0


def _bench(args) -> int:
    progress = lambda m: print(m, file=sys.stderr)  # noqa: E731 (stdout carries only the JSON)
    if args.what == "control":
        from robot_dyn.bench.control import bench_control

        result = bench_control(tuple(args.robots), quick=args.quick, log=progress)
    elif args.what == "safety":
        from robot_dyn.bench.safety import bench_safety

        result = bench_safety(args.robots[0], scenarios=21 if args.quick else args.scenarios, log=progress)
    elif args.what == "recording":
        from robot_dyn.bench.recording import bench_recording

        os.environ.setdefault("MUJOCO_GL", "egl")
        result = bench_recording(episodes=1 if args.quick else args.episodes_per_task,
                                 in_process_seeds=4 if args.quick else 20, log=progress)
    elif args.what == "imitation":
        from robot_dyn.bench.imitation import main as bench_imitation

        result = bench_imitation(quick=args.quick, workdir=args.out, demos=args.demos, rollouts=args.rollouts,
                                 tasks=tuple(args.tasks) if args.tasks else None)
    elif args.what == "search":
        from robot_dyn.bench.search import bench_search

        os.environ.setdefault("MUJOCO_GL", "egl")
        result = bench_search(quick=args.quick, searches=args.searches, demos=args.demos, workers=args.workers,
                              out=args.out, graph_searches=args.graph_searches, task_config=args.task_config, log=progress)
    elif args.what == "dynamics":
        from robot_dyn.bench.dynamics import bench_dynamics

        os.environ.setdefault("MUJOCO_GL", "egl")
        result = bench_dynamics(quick=args.quick, train_pushes=args.pushes, steps=args.steps, tracked=args.tracked,
                                workers=args.workers, out=args.out, log=progress)
    elif args.what == "planning":
        from robot_dyn.bench.planning import bench_planning

        if not args.model:
            raise SystemExit("bench planning: give --model DIR, a dynamics model (robot-dyn train dynamics, or "
                             "the models/gnn folder of bench dynamics --out)")
        os.environ.setdefault("MUJOCO_GL", "egl")
        try:
            result = bench_planning(args.model, quick=args.quick, seeds=args.seeds, workers=args.workers, out=args.out,
                                    log=progress)
        except ValueError as exc:
            raise SystemExit(f"bench planning: {exc}")
    elif args.what == "tracking":
        from robot_dyn.bench.tracking import bench_tracking

        result = bench_tracking(quick=args.quick, episodes_dir=args.episodes, out_dir=args.out, log=progress)
    else:
        from robot_dyn.bench.inverse_dynamics import bench_inverse_dynamics

        result = bench_inverse_dynamics(args.robots[0], quick=args.quick, log=progress)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _excitation(args) -> int:
    from robot_dyn.dynamics import RigidBody
    from robot_dyn.inverse_dynamics.excitation import ExcitationConfig, optimise_excitation
    from robot_dyn.robots import load_robot

    config = ExcitationConfig(period=args.period, harmonics=args.harmonics, iterations=args.iterations, seed=args.seed)
    model = RigidBody(load_robot(args.robot))
    traj, cond, feasible = optimise_excitation(model, config, log=lambda m: print(m, file=sys.stderr))
    out = Path(args.out or f"runs/excitation/{args.robot}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"robot": args.robot, "condition_number": cond, "within_limits": feasible,
                               "trajectory": traj.to_dict()}, indent=2) + "\n")
    print(json.dumps({"robot": args.robot, "condition_number": cond, "within_limits": feasible, "file": str(out)}))
    return 0 if feasible else 1


def _collect(args) -> int:
    from robot_dyn.inverse_dynamics.collect import CollectionConfig, collect
    from robot_dyn.inverse_dynamics.excitation import FourierTrajectory

    if args.from_bag:
        from robot_dyn.inverse_dynamics.rosbag_import import import_rosbag
        from robot_dyn.robots import load_robot

        out = Path(args.out or f"datasets/{args.robot}-rosbag-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"dataset: {import_rosbag(Path(args.from_bag), load_robot(args.robot), out, args.state_topic, args.command_topic)}")
        return 0
    if not args.excitation:
        raise SystemExit("give --excitation FILE (from 'robot-dyn excitation') or --from-bag BAG")
    try:
        data = json.loads(Path(args.excitation).read_text())
        excitation = FourierTrajectory.from_dict(data["trajectory"])
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{args.excitation}: not an excitation file from 'robot-dyn excitation': {exc}")
    if data.get("robot") != args.robot:
        raise SystemExit(f"{args.excitation} was optimised for '{data.get('robot')}', not '{args.robot}'")
    config = CollectionConfig(robot=args.robot, effects=args.effects, seed=args.seed)
    out = Path(args.out or f"datasets/{args.robot}-{args.effects}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"dataset: {collect(excitation, out, config)}")
    return 0


def _pretrain(args) -> int:
    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.imitation.pretrain import PretrainConfig, build_method, pretrain

    size, method = build_method(args.what, args.preset, seed=args.seed)
    try:
        frames = DemoFrames.load(Path(args.dataset), cameras=args.cameras.split(",") if args.cameras else None,
                                 image_size=args.image_size or size)
    except ValueError as exc:
        raise SystemExit(f"pretrain: {exc}")
    out = Path(args.out or f"runs/pretrain/{args.what}-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = PretrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    print(f"pretrain {args.what} ({args.preset}): {len(frames.episodes)} episodes, cameras {list(frames.cameras)}, "
          f"{frames.image_size} px -> {out}", file=sys.stderr)
    metrics = pretrain(frames, out, method, config, device=args.device, log=lambda m: print(m, file=sys.stderr),
                       train=args.what != "random")
    if metrics:  # rank 0 (or the only process) saved
        print(out)
    return 0


def _train_policy(args) -> int:
    from robot_dyn.imitation.behaviour_cloning import train_policy
    from robot_dyn.imitation.encoders import ResNetEncoder, load_encoder
    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.imitation.policy import PolicyConfig
    from robot_dyn.imitation.pretrain import preset

    try:
        if args.encoder:
            encoder, meta = load_encoder(Path(args.encoder))
            meta["path"] = str(args.encoder)
            cameras, size = meta["cameras"], meta["image_size"]
        else:  # end to end from random initialisation
            size, layout = preset("cpu")
            encoder, meta = ResNetEncoder(layout.encoder_width, small_images=layout.small_images), None
            cameras = args.cameras.split(",") if args.cameras else None
        frames = DemoFrames.load(Path(args.dataset), cameras=cameras, image_size=size)
        config = PolicyConfig(head=args.head, steps=args.steps or 4000, seed=args.seed, finetune_encoder=args.end_to_end or not args.encoder,
                              **({"batch_size": args.batch_size} if args.batch_size else {}))
    except ValueError as exc:
        raise SystemExit(f"train policy: {exc}")
    out = Path(args.out or f"runs/policies/{frames.tasks[0] if frames.tasks else 'task'}-{args.head}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        train_policy(frames, encoder, meta, out, config, log=lambda m: print(m, file=sys.stderr),
                     device=args.device or "cpu")
    except ValueError as exc:
        raise SystemExit(f"train policy: {exc}")
    print(out)
    return 0


def _eval_policy(args) -> int:
    from robot_dyn.jobs.policy_eval import evaluation_run

    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        out = evaluation_run(Path(args.policy), args.episodes, Path(args.out) if args.out else None, args.time_limit,
                             args.workers, datasets=args.dataset, log=lambda m: print(m, file=sys.stderr))
    except ValueError as exc:  # a malformed checkpoint or dataset, named
        raise SystemExit(f"eval policy: {exc}")
    print(out)
    return 0


def _train_search(args) -> int:
    from robot_dyn.jobs.search import learn
    from robot_dyn.search.model import SearchModelError

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = Path(args.out or f"runs/search/model-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        summary = learn(out, args.episodes or (), args.in_process, args.seed, wrench_topic=args.wrench_topic,
                        task_config=args.task_config, log=lambda m: print(m, file=sys.stderr))
    except (ValueError, SearchModelError) as exc:
        raise SystemExit(f"train search: {exc}")
    print(json.dumps(summary))
    return 0


def _search(args) -> int:
    from robot_dyn.jobs.search import search_run
    from robot_dyn.search.execution import SearchSettings
    from robot_dyn.search.model import SearchModelError

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = Path(args.out or f"runs/search/{args.strategy}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        settings = SearchSettings(budget_s=args.budget, speed=args.speed).validated()
        summary = search_run(args.strategy, out, Path(args.model) if args.model else None, args.episodes, args.seed,
                             settings, None if args.offset_radius is None else args.offset_radius * 1e-3,
                             None if args.clearance is None else args.clearance * 1e-3, args.workers,
                             task_config=args.task_config, log=lambda m: print(m, file=sys.stderr))
    except (ValueError, SearchModelError) as exc:
        raise SystemExit(f"search: {exc}")
    print(json.dumps({k: v for k, v in summary.items() if k != "searches_by_seed"}))
    print(out, file=sys.stderr)
    return 0


def _train_dynamics(args) -> int:
    from robot_dyn.object_dynamics.dataset import load_dataset
    from robot_dyn.object_dynamics.evaluation import evaluate
    from robot_dyn.object_dynamics.models import ModelConfig, load_model
    from robot_dyn.object_dynamics.training import TrainConfig, train

    kind = args.model or "gnn"
    out = Path(args.out or f"runs/dynamics/{kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        dataset = load_dataset(args.dataset)
        training, validation = dataset.split(args.validation) if args.validation else (dataset, None)
        model_config = ModelConfig(kind=kind, n_particles=dataset.n_particles, hidden=args.hidden or ModelConfig.hidden)
        config = TrainConfig(steps=args.steps or TrainConfig.steps, batch_size=args.batch_size or TrainConfig.batch_size,
                             seed=args.seed)
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        metrics = train(training, out, model_config, config, validation, device=device,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, FloatingPointError) as exc:
        raise SystemExit(f"train dynamics: {exc}")
    if not metrics:
        return 0  # a torchrun rank other than 0
    if validation is not None:
        scores = evaluate(load_model(out)[0], validation, whole_push=True)
        metrics["validation"] = scores
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps({"out": str(out), "kind": kind, "wall_s": round(metrics["wall_s"], 1),
                      **({k: round(v, 3) for k, v in metrics["validation"].items() if k.startswith(("mde_mm_at", "whole"))}
                         if validation is not None else {})}))
    return 0


def _predict(args) -> int:
    from robot_dyn.jobs.dynamics import predict_push

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = Path(args.out or f"runs/predict/{Path(args.model).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        summary = predict_push(args.model, args.dataset, args.episode, out, oracle=args.model == "oracle")
    except (ValueError, OSError) as exc:
        raise SystemExit(f"predict: {exc}")
    print(json.dumps({k: v for k, v in summary.items() if k != "mde_mm_per_step"}))
    return 0


def _train(args) -> int:
    if args.what == "policy":
        return _train_policy(args)
    if args.what == "search":
        return _train_search(args)
    if not args.dataset:
        raise SystemExit(f"train {args.what}: give --dataset")
    if args.what == "dynamics":
        return _train_dynamics(args)
    from robot_dyn.inverse_dynamics.jobs import train_job
    from robot_dyn.inverse_dynamics.training import TrainConfig

    if args.model not in (None, "nominal", "identified", "blackbox", "hybrid"):
        raise SystemExit(f"train inverse-dynamics: --model must be nominal, identified, blackbox or hybrid, not {args.model}")
    config = TrainConfig(kind=args.model or "hybrid", epochs=args.epochs, seed=args.seed, use_exact=args.exact,
                         hidden=args.hidden or 64)
    train_job(Path(args.dataset), config, Path(args.out) if args.out else None)
    return 0


def _demos(args) -> int:
    import tempfile

    from robot_dyn.jobs.demos import record_expert_demo, record_expert_demo_in_process, record_expert_demos_in_process

    os.environ.setdefault("MUJOCO_GL", "egl")
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.in_process and (args.workers > 1 or args.cameras):
        if args.no_cameras:
            raise SystemExit("demos: --cameras and --no-cameras contradict each other")
        results = record_expert_demos_in_process(args.task, range(args.seed, args.seed + args.episodes), Path(args.out),
                                                 args.cameras.split(",") if args.cameras else None, args.workers)
    elif args.in_process:
        results = [record_expert_demo_in_process(args.task, args.seed + i, Path(args.out), not args.no_cameras, log=log)
                   for i in range(args.episodes)]
    else:
        work = Path(tempfile.mkdtemp(prefix="demos-"))
        results = [record_expert_demo(args.task, args.seed + i, Path(args.out), work / str(i), not args.no_cameras, log=log)
                   for i in range(args.episodes)]
    print(f"{sum(r['success'] for r in results)} of {len(results)} succeeded; episodes in {args.out}/")
    return 0


def _export(args) -> int:
    from robot_dyn.recording.episode_bag import RecordingError
    from robot_dyn.recording.lerobot_export import export_lerobot

    cameras = [c for c in args.cameras.split(",") if c] if args.cameras else None
    try:
        report = export_lerobot(args.episodes, Path(args.out), args.fps, cameras)
    except RecordingError as exc:
        raise SystemExit(f"export: {exc}")
    print(f"{report.out}: {report.episodes} episodes, {report.frames} frames at {args.fps:g} fps "
          f"({sum(report.seconds_per_episode) / report.episodes:.2f} s an episode)")
    return 0


def _replay(args) -> int:
    from robot_dyn.jobs.replay import replay
    from robot_dyn.recording.episode_bag import RecordingError

    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        report = replay(Path(args.episode), args.mode)
    except (RecordingError, ValueError) as exc:
        raise SystemExit(f"replay: {exc}")
    print(json.dumps(report, indent=2))
    return 0


def _recording(args) -> int:
    from rosbags.rosbag2 import Reader

    from robot_dyn.recording.episode_bag import RecordingError, episode_facts, recover

    failed = 0
    for episode in args.episodes:
        try:
            if args.action == "recover":
                out, counts = recover(Path(episode))
                print(f"{episode}: recovered {sum(counts.values())} messages into {out}")
                continue
            facts = episode_facts(Path(episode))
            with Reader(episode) as reader:
                topics = {c.topic: c.msgcount for c in reader.connections}
                duration = reader.duration * 1e-9
            print(f"{episode}: task {facts.get('task', '?')}, success {facts.get('success', '?')}, {duration:.2f} s")
            for topic, count in topics.items():
                print(f"  {topic}: {count}")
        except (RecordingError, OSError, ValueError) as exc:
            print(f"{episode}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _record_pushes(args) -> int:
    from robot_dyn.object_dynamics.dataset import any_direction, import_tracks, record_pushes
    from robot_dyn.perception.episodes import load_config

    try:
        config = load_config(args.config)
        if args.any_direction:
            config = any_direction(config)
        if args.track:
            from robot_dyn.jobs.dynamics import record_tracked_pushes

            dataset = record_tracked_pushes(Path(args.out), args.episodes, args.seed, args.workers,
                                            args.particles or 32, config,
                                            progress=lambda done, n: print(f"[track] {done}/{n}", file=sys.stderr))
        elif args.tracks:
            episodes = []
            for run in args.tracks:
                try:
                    episodes.append(json.loads(Path(run, "config.json").read_text())["episode"])
                except (OSError, ValueError, KeyError) as exc:
                    raise ValueError(f"{run}/config.json: not a 'robot-dyn track' run folder ({exc!r})") from None
            dataset = import_tracks(Path(args.out), episodes, args.tracks, args.particles)
        else:
            dataset = record_pushes(Path(args.out), args.episodes, args.seed, config, args.particles, args.workers,
                                    progress=lambda done, n: print(f"[record] pushes {done}/{n}", file=sys.stderr))
    except ValueError as exc:
        raise SystemExit(f"record pushes: {exc}")
    print(json.dumps({"dataset": str(Path(args.out) / "dataset" if args.track else args.out),
                      "source": dataset.meta["source"], "pushes": len(dataset.episodes),
                      "frames": sum(e.n_frames for e in dataset.episodes), "particles": dataset.n_particles}))
    return 0


def _record(args) -> int:
    from robot_dyn.perception.episodes import record_episodes

    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.what == "pushes":
        return _record_pushes(args)
    try:
        written = record_episodes(Path(args.out), args.episodes, seed=args.seed, config=args.config, width=args.width,
                                  height=args.height, fps=args.fps, shadow_size=args.shadow_size)
    except ValueError as exc:
        raise SystemExit(f"record: {exc}")
    print(json.dumps({"episodes": [str(p) for p in written]}))
    return 0


def _track(args) -> int:
    """Track one recorded episode; writes config.json, track.npz, metrics.json and the overlay
    (<episode>_tracking.png and .mp4) to a run folder."""
    from robot_dyn.jobs.tracking import track_run
    from robot_dyn.perception.tracking import load_tracking_config

    out = Path(args.out or f"runs/track/{Path(args.episode).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        metrics = track_run(args.episode, out, load_tracking_config(args.config), args.device, args.frames,
                            progress=lambda m: print(m, file=sys.stderr, flush=True))
    except ValueError as exc:
        raise SystemExit(f"track: {exc}")
    print(json.dumps({**metrics, "out": str(out)}))
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
    p.add_argument("--param", action="append", metavar="NODE.NAME=VALUE",
                   help="override a node parameter, e.g. controller.feedforward=hybrid (repeatable)")
    p.add_argument("--hardware-emulation", choices=["franka", "kuka"], default=None,
                   help="rehearse a deployment. franka: the FR3's hardware graph (hardware_adapter + controller) "
                        "against the sim emulating its joint_trajectory_controller, in real time; kuka: the KUKA path "
                        "in one process, with the overlay's setpoint filter and upstream's (JSON) (README)")
    p.set_defaults(func=_sim)

    p = sub.add_parser("launch", help="start a node graph as processes")
    p.add_argument("graph", choices=["sim"])
    p.add_argument("--robot", default="panda")
    p.add_argument("--backend", default=None, choices=["mujoco", "pybullet"], help="default: configs/sim.yaml")
    p.add_argument("--mode", default=None, choices=["lockstep", "realtime"], help="default: configs/sim.yaml")
    p.add_argument("--effects", default=None, help="default: configs/sim.yaml")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many wall seconds (0: run until Ctrl-C)")
    p.add_argument("--log-dir", default="runs/launch")
    p.add_argument("--param", action="append", metavar="NODE.NAME=VALUE",
                   help="override a node parameter, e.g. controller.feedforward=hybrid (repeatable)")
    p.add_argument("--perception", action="store_true",
                   help="add the rope scene, the sim's cameras and the perception node (configs/perception_node.yaml)")
    p.add_argument("--task", "--scene", dest="task", default=None, choices=list(TASK_NAMES),
                   help="an imitation task's scene in the sim (robot_dyn/tasks), its tool on the flange")
    p.add_argument("--policy", default=None, metavar="CKPT",
                   help="add the policy node: this policy folder (robot-dyn train policy) drives the arm; "
                        "with --scene, its task's scene (the sim's cameras on)")
    p.add_argument("--teleop", default=None, choices=["joy", "spacemouse", "scripted", "expert"],
                   help="add the teleop node with this device (configs/teleop.yaml; scripted needs "
                        "--param teleop.script=FILE). The keyboard needs a terminal: `ros2 run robot_dyn teleop`")
    p.add_argument("--record", action="store_true",
                   help="add the recorder node (configs/recorder.yaml): episodes on /recorder/start and /recorder/stop")
    p.add_argument("--search", default=None, choices=["ergodic", "sampling", "spiral", "random"],
                   help="with --scene insert: add the search node with this strategy; /search/start runs a search")
    p.add_argument("--search-model", default=None, metavar="DIR",
                   help="a search model folder (robot-dyn train search), for --search ergodic or sampling")
    p.add_argument("--dynamics-model", default=None, metavar="DIR",
                   help="with --perception: add the dynamics_planner node with this particle dynamics model (robot-dyn "
                        "train dynamics); /dynamics_planner/start pushes the rope toward a target shape")
    p.set_defaults(func=_launch)

    p = sub.add_parser("bench", help="benchmarks; print one JSON object")
    p.add_argument("what", choices=["control", "inverse-dynamics", "safety", "tracking", "recording", "imitation", "search",
                                    "dynamics", "planning"])
    p.add_argument("--model", default=None, help="planning: the dynamics model to plan with")
    p.add_argument("--seeds", type=int, default=None, help="planning: start shapes per target shape (default 20)")
    p.add_argument("--json", action="store_true", help="compact single-line JSON")
    p.add_argument("--robots", nargs="+", default=["panda", "iiwa14"], help="inverse-dynamics and safety use the first")
    p.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    p.add_argument("--scenarios", type=int, default=210, help="safety: randomised scenarios (each run three ways)")
    p.add_argument("--episodes", default=None, help="tracking: a folder of recorded episodes (default: record held-out ones)")
    p.add_argument("--episodes-per-task", type=int, default=3, help="recording: graph episodes per task")
    p.add_argument("--out", default=None, help="tracking: write a contact-sheet PNG per episode and metrics.json here; "
                                               "imitation: keep the datasets, encoders and policies here; "
                                               "search, dynamics, planning: the report, plots and models")
    p.add_argument("--demos", type=int, default=None, help="imitation: expert demonstrations per task (default 100); "
                                                            "search: the person's searches (default 10)")
    p.add_argument("--rollouts", type=int, default=None, help="imitation: evaluation episodes per variant (default 50)")
    p.add_argument("--tasks", nargs="+", default=None, help="imitation: tasks (default pusht)")
    p.add_argument("--searches", type=int, default=None, help="search: holes per radius, clearance and strategy (default 25: 50 per radius)")
    p.add_argument("--workers", type=int, default=2, help="search, dynamics: processes")
    p.add_argument("--pushes", type=int, default=None, help="dynamics: training pushes (default 200)")
    p.add_argument("--steps", type=int, default=None, help="dynamics: training steps of the GNN and the MLP (default 3000)")
    p.add_argument("--tracked", type=int, default=None,
                   help="dynamics: RGB-D pushes recorded and tracked for the honest setting (default 30; 0 skips it)")
    p.add_argument("--graph-searches", type=int, default=None,
                   help="search: holes searched again through the real-time graph per strategy (ergodic, spiral; default 3)")
    p.add_argument("--task-config", default=None, help="search: the insert task's config file (default "
                                                       "configs/tasks/insert.yaml; configs/tasks/insert_tilted.yaml: the leaning fixture)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("excitation", help="optimise a Fourier excitation trajectory (JSON out)")
    p.add_argument("--robot", default="panda")
    p.add_argument("--period", type=float, default=10.0)
    p.add_argument("--harmonics", type=int, default=5)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: runs/excitation/<robot>.json")
    p.set_defaults(func=_excitation)

    p = sub.add_parser("collect", help="record a dataset in simulation")
    p.add_argument("what", choices=["inverse-dynamics"])
    p.add_argument("--robot", default="panda")
    p.add_argument("--excitation", help="a file written by 'robot-dyn excitation' (simulation)")
    p.add_argument("--from-bag", help="import a rosbag2 recorded on a real arm instead of simulating")
    p.add_argument("--state-topic", default="/joint_states", help="with --from-bag: sensor_msgs/JointState topic")
    p.add_argument("--command-topic", default=None,
                   help="with --from-bag: commanded torques (JointState effort or Float64MultiArray, URDF order); "
                        "without it the measured effort is used")
    p.add_argument("--effects", default="realistic_memory", help="unmodelled effects profile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="dataset folder (must not exist); default: datasets/<robot>-<effects>-<stamp>")
    p.set_defaults(func=_collect)

    p = sub.add_parser("pretrain", help="pretrain a visual encoder on demonstrations (an export's frames)")
    p.add_argument("what", choices=["dynamo", "simsiam", "inverse_actions", "random"],
                   help="dynamo; baselines: simsiam (augmentations), inverse_actions (to the recorded actions), "
                        "random (the initialisation, saved untrained)")
    p.add_argument("--dataset", required=True, help="a LeRobot export (robot-dyn export lerobot)")
    p.add_argument("--out", default=None, help="checkpoint folder; default runs/pretrain/<method>-<preset>-<stamp>")
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper"],
                   help="cpu: 64 px, a narrow ResNet-18, minutes on 2 cores; paper: 224 px ResNet-18, for a GPU")
    p.add_argument("--cameras", default=None, help="comma-separated camera names (default: all of the export)")
    p.add_argument("--image-size", type=int, default=None, help="px (default: the preset's)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("train", help="train a model on a dataset (inverse dynamics runs under torchrun for DDP)")
    p.add_argument("what", choices=["inverse-dynamics", "policy", "search", "dynamics"])
    p.add_argument("--dataset", default=None, help="inverse-dynamics: a collected dataset; policy: a LeRobot export; "
                                                   "dynamics: a particle dataset (robot-dyn record pushes)")
    p.add_argument("--episodes", nargs="*", default=None,
                   help="search: recorded insert episodes (robot-dyn demos --task insert, or a real arm's bags)")
    p.add_argument("--in-process", type=int, default=0,
                   help="search: also this many searches of the scripted person, in process (seeds --seed..)")
    p.add_argument("--wrench-topic", default="/task/contact_wrench",
                   help="search: the episodes' WrenchStamped of the part's force on the tool, base frame "
                        "(a real arm: its estimated external wrench)")
    p.add_argument("--task-config", default=None,
                   help="search: the insert task's config file, whose fixture the searches are on (default configs/tasks/insert.yaml)")
    p.add_argument("--model", default=None,
                   choices=["nominal", "identified", "blackbox", "hybrid", "gnn", "mlp", "spring_mass", "zero_motion"],
                   help="inverse-dynamics: nominal | identified | blackbox | hybrid (default); "
                        "dynamics: gnn (default) | mlp | spring_mass | zero_motion")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--hidden", type=int, default=None, help="feature width (inverse-dynamics and dynamics default 64)")
    p.add_argument("--validation", type=int, default=0,
                   help="dynamics: hold out the last N pushes and score the model on them after training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exact", action="store_true", help="train on the simulator's exact states, not filtered ones")
    p.add_argument("--out", default=None, help="checkpoint folder; default runs/models/<robot>-<model>-<stamp> "
                                               "(policy: runs/policies/<task>-<head>-<stamp>)")
    p.add_argument("--encoder", default=None, help="policy: a pretrained encoder folder (robot-dyn pretrain); "
                                                   "without it the encoder trains end to end from random init")
    p.add_argument("--head", default="diffusion", choices=["diffusion", "vqbet", "mlp"], help="policy: the action head")
    p.add_argument("--end-to-end", action="store_true", help="policy: train the pretrained encoder with the head")
    p.add_argument("--cameras", default=None, help="policy without --encoder: comma-separated cameras")
    p.add_argument("--steps", type=int, default=None, help="policy, dynamics: training steps (default 4000, 3000)")
    p.add_argument("--batch-size", type=int, default=None, help="policy, dynamics: samples per step (default 256, 32)")
    p.add_argument("--device", default=None, help="policy, dynamics: torch device, e.g. cuda (default: policy cpu, "
                                                  "dynamics cuda when present)")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="a dynamics model's rollout of a recorded push beside the real one: an mp4, "
                                       "the per-step error")
    p.add_argument("model", help="a model folder (robot-dyn train dynamics), or 'oracle' for MuJoCo itself")
    p.add_argument("--dataset", required=True, help="a particle dataset (robot-dyn record pushes)")
    p.add_argument("--episode", type=int, default=0, help="which push of the dataset")
    p.add_argument("--out", default=None, help="run folder (default runs/predict/<model>-<stamp>)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("eval", help="evaluate a policy in the sim: a run folder with videos, a success table and plots")
    p.add_argument("what", choices=["policy"])
    p.add_argument("policy", help="a policy folder (robot-dyn train policy)")
    p.add_argument("--episodes", type=int, default=50, help="rollouts on held-out seeds")
    p.add_argument("--time-limit", type=float, default=30.0, help="s of sim time per rollout")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--dataset", default=None,
                   help="retrain on 25/50/100 %% of this export's episodes (same encoder and settings) for the "
                        "success vs demonstrations plot")
    p.add_argument("--out", default=None, help="run folder (default runs/eval/<policy>-<stamp>)")
    p.set_defaults(func=_eval_policy)

    p = sub.add_parser("search", help="search for an offset hole with the insert task's peg (in process): a strategy "
                                      "against holes drawn in the uncertainty radius; results, plots")
    p.add_argument("--strategy", required=True, choices=["ergodic", "sampling", "spiral", "random"])
    p.add_argument("--model", default=None, help="a search model folder (robot-dyn train search), for ergodic and sampling")
    p.add_argument("--episodes", type=int, default=10, help="searches, each a hole drawn by its seed")
    p.add_argument("--seed", type=int, default=10000, help="the first hole's seed (held out from demonstrations)")
    p.add_argument("--offset-radius", type=float, default=None, help="mm, the uncertainty radius (default: the task's, 10)")
    p.add_argument("--clearance", type=float, default=None, help="mm, the hole's diametral clearance (default: the task's, 0.5)")
    p.add_argument("--task-config", default=None, help="the insert task's config file (default configs/tasks/insert.yaml; "
                                                       "configs/tasks/insert_tilted.yaml: the leaning fixture)")
    p.add_argument("--budget", type=float, default=60.0, help="s of searching before giving up")
    p.add_argument("--speed", type=float, default=0.012, help="m/s along the learned and random paths")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None, help="run folder (default runs/search/<strategy>-<stamp>)")
    p.set_defaults(func=_search)

    p = sub.add_parser("record", help="rope: simulated RGB-D episodes (format: robot_dyn/perception/episodes.py); "
                                      "pushes: particle datasets (robot_dyn/object_dynamics/dataset.py)")
    p.add_argument("what", choices=["rope", "pushes"])
    p.add_argument("--episodes", type=int, default=1, help="number of episodes (one push each)")
    p.add_argument("--tracks", nargs="*", default=None,
                   help="pushes: run folders of 'robot-dyn track' whose tracked particles make the dataset "
                        "(instead of simulating pushes with ground-truth particles)")
    p.add_argument("--track", action="store_true",
                   help="pushes: record RGB-D pushes (OUT/rgbd), track them with 3D Gaussians (OUT/tracks) and import "
                        "the tracked particles (OUT/dataset): the honest setting")
    p.add_argument("--particles", type=int, default=None,
                   help="pushes: particles per push, farthest-point sampled from the ground-truth vertices or "
                        "the tracked particles (default: all)")
    p.add_argument("--workers", type=int, default=2, help="pushes: processes")
    p.add_argument("--any-direction", action="store_true",
                   help="pushes: at any angle to the rope and anywhere along it (the config's pushes keep within 30 deg "
                        "of its normal, away from the ends); train planning models on these")
    p.add_argument("--out", required=True, help="folder for episode_000, episode_001, ...")
    p.add_argument("--seed", type=int, default=0, help="episode i uses the seed (seed, i)")
    p.add_argument("--width", type=int, default=None, help="image width, px (default: configs/perception.yaml)")
    p.add_argument("--height", type=int, default=None, help="image height, px")
    p.add_argument("--fps", type=float, default=None, help="frames per second of sim time")
    p.add_argument("--shadow-size", type=int, default=None, help="shadow map size, px; 0 renders without shadows")
    p.add_argument("--config", default=None, help="scene/camera/push config (default: configs/perception.yaml)")
    p.set_defaults(func=_record)

    p = sub.add_parser("track", help="track a recorded episode with 3D Gaussians; metrics against the ground truth")
    p.add_argument("episode", help="an episode folder from 'robot-dyn record rope'")
    p.add_argument("--out", default=None, help="run folder; default runs/track/<episode>-<stamp>")
    p.add_argument("--config", default=None, help="file with a 'tracking:' section (default: configs/perception.yaml)")
    p.add_argument("--device", default="cpu", help="torch device: cpu | cuda")
    p.add_argument("--frames", type=int, default=None, help="track only the first N frames")
    p.set_defaults(func=_track)

    p = sub.add_parser("demos", help="expert demonstrations of a task, recorded through the real-time graph")
    p.add_argument("--task", required=True, choices=list(TASK_NAMES))
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i (the scene's randomisation and the expert's)")
    p.add_argument("--out", default="recordings", help="the episodes' folder")
    p.add_argument("--no-cameras", action="store_true", help="record without the sim's cameras")
    p.add_argument("--in-process", action="store_true",
                   help="bulk generation: the same scene, controller and expert in one process, written in the "
                        "recorder's format (no ROS graph; several times faster than real time)")
    p.add_argument("--cameras", default=None, help="in process: comma-separated cameras to render (default: all)")
    p.add_argument("--workers", type=int, default=1, help="in process: episodes at once, one process each "
                                                           "(episode folders under <out>/seed<N>/)")
    p.set_defaults(func=_demos)

    p = sub.add_parser("export", help="recorded episodes -> a dataset for imitation learning")
    p.add_argument("format", choices=["lerobot"])
    p.add_argument("episodes", nargs="+", help="episode folders of the recorder node")
    p.add_argument("--out", required=True, help="the dataset folder (must not exist)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the dataset's fixed clock (an integer)")
    p.add_argument("--cameras", default=None, help="comma-separated cameras to include (default: every camera recorded)")
    p.set_defaults(func=_export)

    p = sub.add_parser("replay", help="play a recorded episode's commands back into the graph; how closely the arm repeats it")
    p.add_argument("episode", help="an episode folder of the recorder node")
    p.add_argument("--mode", default=None, choices=["lockstep", "realtime"], help="default: the episode's")
    p.set_defaults(func=_replay)

    p = sub.add_parser("recording", help="recorded demonstration episodes (rosbag2 folders of the recorder node)")
    p.add_argument("action", choices=["recover", "info"])
    p.add_argument("episodes", nargs="+", help="episode folders")
    p.set_defaults(func=_recording)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
