"""Calibrated RGB-D cameras in MuJoCo: a rig of N cameras around a workspace, pinhole
intrinsics, OpenCV extrinsics, rendering of RGB, depth and an object mask, and back-projection.

Conventions
-----------
* Intrinsics K (3x3, pixels): fx = fy = (H / 2) / tan(fovy / 2) (MuJoCo's ``fovy`` is the
  vertical field of view; pixels are square), principal point cx = (W - 1) / 2,
  cy = (H - 1) / 2 in the convention where pixel (u, v) = (column, row) has its *centre* at
  integer coordinates and row 0 is the top row of the image.
* Extrinsics ``world_to_cam`` (4x4): p_cam = R p_world + t in the OpenCV camera frame
  (x right, y down, z forward along the optical axis). A MuJoCo camera looks along its -z axis
  with y up (x right), so with R_mj = cam_xmat (columns: MuJoCo camera axes in world),
  R = diag(1, -1, -1) R_mj^T and t = -R cam_xpos.
* Depth: float32 metres of z-depth along the optical axis (the p_cam z coordinate), not the
  distance along the ray. ``mujoco.Renderer`` in depth mode already linearises the depth
  buffer to eye-space z (checked: a plane facing the camera has the same depth in every
  pixel); pixels that see nothing (the far plane) are set to 0 = invalid.
* Mask: bool (H, W), pixels whose frontmost surface belongs to the tracked object(s), from
  MuJoCo's segmentation rendering (object id + object type per pixel): flexes by name
  (mjOBJ_FLEX) and/or geoms by name (mjOBJ_GEOM). Occluded parts are not in the mask.

Multisample anti-aliasing is turned off in the offscreen buffer (``visual.quality.offsamples
= 0``) when a rig is applied, so RGB, depth and segmentation agree pixel for pixel: an
anti-aliased depth or colour at an object's silhouette would mix object and background.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robot_dyn.sim.mujoco_backend import look_at_quat

OPENCV_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])  # camera-frame axes: MuJoCo (x r, y up, z back) -> OpenCV


def intrinsics(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole K (3x3) of a MuJoCo camera with vertical field of view fovy_deg (degrees)."""
    f = 0.5 * height / np.tan(np.radians(fovy_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def wrist_camera(tool_length: float, width: int, height: int, fovy: float = 60.0, name: str = "wrist") -> CameraConfig:
    """A camera on the flange, 6.5 cm off the tool's axis and 2 cm past the flange, looking along the tool
    at a point 6 cm beyond its tip (tool_length m from the flange): what a hand-mounted camera sees."""
    return CameraConfig(name, (-0.065, 0.0, 0.02), (0.0, 0.0, tool_length + 0.06), fovy, width, height,
                        body="flange", up=(1.0, 0.0, 0.0))


def world_to_cam_from_mujoco(cam_xpos, cam_xmat) -> np.ndarray:
    """4x4 world -> OpenCV-camera transform from MuJoCo's camera position and 3x3 (or 9) rotation."""
    R = OPENCV_FROM_MUJOCO @ np.asarray(cam_xmat, float).reshape(3, 3).T
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, -R @ np.asarray(cam_xpos, float)
    return T


@dataclass(frozen=True)
class CameraConfig:
    """One camera: where it is, what it looks at (m, in the frame of `body`), vertical fov (deg), image size
    (px). body: '' = fixed in the world; 'flange' = on the robot's end-effector frame (a wrist camera);
    else a body of the MuJoCo model. up: the direction (same frame) that is up in the image."""

    name: str
    position: tuple
    target: tuple
    fovy: float = 45.0
    width: int = 160
    height: int = 120
    body: str = ""
    up: tuple = (0.0, 0.0, 1.0)

    def __post_init__(self):
        for key in ("position", "target", "up"):
            value = np.asarray(getattr(self, key), float)
            if value.shape != (3,) or not np.all(np.isfinite(value)):
                raise ValueError(f"camera '{self.name}': '{key}' must be 3 finite numbers, got {getattr(self, key)!r}")
            object.__setattr__(self, key, tuple(float(v) for v in value))
        if not np.linalg.norm(self.up) > 0:
            raise ValueError(f"camera '{self.name}': 'up' must not be zero")
        if not (isinstance(self.fovy, (int, float)) and 0 < self.fovy < 180):
            raise ValueError(f"camera '{self.name}': 'fovy' must be in (0, 180) degrees, got {self.fovy!r}")
        for key in ("width", "height"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or not 8 <= value <= 4096:
                raise ValueError(f"camera '{self.name}': '{key}' must be an integer in [8, 4096], got {value!r}")
        if np.allclose(self.position, self.target):
            raise ValueError(f"camera '{self.name}': position and target coincide")

    @property
    def K(self) -> np.ndarray:
        return intrinsics(self.fovy, self.width, self.height)


@dataclass(frozen=True)
class CameraCalibration:
    """What a tracker needs of one camera: name, K (3x3), world_to_cam (4x4, OpenCV), image size."""

    name: str
    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int

    @property
    def cam_to_world(self) -> np.ndarray:
        return invert_transform(self.world_to_cam)

    def to_json(self) -> dict:
        return {"name": self.name, "K": self.K.tolist(), "world_to_cam": self.world_to_cam.tolist(),
                "width": int(self.width), "height": int(self.height)}

    @classmethod
    def from_json(cls, data: dict, where: str = "camera") -> "CameraCalibration":
        """Parse and check one camera entry; ValueError names `where` and the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        for key in ("name", "K", "world_to_cam", "width", "height"):
            if key not in data:
                raise ValueError(f"{where}: missing field '{key}'")
        try:
            K, T = np.asarray(data["K"], float), np.asarray(data["world_to_cam"], float)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: 'K' and 'world_to_cam' must be numeric matrices") from None
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"{where}: 'K' must be a finite 3x3 matrix with positive focal lengths")
        if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise ValueError(f"{where}: 'world_to_cam' must be a finite 4x4 rigid transform")
        if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6) or np.linalg.det(T[:3, :3]) < 0:
            raise ValueError(f"{where}: 'world_to_cam' rotation is not orthonormal")
        for key in ("width", "height"):
            if not isinstance(data[key], int) or data[key] <= 0:
                raise ValueError(f"{where}: '{key}' must be a positive integer, got {data[key]!r}")
        return cls(str(data["name"]), K, T, data["width"], data["height"])


@dataclass(frozen=True)
class CameraFrame:
    """One rendered view: rgb uint8 (H, W, 3), depth float32 (H, W) m (0 = invalid), mask bool (H, W)."""

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


class CameraRig:
    """N cameras, fixed in the world or mounted on a body (a wrist camera). ``apply(spec, robot)`` adds them to a MuJoCo spec (a scene
    extension for MujocoBackend); the calibration then comes from the compiled model."""

    def __init__(self, cameras, shadow_size: int = 2048):
        self.cameras = tuple(cameras)
        if not isinstance(shadow_size, (int, np.integer)) or shadow_size < 0:
            raise ValueError(f"camera rig: 'shadow_size' must be a non-negative integer, got {shadow_size!r}")
        self.shadow_size = int(shadow_size)  # shadow map size (px); 0 renders without shadows
        if not self.cameras:
            raise ValueError("camera rig: no cameras")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera rig: duplicate camera names {names}")

    @classmethod
    def around(cls, center=(0.5, 0.0, 0.1), n: int = 4, distance: float = 0.5, height: float = 0.45,
               fovy: float = 45.0, width: int = 160, height_px: int = 120, azimuth0_deg: float = 45.0,
               prefix: str = "cam", shadow_size: int = 2048) -> "CameraRig":
        """n cameras on a circle of radius `distance` (m) around `center`, `height` (m) above it,
        evenly spaced in azimuth starting at azimuth0_deg (from world +x), all looking at `center`."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"camera rig: 'n' must be a positive integer, got {n!r}")
        c = np.asarray(center, float)
        cams = []
        for k in range(n):
            a = np.radians(azimuth0_deg + 360.0 * k / n)
            pos = c + [distance * np.cos(a), distance * np.sin(a), height]
            cams.append(CameraConfig(f"{prefix}{k}", tuple(pos), tuple(c), fovy, width, height_px))
        return cls(cams, shadow_size)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def with_cameras(self, *cameras: CameraConfig) -> "CameraRig":
        """This rig and more cameras."""
        return CameraRig(self.cameras + tuple(cameras), self.shadow_size)

    def apply(self, spec: mujoco.MjSpec, robot=None) -> None:
        for cam in self.cameras:
            body = spec.worldbody
            if cam.body:
                name = robot.ee_frame if cam.body == "flange" and robot is not None else cam.body
                body = spec.body(name)
                if body is None:
                    raise ValueError(f"camera '{cam.name}': the model has no body '{name}' to mount it on")
            body.add_camera(name=cam.name, pos=list(cam.position), quat=look_at_quat(cam.position, cam.target, cam.up),
                            fovy=cam.fovy)
        g = spec.visual.global_
        g.offwidth = max(g.offwidth, *(c.width for c in self.cameras))
        g.offheight = max(g.offheight, *(c.height for c in self.cameras))
        spec.visual.quality.offsamples = 0  # no MSAA: depth, mask and colour agree at silhouettes
        # MuJoCo's default 4096 map costs ~90 ms per view on a CPU (llvmpipe), 2048 ~40 ms; 0 turns shadows
        # off (leaving MuJoCo's default in place rendered a 160x120 view in 20 ms instead of 1)
        spec.visual.quality.shadowsize = self.shadow_size

    def calibration(self, model: mujoco.MjModel, data: mujoco.MjData | None = None) -> list[CameraCalibration]:
        """K and world_to_cam of every camera, read from the compiled model (world-fixed cameras;
        with `data` after mj_forward, the current pose of cameras on moving bodies)."""
        out = []
        for cam in self.cameras:
            cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam.name)
            if cid < 0:
                raise ValueError(f"camera rig: the model has no camera '{cam.name}' (was the rig applied to the spec?)")
            if data is not None:
                pos, mat = data.cam_xpos[cid], data.cam_xmat[cid]
            else:
                if model.cam_bodyid[cid] != 0:
                    raise ValueError(f"camera '{cam.name}' is on a moving body: pass data")
                mat = np.zeros(9)
                mujoco.mju_quat2Mat(mat, model.cam_quat[cid])
                pos = model.cam_pos[cid]
            K = intrinsics(float(model.cam_fovy[cid]), cam.width, cam.height)
            out.append(CameraCalibration(cam.name, K, world_to_cam_from_mujoco(pos, mat), cam.width, cam.height))
        return out


class RigRenderer:
    """Renders every camera of a rig: RGB, depth and the mask of the tracked objects.

    objects: flex names (e.g. "rope") and/or geom names whose pixels make up the mask.
    Needs an OpenGL context (MUJOCO_GL=egl or osmesa when headless)."""

    def __init__(self, model: mujoco.MjModel, rig: CameraRig, objects=("rope",)):
        self.model, self.rig = model, rig
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        self.calibrations = rig.calibration(model, data)  # a moving camera's pose: at the model's qpos0
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam.name) for cam in rig.cameras]
        self.moving = {cam.name for cam, i in zip(rig.cameras, ids) if model.cam_bodyid[i] != 0}  # calibrated per capture
        self._targets = []  # (objtype, objid)
        for name in objects:
            fid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_FLEX, name)
            gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
            if fid >= 0:
                self._targets.append((int(mujoco.mjtObj.mjOBJ_FLEX), fid))
            elif gid >= 0:
                self._targets.append((int(mujoco.mjtObj.mjOBJ_GEOM), gid))
            else:
                raise ValueError(f"mask object '{name}' is neither a flex nor a geom of the model")
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.shadows = rig.shadow_size > 0
        self._far = float(model.vis.map.zfar * model.stat.extent)

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            renderer = mujoco.Renderer(self.model, height, width)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.shadows
            self._renderers[key] = renderer
        return self._renderers[key]

    def render(self, data: mujoco.MjData) -> list[CameraFrame]:
        """One frame per camera, in the rig's order (data must be forward-computed)."""
        frames = []
        for cam in self.rig.cameras:
            r = self._renderer(cam.width, cam.height)
            r.update_scene(data, camera=cam.name)
            rgb = r.render().copy()
            r.enable_depth_rendering()
            depth = r.render().astype(np.float32)
            r.disable_depth_rendering()
            depth[depth >= 0.999 * self._far] = 0.0
            mask = np.zeros(depth.shape, bool)
            if self._targets:  # a third render only where there is something to mask
                r.enable_segmentation_rendering()
                seg = r.render()
                r.disable_segmentation_rendering()
                for objtype, objid in self._targets:
                    mask |= (seg[..., 1] == objtype) & (seg[..., 0] == objid)
            frames.append(CameraFrame(cam.name, rgb, depth, mask))
        return frames

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- geometry ------------------------------------------------------------------

def invert_transform(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R.T, -R.T @ t
    return out


def project(points_world: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) as (u column, v row) and camera z-depth (N,) of world points (N, 3)."""
    p = np.asarray(points_world, float) @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = p[:, 2]
    uv = (p @ np.asarray(K, float).T)[:, :2] / z[:, None]
    return uv, z


def backproject(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """World points (N, 3) of the pixels with valid depth (> 0) and, if given, mask True."""
    depth = np.asarray(depth, float)
    valid = depth > 0
    if mask is not None:
        if mask.shape != depth.shape:
            raise ValueError(f"mask shape {mask.shape} differs from depth shape {depth.shape}")
        valid &= mask
    v, u = np.nonzero(valid)
    z = depth[v, u]
    K = np.asarray(K, float)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    cam = np.column_stack([x, y, z])
    cam_to_world = invert_transform(np.asarray(world_to_cam, float))
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def fused_point_cloud(frames, calibrations, masked: bool = True) -> np.ndarray:
    """World points (N, 3) from all cameras' depth (only masked pixels if `masked`)."""
    clouds = [backproject(f.depth, c.K, c.world_to_cam, f.mask if masked else None) for f, c in zip(frames, calibrations)]
    return np.concatenate(clouds, axis=0) if clouds else np.zeros((0, 3))
