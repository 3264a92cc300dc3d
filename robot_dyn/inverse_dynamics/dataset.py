"""Inverse-dynamics datasets on disk: a folder with metadata.json and one parquet file per episode.

    <dataset>/metadata.json       format, version, robot, joint names, URDF hash, effects,
                                  rates, filter, and the episode list with splits
    <dataset>/episodes/NNN_<kind>.parquet

Each episode holds, per sample, `t` (s) and n_joints-wide float64 columns (URDF joint order):
q, qd, qdd (what a real robot would have: measured positions and filtered differentiation),
q_exact, qd_exact, qdd_exact (the simulator's own values; absent in real-arm data),
tau_commanded (the robot layer's output, Nm, without gravity compensation),
tau_gravity (what the robot added for gravity, Nm) and tau (their sum: the joint torque
the motors applied). Every problem on load is a DatasetError naming the file and field.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "robot_dyn.inverse_dynamics"
VERSION = 1
VECTOR_COLUMNS = ("q", "qd", "qdd", "tau_commanded", "tau_gravity", "tau")
EXACT_COLUMNS = ("q_exact", "qd_exact", "qdd_exact")
SPLITS = ("train", "heldout")


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and the field."""


@dataclass
class Episode:
    """One recorded trajectory: t (N,) s and columns {name: (N, n_joints)}."""

    kind: str
    split: str
    t: np.ndarray
    columns: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


def urdf_hash(urdf_xml: str) -> str:
    return hashlib.sha256(urdf_xml.encode()).hexdigest()


def write_dataset(path: Path, metadata: dict, episodes: list[Episode]) -> Path:
    """Write metadata.json and one parquet per episode; refuses to overwrite an existing dataset."""
    path = Path(path)
    if (path / "metadata.json").exists():
        raise DatasetError(f"{path}: a dataset already exists there; choose another folder (recorded data is never overwritten)")
    (path / "episodes").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, ep in enumerate(episodes):
        if ep.split not in SPLITS:
            raise DatasetError(f"episode {i}: split must be one of {SPLITS}, got '{ep.split}'")
        name = f"episodes/{i:03d}_{ep.kind}.parquet"
        arrays = {"t": pa.array(ep.t, pa.float64())}
        for col, values in ep.columns.items():
            values = np.ascontiguousarray(values, dtype=np.float64)
            arrays[col] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        pq.write_table(pa.table(arrays), path / name)
        entries.append({"file": name, "kind": ep.kind, "split": ep.split, "samples": int(ep.t.size),
                        "duration_s": float(ep.t[-1] - ep.t[0]) if ep.t.size else 0.0})
    meta = {"format": FORMAT, "version": VERSION, **metadata, "episodes": entries}
    (path / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_metadata(path: Path) -> dict:
    meta_file = Path(path) / "metadata.json"
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(f"{meta_file}: no such file (is {path} a dataset folder?)") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{meta_file}: malformed JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetError(f"{meta_file}: field 'format' must be '{FORMAT}'")
    if meta.get("version") != VERSION:
        raise DatasetError(f"{meta_file}: field 'version' is {meta.get('version')!r}; this robot_dyn reads version {VERSION}")
    for key in ("robot", "joint_names", "episodes", "rate_hz"):
        if key not in meta:
            raise DatasetError(f"{meta_file}: missing field '{key}'")
    return meta


def _read_episode(path: Path, entry: dict, n_joints: int) -> Episode:
    file = path / entry["file"]
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow raises several types for truncated or foreign files
        raise DatasetError(f"{file}: unreadable parquet: {exc}") from exc
    if "t" not in table.column_names:
        raise DatasetError(f"{file}: missing column 't'")
    t = table.column("t").to_numpy()
    if t.size < 2 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DatasetError(f"{file}: column 't' must be finite and strictly increasing")
    columns = {}
    for name in VECTOR_COLUMNS + EXACT_COLUMNS:
        if name not in table.column_names:
            if name in EXACT_COLUMNS:
                continue  # real-arm data has no simulator values
            raise DatasetError(f"{file}: missing column '{name}'")
        col = table.column(name).combine_chunks()
        if not pa.types.is_fixed_size_list(col.type) or col.type.list_size != n_joints:
            raise DatasetError(f"{file}: column '{name}' must hold {n_joints} values per sample")
        values = col.flatten().to_numpy().reshape(-1, n_joints)
        if not np.all(np.isfinite(values)):
            raise DatasetError(f"{file}: column '{name}' has NaN or infinite values")
        columns[name] = values
    return Episode(entry.get("kind", "unknown"), entry.get("split", "train"), t, columns)


def load_dataset(path: Path, robot=None) -> tuple[dict, list[Episode]]:
    """(metadata, episodes); with `robot` (RobotDescription) the robot and joints must match."""
    path = Path(path)
    meta = read_metadata(path)
    n = len(meta["joint_names"])
    if robot is not None:
        if meta["robot"] != robot.name or tuple(meta["joint_names"]) != robot.joint_names:
            raise DatasetError(f"{path}: recorded on '{meta['robot']}' with joints {meta['joint_names']}, "
                               f"not '{robot.name}' {list(robot.joint_names)}")
        if meta.get("urdf_sha256") not in (None, urdf_hash(robot.urdf_xml)):
            raise DatasetError(f"{path}: field 'urdf_sha256' differs: recorded with another version of {robot.urdf_path.name}")
    return meta, [_read_episode(path, entry, n) for entry in meta["episodes"]]
