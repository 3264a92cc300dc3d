"""Graph tests: the nodes as separate processes over real DDS (FastDDS from the PyPI wheels)."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
