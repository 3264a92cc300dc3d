"""First-frame 3D Gaussians of a tracked object: from the masked RGB-D point cloud, then fitted
to the first images.

Initialisation (step 3 of Dynamic 3D Gaussian tracking, after Zhang, Zhang, Li, CoRL 2024):

1. Fusion: every camera's masked pixels with a valid depth are back-projected to world points
   (metres, world frame, z up) and carry their pixel's RGB (`masked_point_cloud`).
2. open3d cleans the cloud (`cloud_to_gaussians`): ``voxel_down_sample`` (one point per voxel,
   the mean of its points and colours; this sets the Gaussians' spacing and number) and
   ``remove_statistical_outlier`` (points far from their neighbours: depth edges, mask bleed).
   If more than ``max_gaussians`` points remain, ``farthest_point_down_sample`` thins them
   evenly.
3. One Gaussian per point: mean = the point, identity rotation, isotropic standard deviation =
   half the mean distance to its 3 nearest neighbours (an open3d KD-tree), so neighbours
   overlap and the surface is closed, colour = the point's colour, a fixed initial opacity.
4. Appearance fit (`make_optimizer`, `fit_parameters`): a short Adam optimisation of all fields (means,
   rotations, scales, opacities, colours) against the first frame's images. The loss is the
   tracker's (robot_dyn.perception.tracking), passed in as a function so that this module does
   not depend on it. Afterwards the tracker freezes colours, opacities and scales.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from robot_dyn.perception.cameras import CameraCalibration, CameraFrame, backproject


def masked_point_cloud(frames: Sequence[CameraFrame], calibrations: Sequence[CameraCalibration]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) m and their colours (N, 3) in [0, 1] from every camera's pixels that
    are in the mask and have a finite depth > 0 (non-finite depth counts as no depth)."""
    points, colours = [], []
    for f, cal in zip(frames, calibrations):
        depth = np.where(np.isfinite(f.depth), f.depth, 0.0)
        valid = f.mask & (depth > 0)
        points.append(backproject(depth, cal.K, cal.world_to_cam, valid))
        colours.append(f.rgb[valid].astype(np.float64) / 255.0)  # backproject lists pixels in np.nonzero order too
    return np.concatenate(points), np.concatenate(colours)


def clean_point_cloud(points: np.ndarray, colours: np.ndarray | None, voxel_size: float, max_points: int,
                      outlier_neighbors: int = 16, outlier_std_ratio: float = 2.0):
    """open3d cleaning of a cloud (N, 3) m with optional colours (N, 3): voxel downsampling,
    statistical outlier removal, then farthest-point thinning to at most max_points. Returns
    the open3d PointCloud."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    if colours is not None:
        pcd.colors = o3d.utility.Vector3dVector(np.asarray(colours, np.float64))
    pcd = pcd.voxel_down_sample(voxel_size)
    if len(pcd.points) > outlier_neighbors:
        pcd, _ = pcd.remove_statistical_outlier(nb_neighbors=outlier_neighbors, std_ratio=outlier_std_ratio)
    if len(pcd.points) > max_points:
        pcd = pcd.farthest_point_down_sample(max_points)
    return pcd


def cloud_to_gaussians(points: np.ndarray, colours: np.ndarray, voxel_size: float, max_gaussians: int,
                       outlier_neighbors: int = 16, outlier_std_ratio: float = 2.0,
                       opacity: float = 0.8) -> dict[str, np.ndarray]:
    """Gaussian fields (numpy, float64) from a coloured point cloud, cleaned with open3d.

    Returns means (G, 3) m, quats (G, 4) wxyz, log_scales (G, 3) log m, opacity_logits (G,),
    colors (G, 3). Raises ValueError when fewer than 4 points survive the cleaning."""
    import open3d as o3d

    pcd = clean_point_cloud(points, colours, voxel_size, max_gaussians, outlier_neighbors, outlier_std_ratio)
    n = len(pcd.points)
    if n < 4:
        raise ValueError(f"the masked point cloud has only {n} points after voxel downsampling and outlier "
                         f"removal: too little of the object is seen (check the masks and depth)")
    means = np.asarray(pcd.points)
    tree = o3d.geometry.KDTreeFlann(pcd)
    spacing = np.empty(n)
    for i in range(n):
        _, _, d2 = tree.search_knn_vector_3d(pcd.points[i], 4)  # itself and 3 neighbours
        spacing[i] = np.mean(np.sqrt(np.asarray(d2)[1:]))
    sigma = np.clip(0.5 * spacing, 0.25 * voxel_size, 2.0 * voxel_size)
    return {"means": means, "quats": np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
            "log_scales": np.repeat(np.log(sigma)[:, None], 3, axis=1),
            "opacity_logits": np.full(n, math.log(opacity / (1 - opacity))),
            "colors": np.clip(np.asarray(pcd.colors), 0.0, 1.0)}


def make_optimizer(params: dict[str, torch.Tensor], learning_rates: dict[str, float]) -> torch.optim.Adam:
    """Adam over the fields of `params` named in `learning_rates` with a rate > 0 (they are made
    to require gradients); the other fields stay fixed."""
    groups = []
    for name, lr in learning_rates.items():
        if lr > 0:
            params[name].requires_grad_(True)
            groups.append({"params": [params[name]], "lr": lr})
    return torch.optim.Adam(groups)


def fit_parameters(params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                   loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], iterations: int) -> None:
    """`iterations` steps of `optimizer` on loss_fn(params)."""
    for _ in range(iterations):
        loss = loss_fn(params)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
