"""The live perception pipeline without ROS: synchronising camera streams, checking a frame
set, keeping only the newest set while the tracker is busy, and turning tracker output plus
the end-effector into labelled control particles. robot_dyn.nodes.perception_node wires
these to topics; everything here is testable without a running graph.

Frame-set rules (what the node skips, with a message naming the field, instead of crashing):
* every camera's colour, depth and mask must have the size its calibration gives;
* depth: NaN, +-Inf and values <= 0 are 'no return' (REP 118) and simply unused pixels;
* mask: a camera whose mask is empty (the object is occluded or out of view) is allowed; a set
  in which no camera sees any masked pixel with a valid depth is skipped ('mask: empty ...').
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from robot_dyn.perception.cameras import CameraCalibration, CameraFrame
from robot_dyn.perception.particles import sample_particles

OBJECT_LABEL, TOOL_LABEL = 0, 1


# --- synchronisation -------------------------------------------------------------

class StampSynchronizer:
    """Groups messages from several streams into sets with matching stamps.

    A stand-in for message_filters (not among the PyPI ROS 2 wheels). slop_ns = 0 matches
    exact stamps (the sim node stamps a whole capture alike); slop_ns > 0 behaves like an
    approximate-time policy: a set is every stream's queued message nearest to the newest
    arrival, accepted when all lie within slop_ns of it. Each stream queues at most
    `queue_size` messages; messages older than an emitted set are discarded (counted in
    `discarded`), so memory stays bounded whatever arrives.
    """

    def __init__(self, keys, slop_ns: int = 0, queue_size: int = 4):
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("synchroniser: no streams")
        if slop_ns < 0 or queue_size < 1:
            raise ValueError(f"synchroniser: slop_ns must be >= 0 and queue_size >= 1, got {slop_ns}, {queue_size}")
        self.slop_ns, self.queue_size = int(slop_ns), int(queue_size)
        self.queues: dict = {k: deque() for k in self.keys}
        self.received = {k: 0 for k in self.keys}
        self.discarded = 0  # messages never part of a set
        self.sets = 0

    def add(self, key, stamp_ns: int, item):
        """Queue one message; returns (stamp_ns, {key: item}) when it completes a set, else None."""
        if key not in self.queues:
            raise ValueError(f"synchroniser: unknown stream {key!r}")
        q = self.queues[key]
        self.received[key] += 1
        q.append((int(stamp_ns), item))
        if len(q) > self.queue_size:
            q.popleft()
            self.discarded += 1
        pivot = int(stamp_ns)
        chosen = {}
        for k in self.keys:
            if not self.queues[k]:
                return None
            stamp, value = min(self.queues[k], key=lambda e: abs(e[0] - pivot))
            if abs(stamp - pivot) > self.slop_ns:
                return None
            chosen[k] = (stamp, value)
        newest = max(s for s, _ in chosen.values())
        for k in self.keys:  # everything up to the set is used or stale
            q = self.queues[k]
            before = len(q)
            self.queues[k] = deque(e for e in q if e[0] > newest)
            self.discarded += before - len(self.queues[k]) - 1
        self.sets += 1
        return pivot, {k: v for k, (_, v) in chosen.items()}

    def missing(self) -> list:
        """Streams that have never delivered a message (e.g. a camera_info nobody publishes)."""
        return [k for k in self.keys if self.received[k] == 0]


# --- newest-only hand-over -----------------------------------------------------------

class LatestSlot:
    """A one-item queue between receiving and a slower worker: put() replaces a waiting item
    (the replaced one is dropped and counted), so the worker always takes the newest and the
    lag stays below one processing time plus one arrival interval."""

    def __init__(self):
        self._item = None
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item) -> bool:
        """Offer an item; True if it replaced (dropped) an older waiting one."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None):
        """The waiting item (removed), or None after `timeout` s or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# --- checks --------------------------------------------------------------------------

def check_frame_set(frames: list[CameraFrame], calibrations: list[CameraCalibration]) -> list[str]:
    """Raise ValueError naming the camera and field of a malformed set; returns the names of
    cameras whose mask holds no valid-depth pixel (allowed unless it is every camera)."""
    if len(frames) != len(calibrations) or not frames:
        raise ValueError(f"frame set: {len(frames)} frames for {len(calibrations)} cameras")
    empty = []
    for f, c in zip(frames, calibrations):
        if f.name != c.name:
            raise ValueError(f"frame set: frame '{f.name}' paired with camera '{c.name}'")
        size = (c.height, c.width)
        for key, array in (("rgb", f.rgb), ("depth", f.depth), ("mask", f.mask)):
            if array.shape[:2] != size:
                raise ValueError(f"{f.name}: {key}: image is {array.shape[1]}x{array.shape[0]}, "
                                 f"camera_info says {c.width}x{c.height}")
        if f.rgb.ndim != 3 or f.rgb.shape[2] != 3 or f.rgb.dtype != np.uint8:
            raise ValueError(f"{f.name}: rgb: expected uint8 (H, W, 3), got {f.rgb.dtype} {f.rgb.shape}")
        if f.depth.dtype != np.float32 or not np.all(np.isfinite(f.depth)):
            raise ValueError(f"{f.name}: depth: expected finite float32 metres (no return = 0)")
        if not np.any(f.mask & (f.depth > 0)):
            empty.append(f.name)
    if not any(np.any(f.depth > 0) for f in frames):
        raise ValueError("depth: no valid value in any camera (every pixel NaN, inf or <= 0): nothing to track")
    if len(empty) == len(frames):
        raise ValueError("mask: empty in every camera (no object pixel with a valid depth): nothing to track")
    return empty


def same_calibrations(a: list[CameraCalibration], b: list[CameraCalibration], tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(
        x.name == y.name and (x.width, x.height) == (y.width, y.height) and np.allclose(x.K, y.K, atol=tol)
        and np.allclose(x.world_to_cam, y.world_to_cam, atol=tol) for x, y in zip(a, b))


# --- trackers ------------------------------------------------------------------------

@dataclass
class LiveResult:
    particles: np.ndarray  # (P, 3) object particles, world frame
    track_seconds: float
    initialised: bool  # this set (re)initialised the tracker


@dataclass
class LiveTracker:
    """Initialise on the first good set (and again if the calibration changes), then track;
    object particles are `n_particles` of the tracked points (GaussianTracker's means, or
    PointCloudTracker's points) chosen by sample_particles (farthest-point sampling) once at
    initialisation and followed through time (drawn again if their number changes)."""

    make_tracker: Callable[[], object]  # a fresh tracker: initialise(frames, calibrations), track(frames)
    n_particles: int = 32
    min_spacing: float = 0.01
    tracker: object = None
    calibrations: list = field(default_factory=list)
    indices: np.ndarray | None = None
    initialisations: int = 0

    def step(self, frames: list[CameraFrame], calibrations: list[CameraCalibration]) -> LiveResult:
        """Raises ValueError for bad input (the tracker's, or check_frame_set's)."""
        check_frame_set(frames, calibrations)
        start = time.perf_counter()
        fresh = self.tracker is None or not same_calibrations(self.calibrations, calibrations)
        if fresh:
            tracker = self.make_tracker()
            state = tracker.initialise(frames, calibrations)
            self.tracker, self.calibrations, self.indices = tracker, list(calibrations), None
            self.initialisations += 1
        else:
            state = self.tracker.track(frames)
        means = np.asarray(getattr(state, "means", state), float).reshape(-1, 3)  # a TrackState or the points
        if not len(means) or not np.all(np.isfinite(means)):
            raise ValueError("tracker: means are empty or not finite")
        if self.indices is None or self.indices.max() >= len(means):
            self.indices = np.asarray(sample_particles(means, self.n_particles, self.min_spacing, seed=0), int)
        return LiveResult(means[self.indices], time.perf_counter() - start, fresh)


def labelled_particles(objects: np.ndarray, tool: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Object particles (label 0) followed by the tool particle (label 1) if known."""
    objects = np.asarray(objects, float).reshape(-1, 3)
    points = objects if tool is None else np.vstack([objects, np.asarray(tool, float).reshape(1, 3)])
    labels = np.full(len(points), OBJECT_LABEL, np.uint32)
    if tool is not None:
        labels[-1] = TOOL_LABEL
    return points, labels


class JointHistory:
    """Joint positions of the last `horizon_s` seconds (by stamp), to find the arm's state at an
    image set's stamp. The horizon must exceed the oldest set's age when it is processed (one
    tracking time plus one camera period, in stamp time): 60 s covers a 5 s tracker with the
    lockstep graph at 10x real time (10 s did not, with a busy core: a set's state had been
    trimmed and a later one, within the tolerance, stood in for it). 500 Hz: 30000 states, 2 MB."""

    def __init__(self, horizon_s: float = 60.0):
        self.horizon_ns = int(horizon_s * 1e9)
        self._stamps: list[int] = []  # ascending
        self._positions: list[np.ndarray] = []
        self._cond = threading.Condition()

    def add(self, stamp_ns: int, q: np.ndarray) -> None:
        with self._cond:
            if self._stamps and stamp_ns < self._stamps[-1]:  # time went back (a restarted sim): start over
                self._stamps, self._positions = [], []
            self._stamps.append(int(stamp_ns))
            self._positions.append(np.asarray(q, float))
            drop = bisect.bisect_left(self._stamps, self._stamps[-1] - self.horizon_ns)
            if drop > len(self._stamps) // 2:  # trim in batches
                del self._stamps[:drop], self._positions[:drop]
            self._cond.notify_all()

    def at(self, stamp_ns: int, tolerance_ns: int, wait_s: float = 0.0) -> np.ndarray | None:
        """The positions at stamp_ns: interpolated between the states just before and after it,
        or the nearest one, if within tolerance_ns. Waits up to wait_s (wall) for a state at or
        after stamp_ns (the sim sends a tick's images just before its joint state)."""
        with self._cond:
            self._cond.wait_for(lambda: self._stamps and self._stamps[-1] >= stamp_ns, timeout=wait_s)
            i = bisect.bisect_left(self._stamps, stamp_ns)
            near = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)
                    and abs(self._stamps[j] - stamp_ns) <= tolerance_ns]
            if not near:
                return None
            if len(near) == 1 or self._stamps[i] == stamp_ns:
                return self._positions[near[-1]]
            (t0, q0), (t1, q1) = ((self._stamps[j], self._positions[j]) for j in near)
            return q0 + (q1 - q0) * (stamp_ns - t0) / (t1 - t0)


# --- the sim side: capturing the rig between physics ticks ----------------------------

@dataclass
class Capture:
    time: float  # s of sim time, the stamp of every message of the capture
    frames: list  # CameraFrame per camera, the rig's order
    vertices: dict  # object name -> ground-truth vertices (V, 3), world frame
    seconds: float  # wall time the rendering took
    calibrations: list  # CameraCalibration per camera at the capture (a wrist camera's pose moves)


class SimCameraCapture:
    """Renders a rig every 1/rate_hz s of sim time, between physics steps.

    capture(data) renders at once, on the caller's thread. A real-time sim renders elsewhere instead
    (robot_dyn.nodes.sim_cameras, a process of its own): snapshot(data) takes the due capture's state
    (MuJoCo's full physics state, a few us), and render_state(state) there renders it, so the sim's
    2 ms period never waits for a camera set (tens of ms on a CPU renderer). Rendering only reads
    the state: the physics trajectory is bit-for-bit the same with or without cameras (checked by
    tests/test_camera_messages.py)."""

    def __init__(self, model, rig, objects=("rope",), rate_hz: float = 10.0, start_time: float = 0.0):
        from robot_dyn.perception.cameras import RigRenderer

        if not rate_hz > 0:
            raise ValueError(f"'camera_rate_hz' must be positive, got {rate_hz!r}")
        self.model, self.rig, self.period = model, rig, 1.0 / rate_hz
        import mujoco

        present = [o for o in objects if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_FLEX, o) >= 0]
        self.objects = tuple(present)
        self.renderer = RigRenderer(model, rig, objects=self.objects)  # its GL contexts open at the first render
        self.calibrations = self.renderer.calibrations
        self.start, self.count = float(start_time), 0
        self._state = mujoco.mjtState.mjSTATE_FULLPHYSICS  # time, qpos, qvel, act, mocap: all a render derives from
        self._data = None  # render_state's MjData

    def due(self, t: float) -> bool:
        return t >= self.start + self.count * self.period - 1e-9

    def _advance(self, t: float) -> None:
        # the next capture: the first period boundary after now (a late capture is not repeated)
        self.count = max(self.count + 1, int(np.floor((t - self.start) / self.period + 1e-9)) + 1)

    def _render(self, data) -> Capture:
        import mujoco

        from robot_dyn.sim.deformables import flex_vertices

        wall = time.perf_counter()
        mujoco.mj_forward(self.model, data)
        frames = self.renderer.render(data)
        vertices = {name: flex_vertices(self.model, data, name) for name in self.objects}
        calibrations = self.rig.calibration(self.model, data) if self.renderer.moving else self.calibrations
        return Capture(float(data.time), frames, vertices, time.perf_counter() - wall, calibrations)

    def capture(self, data) -> Capture:
        """Render now (data's derived quantities are refreshed by mj_forward, as mj_step would)."""
        capture = self._render(data)
        self._advance(float(data.time))
        return capture

    def snapshot(self, data) -> np.ndarray:
        """The due capture's state, to render elsewhere with render_state (the capture counts as done now)."""
        import mujoco

        self._advance(float(data.time))
        state = np.empty(mujoco.mj_stateSize(self.model, self._state))
        mujoco.mj_getState(self.model, data, state, self._state)
        return state

    def render_state(self, state: np.ndarray) -> Capture:
        """Render a snapshot() of the same model."""
        import mujoco

        if self._data is None:
            self._data = mujoco.MjData(self.model)
        mujoco.mj_setState(self.model, self._data, np.asarray(state, float), self._state)
        return self._render(self._data)

    def close(self) -> None:
        """Free the renderer's GL contexts (on the thread that rendered: they belong to it)."""
        self.renderer.close()
