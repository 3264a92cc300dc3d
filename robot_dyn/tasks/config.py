"""Reading a task's config file (configs/tasks/<task>.yaml) into its config dataclass."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path


def floats(value) -> tuple:
    return tuple(float(v) for v in value)


def load_task_config(cls, task: str, path: str | Path | None, convert: dict):
    """The `task:` section of `path` (default configs/tasks/<task>.yaml) as a `cls`, validated. convert maps
    field names to functions that build their value from the YAML (nested configs, tuples). ValueError
    names the file and the field."""
    from robot_dyn import paths

    path = Path(path) if path else paths.config_path(f"tasks/{task}.yaml")
    raw = paths.read_yaml_mapping(path).get(task)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a '{task}:' mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: {task}: unknown fields {unknown} (known: {sorted(known)})")
    try:
        values = {name: convert[name](value) if name in convert else value for name, value in raw.items()}
        return cls(**values).validated()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {task}: {exc}") from None
