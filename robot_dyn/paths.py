"""Where the package's data folders (urdf/, configs/, launch/, hardware/) live.

In a source checkout or an editable install they sit next to the package; after
`pip install .` or `colcon build` they are under <prefix>/share/robot_dyn.
"""
import dataclasses
import os
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "robot_dyn"


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """The folder holding urdf/ and configs/ for this installation."""
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "urdf").is_dir() and (source_root / "configs").is_dir():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not in a ROS workspace, or the index is not set up
        pass
    for prefix in (sys.prefix, os.environ.get("VIRTUAL_ENV", "")):
        candidate = Path(prefix) / "share" / PACKAGE
        if (candidate / "urdf").is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} data folders (urdf/, configs/): looked in "
        f"{source_root}, the ament index and {sys.prefix}/share/{PACKAGE}"
    )


def urdf_path(robot: str) -> Path:
    """Path of urdf/<robot>.urdf; raises naming the robots that exist."""
    path = share_dir() / "urdf" / f"{robot}.urdf"
    if not path.is_file():
        known = sorted(p.stem for p in (share_dir() / "urdf").glob("*.urdf"))
        raise FileNotFoundError(f"unknown robot '{robot}': no {path}; known robots: {known}")
    return path


def config_path(name: str) -> Path:
    """Path of configs/<name> (name may include a sub-folder)."""
    return share_dir() / "configs" / name


def hardware_path(name: str) -> Path:
    """Path of hardware/<name>: the arms' bringup files (franka/..., kuka/...)."""
    return share_dir() / "hardware" / name


def read_yaml_mapping(path: Path, error: type[Exception] = ValueError) -> dict:
    """A YAML file whose top level is a mapping; `error` names the file and what is wrong."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def dataclass_from_mapping(cls, data, where: str):
    """Build dataclass `cls` from a YAML mapping; unknown keys are errors naming `where.key`."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"'{where}' must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key '{where}.{unknown[0]}'; known: {sorted(known)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"'{where}': {exc}") from None
