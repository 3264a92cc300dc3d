"""A foreground (object) mask from depth, for real RGB-D cameras that have no segmentation.

The object is what the depth camera sees inside a region above the table that is not the arm:

1. back-project every pixel with a depth return to the world frame (z-depth, K, world_to_cam);
2. keep the points inside an axis-aligned box (world, m) whose bottom face is the table top,
   raised by `table_clearance` so the table itself is left out;
3. drop the points inside spheres that cover the arm and the tool at the image's joint state
   (`ArmSpheres`: the URDF's collision shapes plus the tool, placed by forward kinematics);
4. optionally keep only the pixels whose colour lies in an HSV range (OpenCV's HSV: hue 0-179);
5. clean up with OpenCV: a morphological opening, then drop connected components smaller than
   `min_component_px`.

Everything in the world frame, metres; the world frame must be the robot's base frame (the
arm's spheres come from forward kinematics in the base frame), as for the tool particle.
Images are (H, W): row v, column u; depth is z-depth along the optical axis (OpenCV camera
frame, x right, y down, z forward), NaN, +-inf or <= 0 = no return.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from robot_dyn.perception.cameras import backproject
from robot_dyn.robots.collision import collision_geometry, shape_spheres  # shape_spheres: re-exported


class ForegroundError(ValueError):
    """A bad foreground setting; `field` names it (the node's parameter is 'mask_' + field)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"foreground region: '{field}' {reason}")
        self.field, self.reason = field, reason


def _triple(name: str, value, lo: float = -np.inf, hi: float = np.inf) -> tuple:
    try:
        array = np.asarray(value, float)
    except (TypeError, ValueError):
        raise ForegroundError(name, f"must be 3 numbers, got {value!r}") from None
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ForegroundError(name, f"must be 3 finite numbers, got {value!r}")
    if np.any(array < lo) or np.any(array > hi):
        raise ForegroundError(name, f"must lie in [{lo:g}, {hi:g}], got {value!r}")
    return tuple(float(v) for v in array)


@dataclass(frozen=True)
class ForegroundRegion:
    """Where the object may be, and how the mask is cleaned.

    box_min, box_max: opposite corners of the box (world, m); box_min[2] is the table top's height.
    table_clearance: points must lie this far above the table top (m), so the table (and depth
      noise on it) is not taken for the object; an object thinner than this is invisible.
    hsv_min, hsv_max: (H, S, V) bounds, OpenCV ranges (H 0-179, S and V 0-255); both None = no
      colour test; hsv_min H > hsv_max H wraps around red (e.g. 170 .. 10).
    open_px: side of the square opening kernel (px, odd); 0 or 1 = no opening. It also removes any
      part of the object thinner than open_px (a rope 2-3 px wide at 160x120: keep 0).
    min_component_px: connected components (8-connected) with fewer pixels are dropped; 0 = keep all.
    """

    box_min: tuple
    box_max: tuple
    table_clearance: float = 0.003
    hsv_min: tuple | None = None
    hsv_max: tuple | None = None
    open_px: int = 0
    min_component_px: int = 0

    def __post_init__(self):
        lo, hi = _triple("box_min", self.box_min), _triple("box_max", self.box_max)
        if not all(a < b for a, b in zip(lo, hi)):
            raise ForegroundError("box_min", f"must be below the upper corner on every axis, got {list(lo)} and {list(hi)}")
        object.__setattr__(self, "box_min", lo)
        object.__setattr__(self, "box_max", hi)
        c = self.table_clearance
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c) or c < 0:
            raise ForegroundError("table_clearance", f"must be a finite number >= 0 (m), got {c!r}")
        if c >= hi[2] - lo[2]:
            raise ForegroundError("table_clearance", f"({c:g} m) leaves nothing of the box's height "
                                  f"({hi[2] - lo[2]:g} m)")
        object.__setattr__(self, "table_clearance", float(c))
        empty = [v is None or (not isinstance(v, str) and np.size(v) == 0) for v in (self.hsv_min, self.hsv_max)]
        if empty[0] != empty[1]:
            raise ForegroundError("hsv_min" if empty[0] else "hsv_max", "must be given with the other HSV bound "
                                  "(both empty = no colour test)")
        if empty[0]:
            object.__setattr__(self, "hsv_min", None)
            object.__setattr__(self, "hsv_max", None)
        else:
            for name in ("hsv_min", "hsv_max"):
                h, s, v = _triple(name, getattr(self, name), 0.0, 255.0)
                if h > 179:
                    raise ForegroundError(name, f"hue must lie in [0, 179] (OpenCV), got {h:g}")
                object.__setattr__(self, name, (h, s, v))
            for i, channel in ((1, "saturation"), (2, "value")):
                if self.hsv_min[i] > self.hsv_max[i]:
                    raise ForegroundError("hsv_min", f"{channel} {self.hsv_min[i]:g} is above the upper bound's "
                                                     f"{self.hsv_max[i]:g}")
        for name in ("open_px", "min_component_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ForegroundError(name, f"must be an integer >= 0, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.open_px > 1 and self.open_px % 2 == 0:  # an even kernel shifts the opened mask by a pixel
            raise ForegroundError("open_px", f"must be 0, 1 or odd, got {self.open_px}")

    @property
    def colour_test(self) -> bool:
        return self.hsv_min is not None


def _spheres(exclude_spheres) -> tuple[np.ndarray, np.ndarray]:
    if exclude_spheres is None:
        return np.zeros((0, 3)), np.zeros(0)
    centres, radii = (np.asarray(a, float) for a in exclude_spheres)
    centres, radii = centres.reshape(-1, 3), radii.reshape(-1)
    if len(centres) != len(radii):
        raise ValueError(f"exclude_spheres: {len(centres)} centres but {len(radii)} radii")
    if not (np.all(np.isfinite(centres)) and np.all(np.isfinite(radii))) or np.any(radii < 0):
        raise ValueError("exclude_spheres: centres and radii must be finite and radii >= 0 (m)")
    return centres, radii


def hsv_mask(rgb: np.ndarray, hsv_min, hsv_max) -> np.ndarray:
    """bool (H, W): pixels of rgb (uint8 (H, W, 3)) whose OpenCV HSV lies in [hsv_min, hsv_max]
    (hue 0-179; hsv_min hue > hsv_max hue wraps around 180)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    lo, hi = np.asarray(hsv_min, float), np.asarray(hsv_max, float)
    if lo[0] <= hi[0]:
        return cv2.inRange(hsv, lo, hi) > 0
    return (cv2.inRange(hsv, lo, np.array([179.0, hi[1], hi[2]])) > 0) | \
           (cv2.inRange(hsv, np.array([0.0, lo[1], lo[2]]), hi) > 0)


def clean_mask(mask: np.ndarray, open_px: int = 0, min_component_px: int = 0) -> np.ndarray:
    """bool (H, W): `mask` opened with an open_px x open_px square (OpenCV), then without its
    8-connected components of fewer than min_component_px pixels."""
    image = np.asarray(mask, bool).astype(np.uint8)
    if open_px > 1:
        image = cv2.morphologyEx(image, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (open_px, open_px)))
    if min_component_px > 1 and image.any():
        _, labels, stats, _ = cv2.connectedComponentsWithStats(image, connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_component_px
        keep[0] = False  # the background
        return keep[labels]
    return image.astype(bool)


def foreground_mask(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, region: ForegroundRegion,
                    rgb: np.ndarray | None = None, exclude_spheres=None) -> np.ndarray:
    """bool (H, W): the object pixels of one depth image.

    depth: (H, W) z-depth (m); NaN, +-inf and <= 0 are no return (never foreground).
    K: (3, 3) pinhole intrinsics (px); world_to_cam: (4, 4) world -> OpenCV camera.
    rgb: uint8 (H, W, 3), needed only for the region's colour test.
    exclude_spheres: (centres (S, 3) world m, radii (S,) m): points inside any are not foreground.
    """
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected (H, W), got shape {depth.shape}")
    K, T = np.asarray(K, float), np.asarray(world_to_cam, float)
    if K.shape != (3, 3) or T.shape != (4, 4) or not (np.all(np.isfinite(K)) and np.all(np.isfinite(T))):
        raise ValueError(f"K must be a finite 3x3 and world_to_cam a finite 4x4 matrix, got {K.shape} and {T.shape}")
    centres, radii = _spheres(exclude_spheres)
    if region.colour_test:
        if rgb is None:
            raise ValueError("rgb: the region's colour test (hsv_min/hsv_max) needs the colour image")
        rgb = np.asarray(rgb)
        if rgb.shape != (*depth.shape, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8 {(*depth.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    mask = np.zeros(depth.shape, bool)
    if not valid.any():
        return mask
    points = backproject(np.where(valid, depth, 0.0), K, T, valid)  # world (N, 3), in np.nonzero(valid) order
    lo, hi = np.array(region.box_min), np.array(region.box_max)
    lo[2] += region.table_clearance
    keep = np.all((points > lo) & (points < hi), axis=1)
    near = np.all((centres > lo - radii[:, None]) & (centres < hi + radii[:, None]), axis=1)  # can reach the box
    inside, kept = np.zeros(int(keep.sum()), bool), points[keep]
    for c, r in zip(centres[near], radii[near]):  # a loop, not an (N, S, 3) array: 640x480 stays small
        inside |= np.einsum("ij,ij->i", kept - c, kept - c) < r * r
    keep[keep] = ~inside
    mask[valid] = keep
    if region.colour_test:
        mask &= hsv_mask(rgb, region.hsv_min, region.hsv_max)
    return clean_mask(mask, region.open_px, region.min_component_px)


class ArmSpheres:
    """Spheres (world = base frame, m) covering the arm and its tool at a joint state.

    The arm: every collision shape of the URDF (pinocchio's GeometryModel, placed by its forward
    kinematics), each covered by spheres (shape_spheres). The tool (not in the URDF, e.g. the
    sim's pusher): a rod of `tool_radius` (m) along the end-effector's z axis, from the
    end-effector to `tool_length` (m, signed) along it, covered by spheres half a radius apart.
    Every radius is enlarged by `padding` (m), for calibration, depth noise and a real arm's
    shape differing from the URDF's collision shapes.

    (The safety filter's link spheres, configs/safety.yaml, are not used: they are few and
    guard only the links that can reach the table or an obstacle; robot_dyn.safety.coverage
    measures how well they cover those links.)"""

    def __init__(self, robot, tool_length: float = 0.0, tool_radius: float = 0.0, padding: float = 0.01):
        import pinocchio as pin

        from robot_dyn.robots.engines import pinocchio_model

        for name, value in (("tool_length", tool_length), ("tool_radius", tool_radius), ("padding", padding)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or \
                    (value < 0 and name != "tool_length"):
                raise ValueError(f"arm spheres: '{name}' must be a finite number{'' if name == 'tool_length' else ' >= 0'}"
                                 f" (m), got {value!r}")
        self._pin = pin
        self.model = pinocchio_model(robot)
        self.data = self.model.createData()
        geometry = collision_geometry(robot, self.model)
        self.joints, local, radii = [], [], []  # per sphere: parent joint, centre in the joint frame
        for obj in geometry.geometryObjects:
            centres, r = shape_spheres(obj.geometry)
            M = obj.placement  # shape frame -> parent joint frame
            local.append(centres @ M.rotation.T + M.translation)
            radii.append(r)
            self.joints += [obj.parentJoint] * len(r)
        n_tool = int(np.ceil(2 * abs(tool_length) / tool_radius)) + 1 if tool_length and tool_radius > 0 else 0
        if not self.joints and not n_tool:
            raise ValueError(f"arm spheres: {robot.urdf_path.name} has no collision shapes and no tool is given")
        self.ee = self.model.getFrameId(robot.ee_frame)
        self.local = np.vstack(local) if local else np.zeros((0, 3))
        self.joints = np.asarray(self.joints, int)
        self.tool_offsets = np.linspace(0.0, tool_length, n_tool)  # m along the end-effector's z axis
        self.radii = np.concatenate(radii + [np.full(n_tool, float(tool_radius))]) + float(padding)

    @property
    def count(self) -> int:
        return len(self.radii)

    def at(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(centres (S, 3) m, radii (S,) m) at joint positions q (rad, URDF order)."""
        pin = self._pin
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, float))
        R = np.stack([M.rotation for M in self.data.oMi])  # world <- joint frame, per joint
        t = np.stack([M.translation for M in self.data.oMi])
        arm = np.einsum("sij,sj->si", R[self.joints], self.local) + t[self.joints]
        ee = self.data.oMf[self.ee]
        tool = ee.translation + self.tool_offsets[:, None] * ee.rotation[:, 2]
        return np.vstack([arm, tool]), self.radii


def depth_mask_from_parameters(p: dict, robot) -> tuple[ForegroundRegion, ArmSpheres | None]:
    """The perception node's depth-mask settings (the mask_* and tool_offset parameters of
    robot_dyn.bringup.schema.PERCEPTION) -> (region, arm cover or None when mask_exclude_arm is
    false). ValueError naming the parameter."""
    try:
        region = ForegroundRegion(p["mask_box_min"], p["mask_box_max"], p["mask_table_clearance"], p["mask_hsv_min"],
                                  p["mask_hsv_max"], p["mask_open_px"], p["mask_min_component_px"])
    except ForegroundError as exc:
        raise ValueError(f"parameter 'mask_{exc.field}' {exc.reason}") from None
    if not p["mask_exclude_arm"]:
        return region, None
    for name in ("mask_tool_radius", "mask_link_padding"):
        value = p[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"parameter '{name}' must be a finite number >= 0 (m), got {value!r}")
    return region, ArmSpheres(robot, float(p["tool_offset"]), float(p["mask_tool_radius"]), float(p["mask_link_padding"]))
