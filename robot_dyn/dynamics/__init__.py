"""Rigid-body dynamics of the arm, on pinocchio."""
from robot_dyn.dynamics.rigid_body import RigidBody

__all__ = ["RigidBody"]
