"""Expert demonstrations through the real path: one real-time graph per episode (the task's scene with its
seed, the controller, the teleop node's expert device, the recorder), recorded as a person's would be;
or, for bulk generation, the same scene, controller and expert in one process, written in the recorder's
format with the graph's messages (record_expert_demo_in_process; sim_tests/test_task_graph.py checks
the two give the same episodes)."""
from __future__ import annotations

import time
from pathlib import Path

from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader

from robot_dyn.jobs.session import SimSession
from robot_dyn.nodes import camera_messages as cm
from robot_dyn.nodes.camera_messages import camera_topics
from robot_dyn.nodes.messages import planar_pose_msg, pose_msg, task_score_msgs, twist_msg
from robot_dyn.recording.episode_bag import TYPESTORE

from robot_dyn.tasks import DEMO_CAMERAS as CAMERAS
from robot_dyn.tasks import demo_rig


def record_expert_demo(task: str, seed: int, out: Path, workdir: Path, cameras: bool = True,
                       camera_size: tuple = (CAMERAS["camera_width"], CAMERAS["camera_height"]), log=lambda *_: None) -> dict:
    """Episode `seed` of `task` solved by its expert and recorded into `out`: {'path', 'success', 'save_s'
    (the /recorder/stop round trip, wall s), 'stats' (the nodes' statistics), 'events' (the controller's),
    'robot_events' (the robot layer's)}.
    camera_size: (width, height) px of the cameras, without shadows."""
    size = {"camera_width": camera_size[0], "camera_height": camera_size[1]}
    sim = {"task_seed": seed, **({**CAMERAS, **size} if cameras else {})}
    # the expert waits for the episode to begin (the recorder waits for every camera's first frame: 28 s on a busy
    # machine once, after the expert had pushed the block home unrecorded)
    overrides = {"sim": sim, "teleop": {"seed": seed, "expert_waits_for_recording": True},
                 "recorder": {"out_dir": str(out), "task": task}}
    with SimSession("panda", workdir, mode="realtime", task=task, teleop="expert", recorder=True, overrides=overrides) as s:
        c = s.client
        ok, path = c.recorder("start")
        if not ok:
            raise RuntimeError(f"recorder: {path}")
        c.wait_for_event(c.teleop_events, "expert done", wall_timeout=240)
        s.wait(0.5)
        wall = time.monotonic()
        ok, message = c.recorder("stop")
        save_s = time.monotonic() - wall
        if not ok:
            raise RuntimeError(f"recorder: {message}")
        events, robot_events = list(c.controller_events), list(c.robot_events)
        stats = s.node_stats()
    with Reader(path) as reader:
        success = [TYPESTORE.deserialize_cdr(d, c.msgtype).data for c, _, d in
                   reader.messages(connections=[c for c in reader.connections if c.topic == "/task/success"])]
    result = {"path": path, "success": bool(success and success[-1]), "save_s": save_s, "stats": stats, "events": events,
              "robot_events": robot_events}
    log(f"{task} seed {seed}: {'success' if result['success'] else 'FAILURE'}, saved in {save_s * 1e3:.0f} ms: {path}")
    return result


class GraphMessages:
    """An in-process episode's observer (robot_dyn.tasks.in_process.run_expert) that offers a Recorder what
    the graph's nodes would publish, as the same CDR bytes from the same message builders: the sim's
    /joint_states every outer tick (wire encoder), the task's score, success, contact wrench and object
    poses at score_rate_hz, the cameras (the rig, a wrist camera's pose with each capture) at
    camera_rate_hz; the controller's /impedance_reference every tick and /controller/desired_pose at
    desired_pose_rate_hz; the expert's /controller/twist_command. Not written: the nodes' events."""

    def __init__(self, recorder, task, rig=None, rates: dict | None = None):
        from robot_dyn.bringup import schema

        self.recorder, self.task, self.rig = recorder, task, rig
        rates = rates or {}
        self.score_period = 1.0 / rates.get("score_rate_hz", schema.SIM["score_rate_hz"][0])
        self.camera_rate_hz = rates.get("camera_rate_hz", schema.SIM["camera_rate_hz"][0])
        self.pose_period = 1.0 / rates.get("desired_pose_rate_hz", schema.CONTROLLER["desired_pose_rate_hz"][0])
        self.world_frame = schema.SIM["world_frame"][0]  # the camera poses' frame (the sim's)

    def start(self, arm, loop, episode) -> None:
        from robot_dyn.nodes import wire
        from robot_dyn.perception.live import SimCameraCapture

        self.arm, self.loop, self.episode = arm, loop, episode
        robot = arm.robot
        self.frame = robot.base_link
        self.states = wire.JointStateEncoder(robot.joint_names)
        self.references = wire.ReferenceEncoder(robot.joint_names)
        self.next_score = self.next_pose = arm.time
        self.capture = None
        if self.rig is not None:
            self.capture = SimCameraCapture(arm.backend.model, self.rig, objects=(), rate_hz=self.camera_rate_hz,
                                            start_time=arm.time)
            for cal in self.capture.calibrations:  # latched: the recorder opens the episode with them
                if cal.name not in self.capture.renderer.moving:
                    self._offer(camera_topics(cal.name)["pose"], arm.time, cm.camera_pose_msg(cal, arm.time, self.world_frame))
        self.path = self.recorder.start(self.task.name, arm.time)

    def _offer(self, topic: str, t: float, msg) -> None:
        self.recorder.offer(topic, int(round(t * 1e9)), bytes(serialize_message(msg)))

    def state(self, t, q, qd, tau) -> None:
        stamp = int(round(t * 1e9))
        self.recorder.offer("/joint_states", stamp, self.states.encode(stamp, q, qd, tau))

    def reference(self, ref) -> None:
        stamp = int(round(ref.stamp * 1e9))
        self.recorder.offer("/impedance_reference", stamp, self.references.encode(stamp, ref.q, ref.qd, ref.qdd, ref.tau_ff))

    def command(self, t, command) -> None:
        self._offer("/controller/twist_command", t, twist_msg(command, t, self.frame))

    def after_tick(self, t) -> None:
        model, data = self.arm.backend.model, self.arm.backend.data
        if t >= self.next_pose - 1e-9:
            self.next_pose += self.pose_period
            self._offer("/controller/desired_pose", t, pose_msg(*self.loop.desired_pose(), t, self.frame))
        if t >= self.next_score - 1e-9:
            self.next_score += self.score_period
            for topic, msg in zip(("/task/score", "/task/success", "/task/contact_wrench"),
                                  task_score_msgs(self.episode.score(model, data), t, self.frame)):
                self._offer(topic, t, msg)
            for name, pose in self.episode.objects(model, data).items():
                self._offer(f"/task/{name}", t, planar_pose_msg(pose, 0.0, t, self.frame))
        if self.capture is not None and self.capture.due(t):
            capture = self.capture.capture(data)
            for frame, cal in zip(capture.frames, capture.calibrations):
                topics = camera_topics(frame.name)
                color, depth, _ = cm.frame_msgs(frame, capture.time)
                if frame.name in self.capture.renderer.moving:
                    self._offer(topics["pose"], t, cm.camera_pose_msg(cal, capture.time, self.world_frame))
                self._offer(topics["color"], t, color)
                self._offer(topics["depth"], t, depth)
                self._offer(topics["info"], t, cm.camera_info_msg(cal, capture.time))

    def close(self) -> None:
        if self.capture is not None:
            self.capture.close()


def record_expert_demo_in_process(task_name: str, seed: int, out: Path, cameras: bool = True, robot: str = "panda",
                                  camera_size: tuple = (CAMERAS["camera_width"], CAMERAS["camera_height"]),
                                  log=lambda *_: None, camera_names=None) -> dict:
    """Episode `seed` of `task_name` solved by its expert in one process and recorded into `out` in the
    recorder's format (the graph's topics and messages; robot_dyn.jobs.demos.GraphMessages): {'path',
    'success', 'wall_s'}. Cameras as record_expert_demo's (the scene's rig and the wrist camera, without
    shadows), camera_size (width, height) px; camera_names: only these of them (default: all)."""
    from robot_dyn.nodes.recorder_node import recorded_topics
    from robot_dyn.recording.recorder import Recorder
    from robot_dyn.tasks import load_task
    from robot_dyn.tasks.in_process import run_expert

    task = load_task(task_name)
    rig = demo_rig(task_name, camera_size, camera_names) if cameras else None
    # the recorder node's topics for this rig (nothing to wait for: every message is offered in order)
    topics, latched, _ = recorded_topics({"cameras": ",".join(rig.names) if rig else "", "extra_topics": "",
                                          "required_topics": ""})
    recorder = Recorder(out, topics, latched)
    messages = GraphMessages(recorder, task, rig)
    try:
        result = run_expert(task, seed, robot, observer=messages, scene_extensions=[rig] if rig else ())
    finally:
        messages.close()
    facts = {"robot": robot, "scene": task_name, "task_seed": seed, "mode": "lockstep", "generated": "in_process"}
    summary = recorder.stop(result.success, messages.arm.time, facts)
    log(f"{task_name} seed {seed} (in process): {'success' if result.success else 'FAILURE'}, "
        f"{result.duration_s:.1f} s in {result.wall_s:.1f} s wall: {summary.path}")
    return {"path": summary.path, "success": result.success, "wall_s": result.wall_s}


def _demo_job(args) -> dict:
    task, seed, out, cameras = args
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    # a folder per seed: the recorder numbers episodes by what its folder holds, and the workers run at once
    return record_expert_demo_in_process(task, seed, Path(out) / f"seed{seed:05d}", camera_names=cameras)


def record_expert_demos_in_process(task: str, seeds, out: Path, camera_names=None, workers: int = 1) -> list:
    """record_expert_demo_in_process for each seed, in `workers` processes; episode folders under
    out/seed<NNNNN>/. The results in the seeds' order."""
    from robot_dyn.parallel import spawn_map

    jobs = [(task, int(seed), str(out), tuple(camera_names) if camera_names else None) for seed in seeds]
    return spawn_map(_demo_job, jobs, workers)
