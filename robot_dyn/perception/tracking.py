"""Multi-view RGB-D tracking of a deformable object with 3D Gaussians (Dynamic 3D Gaussians).

After Luiten et al. (Dynamic 3D Gaussians, 3DV 2024) as used by Zhang, Zhang, Li (Dynamic 3D
Gaussian Tracking for Graph-Based Neural Dynamics Modeling, CoRL 2024): the object is a set of
3D Gaussians fitted to the first frame (robot_dyn.perception.gaussian_init); each later frame
moves them, by optimising only their centres and rotations, until their renders match the new
images. Colours, opacities and scales stay as fitted on the first frame, so a Gaussian keeps
its identity and its trajectory is a track of a point of the object's surface.

Per frame (`GaussianTracker.track`):
- Warm start by (damped) constant velocity: means_t = means_{t-1} + v (means_{t-1} - means_{t-2}),
  v = warm_start_velocity, and likewise the quaternions (then normalised).
- Adam on means (m) and quaternions for `iterations` steps of the loss, averaged over cameras:
  * image: (1 - ssim_weight) L1 + ssim_weight (1 - SSIM) between the render (black background)
    and the camera image with everything outside the object's mask set to black;
  * mask: mean |alpha - mask| (the rendered silhouette against the object's mask);
  * depth: mean |rendered depth - sensor depth| (m) over masked pixels with valid depth where
    the render is solid (alpha > 0.5);
  * priors over each Gaussian's k nearest neighbours, chosen once after the first frame with
    weights w_ij = exp(-neighbour_lambda d_ij^2) of their first-frame distance d_ij (m):
    local rigidity (a neighbour's offset turns with the Gaussian's own rotation since the
    previous frame: |(mu_j - mu_i)_t - R_i,t R_i,t-1^T (mu_j - mu_i)_t-1|, m), rotation
    similarity (neighbours rotate alike: |q_j,t q_j,t-1^-1 - q_i,t q_i,t-1^-1|) and isometry
    (| |mu_j - mu_i|_t - d_ij |, m). Weighted means over all pairs. The neighbourhoods must
    be wide: a plain-coloured rope shows its shape but not how its material slides along it,
    and only wide rigid patches carry that from bends and ends. Measured on three held-out
    pushes (160x120): Gaussian spacing 4 mm with k = 8 (neighbourhoods of ~1 cm) left a
    median error of 11 mm on moving rope vertices; 6 mm with k = 20 (~2.5 cm), 1.9 mm.
- Occlusion: where a camera sees something else (not in the mask) nearer than the rendered
  object by more than `occlusion_margin` m -- the arm, the pusher -- the object is hidden, not
  gone: those pixels are left out of the image and mask losses (their targets are set to the
  render itself), so occluded Gaussians are held by the other cameras and the priors.

Inputs are checked (`check_frames`) and bad ones raise ValueError naming the field: a frame
count that differs from the calibrations, image sizes that differ from each other or from the
calibration, wrong dtypes (rgb uint8 (H, W, 3), depth floating (H, W) metres, mask bool
(H, W)), an empty mask in every camera (nothing to track), and a camera whose depth has no
finite value at all. Otherwise non-finite depth (NaN, inf) marks invalid pixels, like 0.

Units and frames: metres, world frame (z up); quaternions (w, x, y, z) rotate a Gaussian's
axes into the world. Images as in robot_dyn.perception.cameras (pixel centres at integer
coordinates, the convention the rasteriser uses too).

Time on CPU (one thread, torch backend) grows with iterations x cameras x the pixels the
Gaussians cover; the `tracking:` section of configs/perception.yaml sets the defaults, and
robot-dyn bench tracking measures them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from robot_dyn import paths
from robot_dyn.perception.cameras import CameraCalibration, CameraFrame, project
from robot_dyn.perception.gaussian_init import cloud_to_gaussians, fit_parameters, make_optimizer, masked_point_cloud
from robot_dyn.perception.image_losses import depth_l1, l1, ssim
from robot_dyn.perception.rasterizer import BACKENDS, Camera, Gaussians, render_views


# --- configuration -------------------------------------------------------------

@dataclass(frozen=True)
class TrackingConfig:
    """Gaussian tracking settings (the `tracking:` section of configs/perception.yaml).

    Initialisation: voxel_size (m, Gaussian spacing), max_gaussians, outlier_neighbors and
    outlier_std_ratio (open3d statistical outlier removal), init_opacity, init_iterations (Adam
    steps of the first-frame fit) and its learning rates init_lr_* (means m/step, rotations,
    scales log-m/step, opacities logit/step, colours /step), prune_opacity (Gaussians fainter
    than this after the fit are dropped).
    Tracking: iterations per frame, warm_start_velocity (the share of the last frame's motion the
    warm start carries on: 1 = constant velocity; with few iterations a frame's residual, carried on
    and never pulled back, runs away: 5 iterations let a static rope's track drift to 30 mm while the
    arm crossed over it, 4 mm at 0.5 or 0, and 4 mm at 10 iterations and 1), lr_means (m/step) and
    lr_rotations (quaternion/step),
    image_scale (images resized by this factor before fitting), backend (rasteriser), loss
    weights (image, mask: unitless; depth, rigidity, isometry: per m; rotation: unitless),
    ssim_weight, neighbours (k of the priors) and neighbour_lambda (1/m^2), occlusion_margin (m).
    Particles: n_particles, particle_min_spacing (m).
    """

    voxel_size: float = 0.006
    max_gaussians: int = 1500
    outlier_neighbors: int = 16
    outlier_std_ratio: float = 2.0
    init_opacity: float = 0.8
    init_iterations: int = 100
    init_lr_means: float = 2e-4
    init_lr_rotations: float = 5e-3
    init_lr_scales: float = 1e-2
    init_lr_opacities: float = 5e-2
    init_lr_colors: float = 1e-2
    prune_opacity: float = 0.05
    iterations: int = 20
    warm_start_velocity: float = 1.0
    lr_means: float = 1e-3
    lr_rotations: float = 5e-3
    image_scale: float = 1.0
    backend: str = "auto"
    ssim_weight: float = 0.2
    weight_image: float = 1.0
    weight_mask: float = 1.0
    weight_depth: float = 1.0
    weight_rigidity: float = 4.0
    weight_rotation: float = 0.1
    weight_isometry: float = 2.0
    neighbours: int = 20
    neighbour_lambda: float = 2000.0
    occlusion_margin: float = 0.02
    n_particles: int = 100
    particle_min_spacing: float = 0.003

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ValueError(f"tracking.{f.name} must be an integer, got {value!r}")
                minimum = 0 if f.name == "init_iterations" else 1
                if value < minimum:
                    raise ValueError(f"tracking.{f.name} must be >= {minimum}, got {value!r}")
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"tracking.{f.name} must be a finite number, got {value!r}")
                if value < 0:
                    raise ValueError(f"tracking.{f.name} must be >= 0, got {value!r}")
                object.__setattr__(self, f.name, float(value))
        for name in ("voxel_size", "image_scale", "lr_means"):
            if getattr(self, name) <= 0:
                raise ValueError(f"tracking.{name} must be > 0, got {getattr(self, name)!r}")
        if self.warm_start_velocity > 1:
            raise ValueError(f"tracking.warm_start_velocity must lie in [0, 1], got {self.warm_start_velocity!r}")
        for name in ("init_opacity", "ssim_weight", "prune_opacity"):
            if getattr(self, name) >= 1 or (name == "init_opacity" and self.init_opacity <= 0):
                raise ValueError(f"tracking.{name} must lie in {'(0, 1)' if name == 'init_opacity' else '[0, 1)'}, "
                                 f"got {getattr(self, name)!r}")
        if self.image_scale > 1:
            raise ValueError(f"tracking.image_scale must be in (0, 1] (images are only shrunk), "
                             f"got {self.image_scale!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"tracking.backend must be one of {BACKENDS}, got {self.backend!r}")

    @classmethod
    def from_mapping(cls, data: dict | None, where: str = "tracking") -> "TrackingConfig":
        """From a YAML mapping; unknown keys and bad values raise ValueError naming the field."""
        try:
            return paths.dataclass_from_mapping(cls, data, where)
        except ValueError as exc:
            raise ValueError(str(exc).replace("tracking.", f"{where}.", 1)) from None


def load_tracking_config(path: str | Path | None = None) -> TrackingConfig:
    """The `tracking:` section of configs/perception.yaml (or of `path`); defaults if absent."""
    path = Path(path) if path is not None else paths.config_path("perception.yaml")
    data = paths.read_yaml_mapping(path)
    try:
        return TrackingConfig.from_mapping(data.get("tracking"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --- input checks --------------------------------------------------------------

def check_frames(frames: Sequence[CameraFrame], calibrations: Sequence[CameraCalibration]) -> None:
    """Raise ValueError naming the field unless `frames` (one per calibration, same order) are
    well-formed images of the calibrated sizes with something to track (see the module notes)."""
    if not isinstance(frames, (list, tuple)) or not all(isinstance(f, CameraFrame) for f in frames):
        raise ValueError("frames must be a list of CameraFrame, one per camera")
    if len(frames) != len(calibrations):
        raise ValueError(f"frames: got {len(frames)} camera frames for {len(calibrations)} calibrated cameras")
    any_mask = False
    for i, (f, cal) in enumerate(zip(frames, calibrations)):
        where = f"frames[{i}] (camera '{f.name}')"
        if f.name != cal.name:
            raise ValueError(f"{where}.name: expected camera '{cal.name}' at position {i} (the calibrations' order)")
        size = (cal.height, cal.width)
        for name, dims, ok, want in (("rgb", size + (3,), lambda a: a.dtype == np.uint8, "uint8"),
                                     ("depth", size, lambda a: np.issubdtype(a.dtype, np.floating), "floating (m)"),
                                     ("mask", size, lambda a: a.dtype == np.bool_, "bool")):
            a = getattr(f, name)
            if not isinstance(a, np.ndarray):
                raise ValueError(f"{where}.{name} must be a numpy array, got {type(a).__name__}")
            if a.shape != dims:
                raise ValueError(f"{where}.{name} has shape {a.shape}; the calibration's image size needs {dims}")
            if not ok(a):
                raise ValueError(f"{where}.{name} must be {want}, got {a.dtype}")
        if not np.isfinite(f.depth).any():
            raise ValueError(f"{where}.depth has no finite value: the whole depth image is NaN or inf")
        any_mask |= bool(f.mask.any())
    if not any_mask:
        raise ValueError("frames: the mask is empty in every camera: nothing to track")


# --- views and losses ----------------------------------------------------------

@dataclass
class _Views:
    """Fitting targets of cameras whose crops share one size (torch, possibly resized), C views:
    rgb (C, H, W, 3) in [0, 1] with non-object pixels black, mask (C, H, W) float, object depth
    (C, H, W) m (0 outside the mask or invalid), scene depth (C, H, W) m (0 invalid; for
    occlusion), and the cropped cameras."""

    cameras: list
    rgb: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    scene_depth: torch.Tensor


def _scaled(cal: CameraCalibration, scale: float) -> tuple[np.ndarray, int, int]:
    """K and size of a calibration with the image resized by `scale` (pixel centres at integers:
    u' = s (u + 0.5) - 0.5)."""
    if scale == 1.0:
        return cal.K, cal.width, cal.height
    w, h = max(1, round(cal.width * scale)), max(1, round(cal.height * scale))
    sx, sy = w / cal.width, h / cal.height
    K = cal.K.copy()
    K[0, 0], K[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
    K[1, 1], K[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
    return K, w, h


def _make_views(frames, calibrations, scale: float, dtype, device, means: np.ndarray,
                margin: int = 12) -> list[_Views]:
    """Fitting targets of every camera, cropped to the box around the object's mask and the
    projections of `means` (G, 3) (where the Gaussians are expected), `margin` px wider: the
    losses' cost scales with the pixels compared, and the object is a small part of the image.
    The crops are widened to one common size where the images allow, so that all cameras are
    compared in one batch; cameras are grouped by crop size."""
    import cv2

    images, boxes = [], []
    for f, cal in zip(frames, calibrations):
        K, w, h = _scaled(cal, scale)
        depth = np.where(np.isfinite(f.depth), f.depth, 0.0).astype(np.float32)
        rgb, mask = f.rgb.astype(np.float32) / 255.0, f.mask.astype(np.float32)
        if (w, h) != (cal.width, cal.height):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
            depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)  # no mixing of valid and invalid
            mask = (mask > 0.5).astype(np.float32)
        rows, cols = np.nonzero(mask > 0.5)
        uv, z = project(means, K, cal.world_to_cam)
        uv = uv[(z > 0) & np.all(np.isfinite(uv), axis=1)]
        cols = np.concatenate([cols, np.clip(np.round(uv[:, 0]), 0, w - 1)])
        rows = np.concatenate([rows, np.clip(np.round(uv[:, 1]), 0, h - 1)])
        if len(rows):
            boxes.append((int(cols.min()) - margin, int(rows.min()) - margin,
                          int(cols.max()) + margin, int(rows.max()) + margin))
        else:  # nothing of the object in this camera: a token crop, it adds no loss
            boxes.append((0, 0, 0, 0))
        images.append((K, w, h, rgb, mask, depth, cal.world_to_cam))
    crop_w = max(b[2] - b[0] + 1 for b in boxes)
    crop_h = max(b[3] - b[1] + 1 for b in boxes)
    groups: dict[tuple[int, int], list] = {}
    for (K, w, h, rgb, mask, depth, world_to_cam), (x0, y0, x1, y1) in zip(images, boxes):
        cw, ch = min(crop_w, w), min(crop_h, h)
        x0 = int(np.clip((x0 + x1 + 1 - cw) // 2, 0, w - cw))  # the common size, centred on the box, inside the image
        y0 = int(np.clip((y0 + y1 + 1 - ch) // 2, 0, h - ch))
        crop = np.s_[y0:y0 + ch, x0:x0 + cw]
        K = K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        groups.setdefault((cw, ch), []).append((K, world_to_cam, rgb[crop], mask[crop], depth[crop]))
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
    views = []
    for (cw, ch), members in groups.items():
        rgb, mask, depth = (np.stack([m[i] for m in members]) for i in (2, 3, 4))
        cams = [Camera(t(K), t(T), cw, ch) for K, T, *_ in members]
        views.append(_Views(cams, t(rgb * mask[..., None]), t(mask), t(depth * mask), t(depth)))
    return views


def _as_channels(images: torch.Tensor) -> torch.Tensor:
    """(C, H, W, 3) views as one (1, H, W, 3C) image: the same mean SSIM (per channel, per pixel),
    computed ~2x faster on a CPU than as a batch of C images."""
    C, H, W, K = images.shape
    return images.permute(1, 2, 0, 3).reshape(1, H, W, C * K)


def _quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def _quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).unflatten(-1, (3, 3))


def _normalised(q: torch.Tensor) -> torch.Tensor:
    return q / q.norm(dim=-1, keepdim=True)


# --- the tracker ---------------------------------------------------------------

@dataclass
class TrackState:
    """The Gaussians after one frame: means (G, 3) float64 m (world), rotations (G, 4) float64
    unit quaternions wxyz (Gaussian -> world), loss (the final loss terms, floats), seconds
    (wall-clock time of this frame's fit), frame (0 = the initialisation frame)."""

    frame: int
    means: np.ndarray
    rotations: np.ndarray
    loss: dict
    seconds: float


class GaussianTracker:
    """Tracks one object through synchronised multi-camera RGB-D frames.

    ``initialise(frames, calibrations)`` builds and fits the Gaussians on the first frame set;
    ``track(frames)`` then takes one new frame set (same cameras, same order) at a time. Usable
    offline (track_episode) and from a live node. device: torch device ("cpu", "cuda")."""

    def __init__(self, config: TrackingConfig | None = None, device: str = "cpu"):
        self.config = config or TrackingConfig()
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.calibrations: list[CameraCalibration] = []
        self.params: dict[str, torch.Tensor] = {}
        self.frame = -1
        self._history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (means, quats) of the last two frames

    @property
    def initialised(self) -> bool:
        return self.frame >= 0

    @property
    def n_gaussians(self) -> int:
        return int(self.params["means"].shape[0]) if self.params else 0

    def gaussians(self) -> Gaussians:
        """The current Gaussians (detached)."""
        return Gaussians(**{k: v.detach() for k, v in self.params.items()})

    def appearance(self) -> dict[str, np.ndarray]:
        """The frozen fields as numpy: colors (G, 3), log_scales (G, 3) log m, opacity_logits (G,)."""
        return {k: self.params[k].detach().cpu().double().numpy() for k in ("colors", "log_scales", "opacity_logits")}

    def initialise(self, frames: list[CameraFrame], calibrations: list[CameraCalibration]) -> TrackState:
        """First frame set (one frame per calibrated camera, same order): open3d initialisation
        and appearance fit; sets up the priors. Calling it again starts a new track."""
        start = time.perf_counter()
        check_frames(frames, calibrations)
        c = self.config
        points, colours = masked_point_cloud(frames, calibrations)
        init = cloud_to_gaussians(points, colours, c.voxel_size, c.max_gaussians, c.outlier_neighbors,
                                  c.outlier_std_ratio, c.init_opacity)
        self.params = {k: torch.as_tensor(v, dtype=self.dtype, device=self.device) for k, v in init.items()}
        views = _make_views(frames, calibrations, c.image_scale, self.dtype, self.device, init["means"])
        rates = {"means": c.init_lr_means, "quats": c.init_lr_rotations, "log_scales": c.init_lr_scales,
                 "opacity_logits": c.init_lr_opacities, "colors": c.init_lr_colors}
        with torch.enable_grad():
            fit_parameters(self.params, make_optimizer(self.params, rates), lambda p: self._loss(p, views)[0],
                           c.init_iterations)
        with torch.no_grad():
            self.params["colors"].clamp_(0.0, 1.0)
            keep = torch.sigmoid(self.params["opacity_logits"]) >= c.prune_opacity
            if int(keep.sum()) < 4:
                keep[:] = True
            self.params = {k: v.detach()[keep].contiguous() for k, v in self.params.items()}
            self.params["quats"] = _normalised(self.params["quats"])
        self._set_neighbours()
        # one Adam for all later frames: its moment estimates carry the scale of each Gaussian's
        # gradient from frame to frame, so a Gaussian already in place takes small steps (a fresh
        # Adam's first steps are ~lr for every parameter, however small its gradient)
        self._optimizer = make_optimizer(self.params, {"means": c.lr_means, "quats": c.lr_rotations})
        self.calibrations = list(calibrations)
        self.frame = 0
        self._history = [(self.params["means"].detach().clone(), self.params["quats"].detach().clone())]
        return self._state(views, start)

    def _set_neighbours(self) -> None:
        """The priors' k nearest neighbours (G, k), weights exp(-lambda d^2) and first-frame distances."""
        means = self.params["means"]
        k = min(self.config.neighbours, means.shape[0] - 1)
        d = torch.cdist(means.double(), means.double())
        d.fill_diagonal_(float("inf"))
        dist, idx = d.topk(k, dim=1, largest=False)
        self._nbr = idx
        self._nbr_weight = torch.exp(-self.config.neighbour_lambda * dist ** 2).to(self.dtype)
        self._nbr_dist0 = dist.to(self.dtype)

    def track(self, frames: list[CameraFrame]) -> TrackState:
        """Fit the Gaussians' means and rotations to one new synchronised frame set."""
        if not self.initialised:
            raise RuntimeError("GaussianTracker.track: call initialise() with the first frame set first")
        start = time.perf_counter()
        check_frames(frames, self.calibrations)
        c = self.config
        prev_means, prev_quats = self._history[-1]
        means, quats = self.params["means"], self.params["quats"]
        with torch.no_grad():  # warm start: constant velocity (in place: the optimiser holds these tensors)
            if len(self._history) == 2:
                older_means, older_quats = self._history[0]
                ahead = c.warm_start_velocity
                means.copy_(prev_means + ahead * (prev_means - older_means))
                quats.copy_(_normalised(prev_quats + ahead * (prev_quats - older_quats)))
            else:
                means.copy_(prev_means)
                quats.copy_(prev_quats)
        views = _make_views(frames, self.calibrations, c.image_scale, self.dtype, self.device,
                            means.detach().cpu().double().numpy())
        prior = (prev_means, prev_quats)
        with torch.enable_grad():
            fit_parameters(self.params, self._optimizer, lambda p: self._loss(p, views, prior)[0], c.iterations)
        with torch.no_grad():
            quats.copy_(_normalised(quats))
        self.frame += 1
        self._history = [self._history[-1], (means.detach().clone(), quats.detach().clone())]
        return self._state(views, start, prior)

    def _state(self, views, start: float, prior=None) -> TrackState:
        with torch.no_grad():
            terms = {name: float(value) for name, value in self._loss(self.params, views, prior)[1].items()}
        return TrackState(self.frame, self.params["means"].detach().cpu().double().numpy(),
                          self.params["quats"].detach().cpu().double().numpy(), terms, time.perf_counter() - start)

    def _loss(self, p: dict[str, torch.Tensor], views: list[_Views], prior=None) -> tuple[torch.Tensor, dict]:
        """Total loss and its terms (tensors, not synchronised into floats here: this runs every
        step, on a GPU too) for parameters `p` against `views`; `prior` = the previous frame's
        (means, quats) adds the rigidity, rotation and isometry priors."""
        c = self.config
        g = Gaussians(**p)
        image = mask = depth = 0.0
        n = sum(len(v.cameras) for v in views)
        for v in views:
            outs = render_views(g, v.cameras, backend=c.backend)
            rgb, alpha, z = (torch.stack([getattr(o, k) for o in outs]) for k in ("rgb", "alpha", "depth"))
            with torch.no_grad():  # something else in front of the object hides it here: no evidence
                hidden = ((v.mask < 0.5) & (v.scene_depth > 0) & (alpha > 0.05)
                          & (v.scene_depth < z - c.occlusion_margin))
                rgb_target = torch.where(hidden[..., None], rgb, v.rgb)
                mask_target = torch.where(hidden, alpha, v.mask)
            share = len(v.cameras) / n  # each camera counts the same
            image = image + share * ((1 - c.ssim_weight) * l1(rgb, rgb_target)
                                     + c.ssim_weight * (1 - ssim(_as_channels(rgb), _as_channels(rgb_target))))
            mask = mask + share * (alpha - mask_target).abs().mean()
            depth = depth + share * depth_l1(z, v.depth, (v.mask > 0.5) & (alpha.detach() > 0.5))
        total = c.weight_image * image + c.weight_mask * mask + c.weight_depth * depth
        terms = {"image": image, "mask": mask, "depth": depth}
        if prior is not None:
            rigid, rot, iso = self._priors(p["means"], p["quats"], *prior)
            total = total + c.weight_rigidity * rigid + c.weight_rotation * rot + c.weight_isometry * iso
            terms |= {"rigidity": rigid, "rotation": rot, "isometry": iso}
        terms["total"] = total
        return total, terms

    def _priors(self, means, quats, prev_means, prev_quats):
        """Weighted local rigidity (m), rotation similarity and isometry (m) over the neighbour pairs."""
        nbr, w = self._nbr, self._nbr_weight
        conj = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=quats.dtype, device=quats.device)
        rel = _quat_mul(_normalised(quats), prev_quats * conj)  # rotation since the previous frame (G, 4)
        offset = means[nbr] - means[:, None]  # (G, k, 3)
        prev_offset = prev_means[nbr] - prev_means[:, None]
        turned = (_quat_to_matrix(rel)[:, None] @ prev_offset[..., None])[..., 0]
        w_sum = w.sum()
        rigid = (w * (offset - turned).norm(dim=-1)).sum() / w_sum
        rot = (w * (rel[nbr] - rel[:, None]).norm(dim=-1)).sum() / w_sum
        iso = (w * (offset.norm(dim=-1) - self._nbr_dist0).abs()).sum() / w_sum
        return rigid, rot, iso


# --- whole episodes ------------------------------------------------------------

@dataclass
class EpisodeTrack:
    """Gaussian tracking of one recorded episode (T frames, G Gaussians, N particles).

    means (T, G, 3) m and rotations (T, G, 4) wxyz of every Gaussian; appearance: the frozen
    colors (G, 3), log_scales (G, 3), opacity_logits (G,); particle_indices (N,) into the
    Gaussians and particles (T, N, 3) m their trajectories; tool (T, 3) m the tool particle from
    forward kinematics; seconds (T,) wall-clock per frame (frame 0: initialisation and
    appearance fit); cpu_seconds (T,) process CPU time per frame; losses: each frame's loss terms;
    frames: the episode's frame index of each tracked frame.
    """

    means: np.ndarray
    rotations: np.ndarray
    appearance: dict
    particle_indices: np.ndarray
    particles: np.ndarray
    tool: np.ndarray
    seconds: np.ndarray
    cpu_seconds: np.ndarray
    losses: list = field(default_factory=list)
    frames: list = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.means.shape[0])

    @property
    def seconds_per_frame(self) -> float:
        """Mean wall-clock seconds of a tracked frame (initialisation excluded)."""
        return float(np.mean(self.seconds[1:])) if self.n_frames > 1 else float("nan")

    @property
    def cpu_seconds_per_frame(self) -> float:
        return float(np.mean(self.cpu_seconds[1:])) if self.n_frames > 1 else float("nan")


def save_track(out, track: EpisodeTrack) -> Path:
    """out/track.npz: every array of the track and its appearance (colors, log_scales, opacity_logits; not
    the losses), with `frames`, the episode's frame index of each tracked frame. What
    robot_dyn.object_dynamics.dataset imports and its rendering skins."""
    path = Path(out) / "track.npz"
    np.savez(path, means=track.means, rotations=track.rotations, particle_indices=track.particle_indices,
             particles=track.particles, tool=track.tool, seconds=track.seconds, cpu_seconds=track.cpu_seconds,
             frames=np.asarray(track.frames, dtype=np.int64), **track.appearance)
    return path


def episode_frames(episode, t: int) -> list[CameraFrame]:
    """The camera frames of frame t of a loaded episode (robot_dyn.perception.episodes.Episode)."""
    if episode.rgb is None:
        raise ValueError(f"{episode.path}: loaded without images (images=False); tracking needs them")
    return [CameraFrame(name, episode.rgb[c][t], episode.depth[c][t], episode.mask[c][t])
            for c, name in enumerate(episode.camera_names)]


def frame_range(episode, frames: range | None) -> range:
    """`frames` checked against the episode (a non-empty range of its frame indices), or all."""
    if frames is None:
        return range(episode.n_frames)
    if not isinstance(frames, range) or len(frames) < 1 or min(frames) < 0 or max(frames) >= episode.n_frames:
        raise ValueError(f"frames must be a non-empty range within the episode's {episode.n_frames} frames, "
                         f"got {frames!r}")
    return frames


def track_episode(episode, config: TrackingConfig | None = None, progress: Callable[[str], None] | None = None,
                  device: str = "cpu", n_frames: int | None = None, frames: range | None = None) -> EpisodeTrack:
    """Track the object through a loaded episode (robot_dyn.perception.episodes.Episode): all its
    frames, its first n_frames, or the range `frames` (the first tracked frame initialises).

    progress: called with one line per frame (frame, loss terms, seconds). The tool particle is
    the pusher tip from the recorded forward kinematics (ee pose + meta pusher.length)."""
    from robot_dyn.perception.particles import particle_trajectories, sample_particles, tool_particle

    config = config or TrackingConfig()
    if n_frames is not None:
        if frames is not None:
            raise ValueError("give n_frames or frames, not both")
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
        frames = range(min(n_frames, episode.n_frames))
    frames = frame_range(episode, frames)
    tracker = GaussianTracker(config, device)
    states, cpu = [], []
    for i, t in enumerate(frames):
        c0 = time.process_time()
        views = episode_frames(episode, t)
        state = tracker.initialise(views, episode.cameras) if i == 0 else tracker.track(views)
        cpu.append(time.process_time() - c0)
        states.append(state)
        if progress is not None:
            what = f"initialised {tracker.n_gaussians} Gaussians" if i == 0 else "tracked"
            terms = " ".join(f"{k} {v:.4g}" for k, v in state.loss.items())
            progress(f"[track] {episode.path.name} frame {t} ({i + 1}/{len(frames)}): {what}, {terms}, "
                     f"{state.seconds:.2f} s")
    means = np.stack([s.means for s in states])
    indices = sample_particles(means[0], config.n_particles, config.particle_min_spacing)
    pusher_length = float((episode.meta.get("pusher") or {}).get("length", 0.0))
    sel = list(frames)
    return EpisodeTrack(means, np.stack([s.rotations for s in states]), tracker.appearance(), indices,
                        particle_trajectories(means, indices),
                        tool_particle(episode.ee_position[sel], episode.ee_rotation[sel], pusher_length),
                        np.array([s.seconds for s in states]), np.array(cpu), [s.loss for s in states], sel)
