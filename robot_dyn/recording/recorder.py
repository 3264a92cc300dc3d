"""Recording demonstrations: episodes of the graph's topics, each a rosbag2 directory (episode_bag.py).

The recorder takes every message as the CDR bytes it arrived in, from any thread (the node's
subscription callbacks), and never blocks them: a writer thread owns the file, so a slow disk
delays the file, not the subscriptions, and DDS never has to drop for lack of a reader. Per
topic it counts what was received while an episode ran and what was written; the two agree
unless writing failed, and both go into the episode's metadata.

Episodes are named <task>_<NNNN> in the output folder, numbered on from what is already there:
nothing is ever overwritten. stop() returns once the bag is complete on disk (its summary and
metadata.yaml written): no encoding happens here (images are kept raw; export encodes video).
"""
from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from robot_dyn.recording.episode_bag import EpisodeBag, RecordingError

# Topics a demonstration needs, and their types; camera topics follow the sim's rig (CAMERA_STREAM_TYPES).
DEFAULT_TOPICS = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/impedance_reference": "trajectory_msgs/msg/JointTrajectory",
    "/controller/twist_command": "geometry_msgs/msg/TwistStamped",
    "/controller/desired_pose": "geometry_msgs/msg/PoseStamped",
    "/controller/events": "std_msgs/msg/String",
    "/robot_layer/events": "std_msgs/msg/String",
    "/teleop/events": "std_msgs/msg/String",
    # a task scene's (robot_dyn/tasks): nothing is written where none is published
    "/task/score": "std_msgs/msg/Float64",
    "/task/success": "std_msgs/msg/Bool",
    "/task/contact_wrench": "geometry_msgs/msg/WrenchStamped",
    "/task/block_pose": "geometry_msgs/msg/PoseStamped",  # pusht's block (planar: x, y, yaw)
}
# The types of a camera's recorded streams, keyed as robot_dyn.nodes.camera_messages.camera_topics names
# them (the masks are the sim's ground truth, not something a real camera gives: left out)
CAMERA_STREAM_TYPES = {"color": "sensor_msgs/msg/Image", "depth": "sensor_msgs/msg/Image",
                       "info": "sensor_msgs/msg/CameraInfo", "pose": "geometry_msgs/msg/TransformStamped"}
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
FLUSH_PERIOD = 0.5  # s: at most this much is lost if the recorder is killed (episode_bag.recover)


@dataclass
class EpisodeSummary:
    path: Path
    task: str
    success: bool
    duration_s: float  # of the recorder's clock (sim time in the graph) from start to stop
    received: dict[str, int]  # per topic, while the episode ran
    written: dict[str, int]
    save_s: float  # wall seconds stop() took: draining the queue and finishing the bag

    @property
    def dropped(self) -> dict[str, int]:
        return {t: self.received[t] - self.written.get(t, 0) for t in self.received if self.received[t] != self.written.get(t, 0)}

    def line(self) -> str:
        counts = ", ".join(f"{t} {n}" for t, n in self.written.items() if n)
        lost = f"; NOT WRITTEN: {self.dropped}" if self.dropped else "; nothing lost"
        return (f"episode {self.path.name} ({'success' if self.success else 'failure'}): {self.duration_s:.1f} s, "
                f"saved in {self.save_s * 1e3:.0f} ms{lost}; {counts}")


@dataclass
class _Episode:
    bag: EpisodeBag
    task: str
    start: float
    received: dict = field(default_factory=dict)


_STOP = object()


class Recorder:
    """start(task, now) -> offer(topic, now, data) from any thread -> stop(success, now) | discard().

    out_dir: the episodes' folder; topics: topic -> message type; latched: those of them published once
    and kept for late joiners (transient local, e.g. camera poses): their last message goes into every
    episode at its start, as the first of its topic; required: those of them that must have delivered a
    message before an episode may start (a subscription still being matched by discovery would miss
    the episode's first messages). RecordingError (naming the path and
    what failed) from start() when the folder cannot be written, and from stop() when writing failed
    on the way (the partial bag is then left for episode_bag.recover)."""

    def __init__(self, out_dir: Path, topics: dict[str, str], latched=(), flush_period: float = FLUSH_PERIOD,
                 required=()):
        self.out_dir = Path(out_dir)
        self.topics = dict(topics)
        self.latched = {topic: None for topic in latched}  # topic -> its last message (bytes), once one came
        self.unheard = set(required)  # required topics that have not delivered a message yet
        for kind, names in (("latched", self.latched), ("required", self.unheard)):
            unknown = sorted(set(names) - set(self.topics))
            if unknown:
                raise RecordingError(f"{kind} topics {unknown} are not among the recorded topics")
        self.flush_period = flush_period
        self.episode: _Episode | None = None
        self._lock = threading.Lock()  # offer() against start/stop
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: RecordingError | None = None

    @property
    def recording(self) -> bool:
        return self.episode is not None

    def next_path(self, task: str) -> Path:
        numbers = [int(m.group(1)) for p in self.out_dir.glob(f"{task}_*") if (m := re.fullmatch(rf"{re.escape(task)}_(\d+)(-recovered)?", p.name))]
        return self.out_dir / f"{task}_{max(numbers, default=-1) + 1:04d}"

    def start(self, task: str, now: float) -> Path:
        """Open a new episode of `task` at `now` (s, the graph's clock); returns its folder."""
        if not TASK_NAME.match(task or ""):
            raise RecordingError(f"task name: letters, digits, '_' and '-' only, got {task!r}")
        with self._lock:
            if self.unheard:
                raise RecordingError(f"not ready: no message on {', '.join(sorted(self.unheard))} yet "
                                     "(is its publisher running? a new one takes a moment to be discovered)")
            if self.episode is not None:
                raise RecordingError(f"episode {self.episode.bag.path.name} is still recording: stop or discard it first")
            bag = EpisodeBag(self.next_path(task), self.topics)
            self.episode = _Episode(bag, task, now, {t: 0 for t in self.topics})
            self._error = None
            self._thread = threading.Thread(target=self._write, args=(bag,), name="recorder-writer", daemon=True)
            self._thread.start()
            for topic, data in self.latched.items():
                if data is not None:
                    self.episode.received[topic] += 1
                    self._queue.put((topic, int(round(now * 1e9)), data))
        return bag.path

    def offer(self, topic: str, stamp_ns: int, data: bytes) -> None:
        """A message as received (bytes, stamped with the graph's clock in ns); kept if an episode runs."""
        with self._lock:
            if topic in self.latched:
                self.latched[topic] = data
            if self.unheard:
                self.unheard.discard(topic)
            if self.episode is None or topic not in self.episode.received:
                return
            self.episode.received[topic] += 1
            self._queue.put((topic, stamp_ns, data))

    def _write(self, bag: EpisodeBag) -> None:
        """The writer thread: the queue into the bag, flushed every flush_period."""
        next_flush = time.monotonic() + self.flush_period
        while True:
            try:
                item = self._queue.get(timeout=max(next_flush - time.monotonic(), 0.0))
            except queue.Empty:
                item = None
            try:
                if item is _STOP:
                    return
                if item is not None and self._error is None:
                    bag.write(*item)
                if time.monotonic() >= next_flush and self._error is None:
                    bag.flush()
                    next_flush = time.monotonic() + self.flush_period
            except RecordingError as exc:
                self._error = exc  # kept for stop(); later messages are counted as not written

    def _finish_writing(self) -> _Episode:
        with self._lock:
            episode, self.episode = self.episode, None
        if episode is None:
            raise RecordingError("no episode is recording")
        self._queue.put(_STOP)
        self._thread.join()
        return episode

    def stop(self, success: bool, now: float, extra: dict | None = None) -> EpisodeSummary:
        """Finish the episode: every message offered before this call is in the bag when it returns."""
        started = time.perf_counter()
        episode = self._finish_writing()
        if self._error is not None:
            raise RecordingError(f"{self._error} (the partial episode is in {episode.bag.path}; "
                                 f"`robot-dyn recording recover {episode.bag.path}` rescues what was flushed)")
        custom = {"task": episode.task, "success": str(bool(success)).lower(),
                  "duration_s": f"{now - episode.start:.6f}", "start_s": f"{episode.start:.6f}",
                  "received": _counts(episode.received), **(extra or {})}
        written = episode.bag.close({**custom, "written": _counts(episode.bag.counts)})
        return EpisodeSummary(episode.bag.path, episode.task, bool(success), now - episode.start, dict(episode.received),
                              written, time.perf_counter() - started)

    def discard(self) -> Path:
        """Drop the episode being recorded; returns the folder it was in (now removed)."""
        episode = self._finish_writing()
        episode.bag.discard()
        return episode.bag.path


def _counts(counts: dict[str, int]) -> str:
    return ",".join(f"{topic}={n}" for topic, n in counts.items())
