"""The serialized (CDR) form of the two messages that cross DDS every outer tick, read and written
without rclpy's Python message objects.

/joint_states (sensor_msgs/JointState) and /impedance_reference (trajectory_msgs/JointTrajectory,
one point) go both ways 500 times a second. rclpy makes a Python object of every message, its
header and its stamp, whose setters check each element in Python: in the idle controller these
objects were about a third of its tick. Subscriptions instead take the raw bytes (`raw=True`),
publishers send bytes (rclpy publishes bytes as a serialized message), and this module reads and
writes them with struct and numpy. Written by hand because nothing fits: rclpy's and rosbags'
(de)serialisers build per-field Python objects too.

The format is what rmw_fastrtps reads and writes: a 4-byte encapsulation header (CDR, little
endian), then the fields in order, each aligned to its own size (at most 8) from the start of the
data after that header; a string is its length with the NUL, its bytes and a NUL; a sequence is
its length, then its elements; padding bytes carry no value. tests/test_wire.py checks every
function against rclpy's serialize_message and deserialize_message.

Units as in the messages: stamps in integer nanoseconds; positions rad, velocities rad/s,
accelerations rad/s^2, efforts Nm.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_HEADER = b"\x00\x01\x00\x00"  # CDR, little endian
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


class WireError(ValueError):
    """Bytes that are not a serialized message of the expected type; the message says where."""


class _Reader:
    """Reads fields in order from serialized bytes, aligning each to its size."""

    def __init__(self, data: bytes, what: str):
        if len(data) < 4 or data[:2] != _HEADER[:2]:
            raise WireError(f"{what}: not a little-endian CDR message ({bytes(data[:4]).hex()})")
        self.data, self.offset, self.what = memoryview(data), 0, what

    def _take(self, size: int, align: int) -> int:
        start = -(-self.offset // align) * align
        if 4 + start + size > len(self.data):
            raise WireError(f"{self.what}: message ends inside a field (needs {start + size} bytes of data)")
        self.offset = start + size
        return 4 + start

    def u32(self) -> int:
        return _U32.unpack_from(self.data, self._take(4, 4))[0]

    def stamp_ns(self) -> int:
        sec, nanosec = _STAMP.unpack_from(self.data, self._take(8, 4))
        return sec * 1_000_000_000 + nanosec

    def string(self) -> str:
        size = self.u32()
        start = self._take(size, 1)
        return bytes(self.data[start: start + max(size - 1, 0)]).decode()

    def strings(self) -> list[str]:
        return [self.string() for _ in range(self.u32())]

    def doubles(self) -> np.ndarray:
        count = self.u32()
        if count == 0:
            return np.zeros(0)
        start = self._take(8 * count, 8)
        return np.frombuffer(self.data, "<f8", count, start).copy()


def _size(strings, *counts: int) -> int:
    """An upper bound of the serialized size (bytes) of a header, strings and double sequences."""
    return 64 + sum(8 + len(s.encode()) for s in strings) + sum(8 + 8 * c for c in counts)


class _Writer:
    """Writes fields in order into a buffer, aligning each to its size."""

    def __init__(self, capacity: int):
        self.data = bytearray(4 + capacity)
        self.data[:4] = _HEADER
        self.offset = 0

    def _place(self, size: int, align: int) -> int:
        start = -(-self.offset // align) * align
        self.offset = start + size
        return 4 + start

    def u32(self, value: int) -> int:
        at = self._place(4, 4)
        _U32.pack_into(self.data, at, value)
        return at

    def stamp(self) -> int:
        """Room for a stamp (sec, nanosec); returns its byte offset."""
        return self._place(8, 4)

    def string(self, text: str) -> None:
        raw = text.encode() + b"\x00"
        self.u32(len(raw))
        at = self._place(len(raw), 1)
        self.data[at: at + len(raw)] = raw

    def strings(self, texts) -> None:
        self.u32(len(texts))
        for text in texts:
            self.string(text)

    def doubles(self, count: int) -> int:
        """Room for a sequence of `count` doubles; returns the byte offset of its first element."""
        self.u32(count)
        return self._place(8 * count, 8) if count else 4 + self.offset

    def done(self) -> bytearray:
        return self.data[: 4 + -(-self.offset // 4) * 4]


def _put_stamp(data: bytearray, at: int, stamp_ns: int) -> None:
    _STAMP.pack_into(data, at, *divmod(int(stamp_ns), 1_000_000_000))


def clock_message(stamp_ns: int) -> bytes:
    """A serialized rosgraph_msgs/Clock."""
    return _HEADER + _STAMP.pack(*divmod(int(stamp_ns), 1_000_000_000))


# --- sensor_msgs/JointState -------------------------------------------------------------

@dataclass(frozen=True)
class JointStateData:
    """A decoded JointState: stamp (ns), joint names, and position/velocity/effort arrays (any length)."""

    stamp_ns: int
    frame_id: str
    name: list
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


def decode_joint_state(data: bytes) -> JointStateData:
    r = _Reader(data, "JointState")
    return JointStateData(r.stamp_ns(), r.string(), r.strings(), r.doubles(), r.doubles(), r.doubles())


class _Layout:
    """Where the double arrays of a message with the same frame and names as the last one decoded lie:
    a stream's messages differ only in their numbers, so after the first one each costs a byte
    comparison and a few frombuffers."""

    def __init__(self, decode, arrays: int, fits=lambda decoded: True):
        self.decode, self.arrays, self.fits = decode, arrays, fits
        self.key = None  # (size, the frame and names' bytes)
        self.decoded = None
        self.at: list[tuple[int, int]] = []  # (byte offset, count) of each array
        self.counts: list[tuple[int, int]] = []  # (byte offset, value) of the counts before them

    def read(self, data: bytes):
        """(stamp ns, the decoded message with this frame and these names, the arrays), or (stamp, the
        message decoded in full, None) for one whose shape does not fit the layout."""
        key = self.key
        if (key is None or len(data) != key[0] or data[12: 12 + len(key[1])] != key[1]
                or any(_U32.unpack_from(data, at)[0] != count for at, count in self.counts)):
            decoded = self.decode(data)
            if not self.fits(decoded):
                self.key = None
                return decoded.stamp_ns, decoded, None
            self.decoded = decoded
            self._learn(data)
        stamp = _STAMP.unpack_from(data, 4)
        arrays = [np.frombuffer(data, "<f8", count, at).copy() for at, count in self.at]
        return stamp[0] * 1_000_000_000 + stamp[1], self.decoded, arrays

    def _learn(self, data: bytes) -> None:
        """Offsets of the arrays in `data` (after the frame and names, which come first)."""
        r = _Reader(data, "layout")
        r.stamp_ns()
        r.string()
        r.strings()
        names_end = 4 + r.offset
        if self.arrays == 4:  # a trajectory: its point count first
            r.u32()
        self.at, self.counts = [], []
        for _ in range(self.arrays):
            count = r.u32()
            self.counts.append((4 + r.offset - 4, count))
            self.at.append((r._take(8 * count, 8) if count else 0, count))
        self.key = (len(data), bytes(data[12:names_end]))


class JointStateDecoder:
    """decode_joint_state for a stream: the layout of the last message is reused while it fits."""

    def __init__(self):
        self._layout = _Layout(decode_joint_state, 3)

    def decode(self, data: bytes) -> JointStateData:
        stamp, known, (position, velocity, effort) = self._layout.read(data)
        return JointStateData(stamp, known.frame_id, known.name, position, velocity, effort)


class JointPositions:
    """positions(data) -> the joint positions (rad) of a serialized JointState in `joint_names`' order; the
    order is worked out once per name layout. ValueError names the joints a message lacks."""

    def __init__(self, joint_names):
        self.joint_names = list(joint_names)
        self.decoder = JointStateDecoder()
        self._names, self._order = None, None

    def __call__(self, data: bytes) -> np.ndarray:
        msg = self.decoder.decode(data)
        if self._names != tuple(msg.name):
            missing = [j for j in self.joint_names if j not in msg.name]
            if missing:
                raise ValueError(f"/joint_states: joints {missing} missing")
            self._names, self._order = tuple(msg.name), [list(msg.name).index(j) for j in self.joint_names]
        return np.asarray(msg.position, float)[self._order]


class JointStateEncoder:
    """Serialized JointStates of fixed joint names and frame (the names are written once). Without
    velocity or effort that array is empty, as JointState allows (a driver that measures no torque)."""

    def __init__(self, names, frame_id: str = "", velocity: bool = True, effort: bool = True):
        self.n = len(names)
        counts = (self.n, self.n if velocity else 0, self.n if effort else 0)
        w = _Writer(_size([frame_id, *names], *counts))
        self._stamp = w.stamp()
        w.string(frame_id)
        w.strings(list(names))
        self._arrays = [(w.doubles(count), count) for count in counts]
        self._template = w.done()

    def encode(self, stamp_ns: int, position, velocity=(), effort=()) -> bytes:
        """The message's bytes; each array the encoder has has one value per name (the others are ignored)."""
        data = bytearray(self._template)
        _put_stamp(data, self._stamp, stamp_ns)
        for (at, count), values in zip(self._arrays, (position, velocity, effort)):
            if count:
                data[at: at + 8 * count] = np.asarray(values, "<f8").tobytes()
        return bytes(data)


# --- trajectory_msgs/JointTrajectory -----------------------------------------------------

@dataclass(frozen=True)
class TrajectoryPointData:
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    effort: np.ndarray
    time_from_start_ns: int


@dataclass(frozen=True)
class JointTrajectoryData:
    """A decoded JointTrajectory: stamp (ns), frame, joint names and points (any number)."""

    stamp_ns: int
    frame_id: str
    joint_names: list
    points: list


def decode_joint_trajectory(data: bytes) -> JointTrajectoryData:
    r = _Reader(data, "JointTrajectory")
    stamp, frame_id, names = r.stamp_ns(), r.string(), r.strings()
    points = [TrajectoryPointData(r.doubles(), r.doubles(), r.doubles(), r.doubles(), r.stamp_ns())
              for _ in range(r.u32())]
    return JointTrajectoryData(stamp, frame_id, names, points)


class ReferenceDecoder:
    """decode_joint_trajectory for a stream of one-point trajectories (impedance references): the
    layout of the last message is reused while it fits; any other shape is decoded in full."""

    def __init__(self):
        self._layout = _Layout(decode_joint_trajectory, 4, fits=lambda decoded: len(decoded.points) == 1)

    def decode(self, data: bytes) -> JointTrajectoryData:
        stamp, known, arrays = self._layout.read(data)
        if arrays is None:
            return known
        point = TrajectoryPointData(*arrays, known.points[0].time_from_start_ns)
        return JointTrajectoryData(stamp, known.frame_id, known.joint_names, [point])


class ReferenceEncoder:
    """Serialized one-point JointTrajectories of fixed joint names. The defaults are the impedance
    reference contract (README, 'Topics'): header.stamp = the time the point applies, time_from_start 0.
    The hardware adapter's JTC point sets time_from_start (ns) and may leave the effort empty."""

    def __init__(self, joint_names, time_from_start_ns: int = 0, effort: bool = True):
        self.n = len(joint_names)
        counts = (self.n, self.n, self.n, self.n if effort else 0)
        w = _Writer(_size(["", *joint_names], *counts))
        self._stamp = w.stamp()
        w.string("")
        w.strings(list(joint_names))
        w.u32(1)  # one point
        self._arrays = [(w.doubles(count), count) for count in counts]
        time_from_start = w.stamp()
        self._template = w.done()
        _put_stamp(self._template, time_from_start, time_from_start_ns)

    def encode(self, stamp_ns: int, q, qd, qdd, tau_ff=()) -> bytes:
        data = bytearray(self._template)
        _put_stamp(data, self._stamp, stamp_ns)
        for (at, count), values in zip(self._arrays, (q, qd, qdd, tau_ff)):
            if count:
                data[at: at + 8 * count] = np.asarray(values, "<f8").tobytes()
        return bytes(data)


# --- trajectory_msgs/MultiDOFJointTrajectory (Cartesian paths) ---------------------------

@dataclass(frozen=True)
class CartesianPathData:
    """A decoded MultiDOFJointTrajectory, its N points as arrays: time_from_start (N,) ns; the first
    transform's translation (N, 3) m and rotation quaternion (N, 4) x, y, z, w; the first velocity and
    acceleration twists (N, 6) linear then angular (zeros where a point has none); and how many
    transforms, velocities and accelerations each point has (N, 3)."""

    stamp_ns: int
    frame_id: str
    joint_names: list
    time_from_start_ns: np.ndarray
    translation: np.ndarray
    rotation: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    counts: np.ndarray


# One point with one transform, one velocity and one acceleration, starting 8-aligned: 184 bytes,
# so every such point after the first 8-aligned one lies at the same offsets (read all at once).
_UNIFORM_POINT = np.dtype({"names": ["nt", "t", "nv", "v", "na", "a", "sec", "nsec"],
                           "formats": ["<u4", ("<f8", 7), "<u4", ("<f8", 6), "<u4", ("<f8", 6), "<i4", "<u4"],
                           "offsets": [0, 8, 64, 72, 120, 128, 176, 180], "itemsize": 184})


def decode_cartesian_path(data: bytes) -> CartesianPathData:
    r = _Reader(data, "MultiDOFJointTrajectory")
    stamp, frame_id, names = r.stamp_ns(), r.string(), r.strings()
    n = r.u32()
    times, counts = np.zeros(n, np.int64), np.zeros((n, 3), np.int64)
    tr, twists = np.zeros((n, 7)), np.zeros((2, n, 6))
    k = 0
    while k < n:
        if r.offset % 8 == 0 and k + 1 < n:  # the rest at once, if it is uniform
            start = 4 + r.offset
            rest = (len(r.data) - start) // _UNIFORM_POINT.itemsize
            block = np.frombuffer(r.data, _UNIFORM_POINT, min(n - k, rest), start)
            if len(block) == n - k and np.all(block["nt"] == 1) and np.all(block["nv"] == 1) and np.all(block["na"] == 1):
                tr[k:], twists[0, k:], twists[1, k:] = block["t"], block["v"], block["a"]
                times[k:] = block["sec"].astype(np.int64) * 1_000_000_000 + block["nsec"]
                counts[k:] = 1
                r.offset += len(block) * _UNIFORM_POINT.itemsize
                break
        counts[k, 0] = r.u32()
        for j in range(counts[k, 0]):
            values = np.frombuffer(r.data, "<f8", 7, r._take(56, 8))
            if j == 0:
                tr[k] = values
        for which in (0, 1):
            counts[k, 1 + which] = r.u32()
            for j in range(counts[k, 1 + which]):
                values = np.frombuffer(r.data, "<f8", 6, r._take(48, 8))
                if j == 0:
                    twists[which, k] = values
        times[k] = r.stamp_ns()
        k += 1
    return CartesianPathData(stamp, frame_id, names, times, tr[:, :3].copy(), tr[:, 3:].copy(), twists[0], twists[1], counts)
