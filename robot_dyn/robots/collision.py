"""The URDF's collision shapes (pinocchio's GeometryModel over coal primitives): spheres that
cover each shape, and points sampled on each shape's surface.

Used by the perception's arm cover (robot_dyn.perception.foreground.ArmSpheres) and by the
safety filter's coverage check (robot_dyn.safety.coverage). Metres; a shape's own frame has
its axis (cylinder, capsule) along z, centred at the origin, as in URDF and coal.
"""
from __future__ import annotations

import numpy as np

from robot_dyn.robots.description import RobotDescription

# pinocchio and coal are imported where used: robot_dyn.perception.foreground imports this
# module and imports nothing heavy at load time.


def _coal():
    try:
        import coal  # pinocchio >= 3.4's collision library
    except ImportError:  # older pinocchio: the same classes in hppfcl
        import hppfcl as coal
    return coal


def collision_geometry(robot: RobotDescription, model):
    """The URDF's collision shapes (pinocchio GeometryModel), attached to `model`'s joints
    (model: robot_dyn.robots.engines.pinocchio_model(robot))."""
    import pinocchio as pin

    return pin.buildGeomFromUrdfString(model, robot.urdf_xml, pin.GeometryType.COLLISION)


def shape_link(model, obj) -> str:
    """Name of the URDF link a collision shape (pinocchio GeometryObject) belongs to."""
    return model.frames[obj.parentFrame].name


def shape_spheres(geometry) -> tuple[np.ndarray, np.ndarray]:
    """Spheres (centres (k, 3), radii (k,), m, in the shape's own frame) whose union covers one
    coal collision shape: a sphere is itself; a cylinder or capsule (axis z) gets k spheres along
    its axis, each covering a slice at most half a radius high (so at most 12 % wider than the
    cylinder); any other shape (box, mesh) its bounding sphere."""
    coal = _coal()
    if isinstance(geometry, coal.Sphere):
        return np.zeros((1, 3)), np.array([geometry.radius])
    if isinstance(geometry, (coal.Cylinder, coal.Capsule)):
        r, h = float(geometry.radius), float(geometry.halfLength)
        k = max(1, int(np.ceil(2 * h / r)))
        z = -h + (2 * np.arange(k) + 1) * h / k
        radii = np.full(k, np.hypot(r, h / k))
        centres = np.column_stack([np.zeros(k), np.zeros(k), z])
        if isinstance(geometry, coal.Capsule):  # its hemispherical ends
            centres = np.vstack([centres, [[0, 0, -h], [0, 0, h]]])
            radii = np.concatenate([radii, [r, r]])
        return centres, radii
    geometry.computeLocalAABB()
    return np.asarray(geometry.aabb_center, float).reshape(1, 3), np.array([float(geometry.aabb_radius)])


def _sphere_points(radius: float, spacing: float) -> np.ndarray:
    """Points on a sphere about the origin, about `spacing` apart (a Fibonacci lattice)."""
    n = max(8, int(np.ceil(4 * np.pi * radius ** 2 / spacing ** 2)))
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    s = np.sqrt(1 - z * z)
    return radius * np.column_stack([s * np.cos(phi), s * np.sin(phi), z])


def _ring(radius: float, z: float, spacing: float) -> np.ndarray:
    n = max(8, int(np.ceil(2 * np.pi * radius / spacing)))
    a = 2 * np.pi * np.arange(n) / n
    return np.column_stack([radius * np.cos(a), radius * np.sin(a), np.full(n, z)])


def shape_surface_points(geometry, spacing: float = 0.005) -> np.ndarray:
    """Points (k, 3) m on the surface of one coal collision shape, in its own frame, about
    `spacing` (m) apart (every surface point lies within 0.75 spacing of one): sphere, cylinder
    (side and both caps), capsule (side and both hemispheres). Other shapes raise ValueError."""
    coal = _coal()
    if isinstance(geometry, coal.Sphere):
        return _sphere_points(float(geometry.radius), spacing)
    if isinstance(geometry, (coal.Cylinder, coal.Capsule)):
        r, h = float(geometry.radius), float(geometry.halfLength)
        zs = np.linspace(-h, h, max(2, int(np.ceil(2 * h / spacing)) + 1))
        parts = [_ring(r, z, spacing) for z in zs]
        if isinstance(geometry, coal.Cylinder):  # flat caps: concentric rings, and the centre
            radii = np.linspace(0, r, max(2, int(np.ceil(r / spacing)) + 1))[1:-1]
            for z in (-h, h):
                parts += [_ring(rho, z, spacing) for rho in radii] + [np.array([[0.0, 0.0, z]])]
        else:  # hemispherical ends
            ball = _sphere_points(r, spacing)
            parts += [ball[ball[:, 2] < 0] + [0, 0, -h], ball[ball[:, 2] > 0] + [0, 0, h]]
        return np.vstack(parts)
    raise ValueError(f"surface points: unsupported collision shape {type(geometry).__name__} "
                     "(sphere, cylinder and capsule are)")
