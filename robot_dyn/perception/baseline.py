"""Baseline tracker: nearest-neighbour / ICP tracking of the fused masked depth point cloud (open3d).

What it is. The points of the first frame's cleaned cloud are the tracked points; each later
frame moves them onto that frame's cloud:

1. Cloud: every camera's masked pixels with valid depth, back-projected and fused (world, m),
   cleaned as for the Gaussians (voxel downsampling, statistical outlier removal;
   robot_dyn.perception.gaussian_init.clean_point_cloud).
2. Optional rigid ICP (`use_icp`): open3d point-to-point ICP of the tracked points onto the
   new cloud, for the global part of the motion.
3. Local rigid nearest-neighbour registration, `nn_iterations` times: every tracked point's
   nearest neighbour in the new cloud (open3d NearestNeighborSearch; none beyond
   `nn_max_distance`, e.g. where the object is hidden) is its correspondence; each point then
   moves with the weighted best rigid motion (Kabsch) of its patch -- its `neighbours` nearest
   tracked points of the first frame, Gaussian weights of width `smoothing_radius` -- onto
   their correspondences. A point without any correspondence in its patch stays.

Why this form. It is what tracking from depth alone does well -- points stay on the observed
surface, each patch moves rigidly so sampling noise averages out, and a point whose own match
is missing is carried by its patch -- on the same data and cleaning as the Gaussian tracker.
What it lacks is appearance, rendering and occlusion reasoning: a nearest neighbour cannot see
a slide along the surface, and a hidden part is pulled toward what is seen. Variants measured
on three 160x120 rope pushes (median / moving-point median / survival): snapping each point to
its nearest neighbour 1.9 mm / 38 mm / 0.69; the same after a global ICP 5.3 / 28 / 0.88;
patches of 48 points 1.3 / 34 / 0.73 (the default), with a global ICP first 4.6 / 25 / 0.90
(ICP moves the resting part of a partly pushed rope); averaging neighbours' displacements
without the rotation, or a constant-velocity prediction, diverged. Same input checks as the
Gaussian tracker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from robot_dyn.perception.cameras import CameraCalibration, CameraFrame
from robot_dyn.perception.gaussian_init import clean_point_cloud, masked_point_cloud
from robot_dyn.perception.tracking import check_frames, episode_frames, frame_range


@dataclass(frozen=True)
class BaselineConfig:
    """Point-cloud tracker settings (m unless said): cloud cleaning as TrackingConfig's;
    use_icp and icp_distance (correspondence cut-off of the global ICP); nn_iterations,
    nn_max_distance; neighbours (patch size) and smoothing_radius (patch weight width)."""

    voxel_size: float = 0.004
    max_points: int = 1500
    outlier_neighbors: int = 16
    outlier_std_ratio: float = 2.0
    use_icp: bool = False
    icp_distance: float = 0.01
    nn_iterations: int = 3
    nn_max_distance: float = 0.02
    neighbours: int = 48
    smoothing_radius: float = 0.01


def _patch_motion(points: np.ndarray, targets: np.ndarray, weights: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Each point (M, 3) moved by the weighted rigid motion (Kabsch) taking its patch's points
    (patches (M, k) indices, weights (M, k)) onto their targets (M, 3)."""
    P, Q = points[patches], targets[patches]  # (M, k, 3)
    w = weights[..., None] / weights.sum(1)[:, None, None]
    cp, cq = (w * P).sum(1), (w * Q).sum(1)
    H = np.einsum("mki,mkj->mij", w * (P - cp[:, None]), Q - cq[:, None])
    U, _, Vt = np.linalg.svd(H)
    V, Ut = np.swapaxes(Vt, 1, 2), np.swapaxes(U, 1, 2)
    D = np.ones((len(P), 3))
    D[:, 2] = np.sign(np.linalg.det(V @ Ut))
    R = V @ (D[:, :, None] * Ut)
    return cq + np.einsum("mij,mj->mi", R, points - cp)


class PointCloudTracker:
    """Tracks the first frame's cloud points through later frames (see the module notes)."""

    def __init__(self, config: BaselineConfig | None = None):
        self.config = config or BaselineConfig()
        self.calibrations: list[CameraCalibration] = []
        self.points: np.ndarray | None = None  # (M, 3) m, the current positions

    @property
    def initialised(self) -> bool:
        return self.points is not None

    def _cloud(self, frames, max_points: int) -> np.ndarray:
        c = self.config
        pcd = clean_point_cloud(masked_point_cloud(frames, self.calibrations)[0], None, c.voxel_size, max_points,
                                c.outlier_neighbors, c.outlier_std_ratio)
        return np.asarray(pcd.points)

    def initialise(self, frames: list[CameraFrame], calibrations: list[CameraCalibration]) -> np.ndarray:
        """The first frame set's cleaned cloud becomes the tracked points (M, 3); returns them."""
        check_frames(frames, calibrations)
        self.calibrations = list(calibrations)
        c = self.config
        points = self._cloud(frames, c.max_points)
        if len(points) < 4:
            raise ValueError(f"the masked point cloud has only {len(points)} points after cleaning: nothing to track")
        d = np.linalg.norm(points[:, None] - points[None], axis=-1)
        self._patches = np.argsort(d, axis=1)[:, :min(c.neighbours, len(points))]  # each includes its point
        self._patch_weights = np.exp(-0.5 * (np.take_along_axis(d, self._patches, 1) / c.smoothing_radius) ** 2)
        self.points = points
        return points.copy()

    def track(self, frames: list[CameraFrame]) -> np.ndarray:
        """Move the tracked points (M, 3) onto one new frame set's cloud; returns them."""
        import open3d as o3d

        if not self.initialised:
            raise RuntimeError("PointCloudTracker.track: call initialise() with the first frame set first")
        check_frames(frames, self.calibrations)
        c = self.config
        cloud = self._cloud(frames, 10 * c.max_points)
        points = self.points
        if len(cloud) >= 4 and c.use_icp:
            reg = o3d.pipelines.registration
            icp = reg.registration_icp(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)),
                                       o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud)), c.icp_distance,
                                       np.eye(4), reg.TransformationEstimationPointToPoint())
            T = np.asarray(icp.transformation)
            points = points @ T[:3, :3].T + T[:3, 3]
        if len(cloud):
            nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(cloud))
            nns.knn_index()
            for _ in range(c.nn_iterations):
                idx, d2 = nns.knn_search(o3d.core.Tensor(points), 1)
                found = np.sqrt(d2.numpy()[:, 0]) <= c.nn_max_distance
                w = self._patch_weights * found[self._patches]
                ok = w.sum(1) > 1e-9
                w[~ok] = 1.0  # no correspondence in the patch: computed, then discarded below
                moved = _patch_motion(points, cloud[idx.numpy()[:, 0]], w, self._patches)
                points = np.where(ok[:, None], moved, points)
        self.points = points
        return points.copy()


def track_episode_baseline(episode, config: BaselineConfig | None = None, frames: range | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Tracked points (T, M, 3) m of a loaded episode, over all its frames or the range `frames`
    (the first one initialises), and the CPU seconds (T,) each frame took."""
    tracker = PointCloudTracker(config)
    out, seconds = [], []
    for i, t in enumerate(frame_range(episode, frames)):
        start = time.process_time()
        views = episode_frames(episode, t)
        out.append(tracker.initialise(views, episode.cameras) if i == 0 else tracker.track(views))
        seconds.append(time.process_time() - start)
    return np.stack(out), np.array(seconds)
