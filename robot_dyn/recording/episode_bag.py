"""One demonstration episode as a standard rosbag2 directory: metadata.yaml + one MCAP file.

Written with rosbags (no ROS install needed), readable by `ros2 bag info`/`ros2 bag play` and by
rosbags itself. Messages are stored as the CDR bytes they crossed the middleware in, so what is
recorded is exactly what was published, and writing costs no deserialisation.

Bounded loss on a crash: rosbags' MCAP writer keeps messages in an in-memory chunk until it holds
1 MiB; flush() closes that chunk into the file and hands the file to the OS, so a process killed
with SIGKILL loses at most what came since the last flush (the recorder flushes every 0.5 s).
Such a bag has no summary and no metadata.yaml: recover() rewrites what its complete chunks hold
as a new, valid bag beside it (the damaged one is kept as it is).

Episode facts (task, success, counts, the recorder's own accounting) go into metadata.yaml's
`custom_data`, which rosbag2 keeps for exactly this.
"""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_KILTED)  # the distribution of the PyPI rclpy 9.x wheels


class RecordingError(RuntimeError):
    """An episode cannot be written or read; the message names the path and what went wrong."""


def _explain(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"{path}: the disk is full ({exc.strerror})"
    if exc.errno == errno.EFBIG:
        return f"{path}: File too large (a file size limit: ulimit -f)"
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return f"{path}: cannot write there ({exc.strerror}); choose another output folder"
    return f"{path}: {exc}"


class EpisodeBag:
    """An open episode: write(topic, stamp_ns, cdr_bytes) for the declared topics, then close() or discard().

    topics: topic -> ROS 2 message type ('sensor_msgs/msg/JointState'). Raises RecordingError when
    the folder exists, cannot be made or a type is unknown; write/flush/close raise it when the disk
    refuses (full, read-only), after which the partial bag stays on disk for recover()."""

    def __init__(self, path: Path, topics: dict[str, str]):
        self.path = Path(path)
        unknown = sorted(t for t, msgtype in topics.items() if msgtype not in TYPESTORE.types)
        if unknown:
            raise RecordingError(f"topics {unknown}: message types unknown to rosbags' "
                                 f"{Stores.ROS2_KILTED.value} type store ({[topics[t] for t in unknown]})")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
            self._connections = {topic: self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                                 for topic, msgtype in topics.items()}
        except WriterError as exc:
            raise RecordingError(f"{self.path}: {exc}") from None
        except OSError as exc:
            raise RecordingError(_explain(self.path, exc)) from None
        self.counts = {topic: 0 for topic in topics}
        self.closed = False

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        try:
            self._writer.write(self._connections[topic], stamp_ns, data)
        except OSError as exc:
            raise RecordingError(_explain(self.path, exc)) from None
        self.counts[topic] += 1

    def flush(self) -> None:
        """Everything written so far into the file and to the OS (survives the process being killed)."""
        storage = self._writer.storage
        try:
            # rosbags closes a chunk at 1 MiB only; close it now (its public method) so the file holds it
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
        except OSError as exc:
            raise RecordingError(_explain(self.path, exc)) from None

    def close(self, custom_data: dict[str, str] | None = None) -> dict[str, int]:
        """Finish the bag (summary, metadata.yaml with `custom_data`); returns the messages per topic."""
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, str(value))
        try:
            self._writer.close()
        except OSError as exc:
            raise RecordingError(_explain(self.path, exc)) from None
        self.closed = True
        return dict(self.counts)

    def discard(self) -> None:
        """Drop the episode: the file is closed and the folder removed."""
        try:
            self._writer.storage.bio.close()
        except OSError:
            pass
        shutil.rmtree(self.path, ignore_errors=True)
        self.closed = True


def storage_file(path: Path) -> Path:
    """The MCAP file of an episode folder (rosbags names it after the folder)."""
    files = sorted(Path(path).glob("*.mcap"))
    if len(files) != 1:
        raise RecordingError(f"{path}: expected one .mcap file, found {[f.name for f in files]}")
    return files[0]


def recover(path: Path, out: Path | None = None) -> tuple[Path, dict[str, int]]:
    """A valid bag at `out` (default: <path>-recovered) from what a killed recorder left at `path`:
    every message of the MCAP file's complete records, up to where the file ends. Returns the new
    bag's path and its messages per topic; the damaged folder is left untouched."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    path = Path(path)
    out = Path(out) if out else path.with_name(path.name + "-recovered")
    source = storage_file(path)
    schemas, channels, messages = {}, {}, []
    with open(source, "rb") as f:
        try:
            for record in StreamReader(f, skip_magic=False, emit_chunks=False).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = (record.topic, schemas[record.schema_id])
                elif isinstance(record, Message):
                    messages.append((record.channel_id, record.log_time, record.data))
        except (McapError, EOFError, ValueError, KeyError, AssertionError):
            pass  # the file ends inside a record: what came before is whole (chunks carry their own length)
    if not channels:
        raise RecordingError(f"{source}: nothing recoverable (no complete chunk)")
    bag = EpisodeBag(out, dict(channels.values()))
    for channel_id, stamp, data in messages:
        bag.write(channels[channel_id][0], stamp, data)
    return out, bag.close({"recovered_from": str(path)})


def episode_facts(path: Path) -> dict[str, str]:
    """The `custom_data` of an episode's metadata.yaml (task, success, counts, ...); RecordingError names
    a folder that is not a finished bag (no metadata.yaml: recover it first)."""
    import yaml

    meta = Path(path) / "metadata.yaml"
    try:
        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
    except FileNotFoundError:
        raise RecordingError(f"{path}: no metadata.yaml (a recorder killed mid-episode? `robot-dyn recording recover {path}`)") from None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise RecordingError(f"{meta}: not a rosbag2 metadata file ({exc})") from None
    return dict(info.get("custom_data") or {})


def header_ns(header) -> int:
    """A deserialised std_msgs/Header's stamp in integer nanoseconds (exact)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def message_time(log_ns: int, header) -> int:
    """A recorded message's time (ns, the graph's clock): its header stamp, or when the recorder received
    it where the sender left the stamp 0 (a twist command stamped 0 means 'now' to the controller)."""
    return header_ns(header) or int(log_ns)
