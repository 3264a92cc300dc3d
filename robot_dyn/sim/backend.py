"""The interface every physics backend offers, and the factory that picks one.

A backend simulates the arm at a fixed physics step (1 kHz or finer). Like a
real Franka or KUKA it may compensate gravity itself (`compensates_gravity`):
then it adds the *nominal* URDF gravity torque to the command, so an unknown
payload or mass error stays unmodelled, exactly as on the real arms.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robot_dyn.robots.description import RobotDescription
from robot_dyn.sim.effects import UnmodelledEffects


@dataclass(frozen=True)
class SceneObject:
    """A free or fixed primitive in the scene. size: box half-extents, sphere (r,), cylinder (r, half-length)."""

    name: str
    shape: str  # "box" | "sphere" | "cylinder"
    size: tuple
    position: tuple  # m, world frame
    mass: float = 0.1  # kg; 0 makes it fixed
    rgba: tuple = (0.8, 0.3, 0.2, 1.0)


class SimBackend(Protocol):
    name: str
    robot: RobotDescription
    dt: float  # physics step, s
    compensates_gravity: bool

    @property
    def time(self) -> float: ...

    def reset(self, q: np.ndarray, qd: np.ndarray | None = None) -> None: ...

    def step(self, tau: np.ndarray) -> None:
        """Apply joint torque tau (Nm, excluding robot-side gravity compensation) for one step."""

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured (q rad, qd rad/s), copies, URDF joint order."""

    def add_object(self, obj: SceneObject) -> None: ...

    def close(self) -> None: ...


BACKENDS = ("mujoco", "pybullet")


def make_backend(
    name: str,
    robot: RobotDescription,
    effects: UnmodelledEffects | None = None,
    dt: float = 0.001,
    compensates_gravity: bool = True,
    scene=None,
) -> SimBackend:
    """Create the named backend; raises ValueError naming the known ones.

    scene: optional extensions (objects with apply(spec, robot), or a sequence of them) that
    add e.g. a table, a rope and cameras; only the mujoco backend supports them."""
    effects = effects or UnmodelledEffects()
    if not (0 < dt <= 0.001):
        raise ValueError(f"physics step dt must be in (0, 0.001] s (1 kHz or finer), got {dt}")
    if name == "mujoco":
        from robot_dyn.sim.mujoco_backend import MujocoBackend

        return MujocoBackend(robot, effects, dt, compensates_gravity, scene=scene)
    if name == "pybullet":
        if scene is not None:
            raise ValueError("scene extensions (deformables, camera rigs) need the mujoco backend, not pybullet")
        from robot_dyn.sim.pybullet_backend import PybulletBackend

        return PybulletBackend(robot, effects, dt, compensates_gravity)
    raise ValueError(f"unknown sim backend '{name}'; known: {list(BACKENDS)}")
