"""Rendering a prediction: the tracked Gaussians moved by the predicted particles, compared with the
cameras' images.

Linear blend skinning in its rigid-patch form: at the rollout's start every Gaussian is tied to its
`k` nearest particles with inverse-distance weights (robot_dyn.perception.tracking_metrics.attach);
at each predicted step the weighted least-squares rigid motion (Kabsch) of those particles from the
start moves the Gaussian's centre and turns its axes (rigid_patches). Appearance -- colours,
scales, opacities -- stays as tracked, as it does in tracking. The moved Gaussians are rendered
with the project's rasteriser (robot_dyn.perception.rasterizer; gsplat on CUDA) into each recorded
camera and scored against that camera's frame at the same step:
- mask IoU: the render's silhouette (alpha > 0.5) against the object's mask;
- PSNR (dB): the render (black background) against the image with everything outside the mask
  set to black, as the tracker sees it.
The arm hides parts of the rope in some views and is not rendered, which lowers both scores alike
for every variant; compare variants, not absolute values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SKIN_NEIGHBOURS = 8


def skin(means0: np.ndarray, quats0: np.ndarray, particles: np.ndarray, k: int = SKIN_NEIGHBOURS):
    """Gaussians (means0 (G, 3) m, quats0 (G, 4) wxyz) at particles[0] (N, 3), moved with particles
    (T, N, 3) m: means (T, G, 3) m and quats (T, G, 4) wxyz."""
    from scipy.spatial.transform import Rotation

    from robot_dyn.perception.tracking_metrics import attach, rigid_patches

    means, turns = rigid_patches(attach(means0, particles[0], k), particles)
    frames, count = turns.shape[:2]
    base = Rotation.from_quat(np.roll(quats0, -1, axis=1))  # scipy: x, y, z, w
    quats = np.empty((frames, count, 4))
    for t in range(frames):
        xyzw = (Rotation.from_matrix(turns[t]) * base).as_quat()
        quats[t] = np.roll(xyzw, 1, axis=1)
    return means, quats


def render_scores(appearance: dict, means: np.ndarray, quats: np.ndarray, calibrations, rgb, masks) -> dict:
    """Mask IoU and PSNR (see the module notes) of Gaussians means (T, G, 3), quats (T, G, 4) with an
    appearance (colors (G, 3), log_scales (G, 3), opacity_logits (G,)) against per-camera images rgb[c]
    (T, H, W, 3) uint8 and masks[c] (T, H, W) bool: {"mask_iou": (T,), "psnr_db": (T,)} (means over
    cameras)."""
    import torch

    from robot_dyn.perception.rasterizer import Camera, Gaussians, render_views

    f = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    cameras = [Camera(f(c.K), f(c.world_to_cam), c.width, c.height) for c in calibrations]
    iou, psnr = np.zeros(len(means)), np.zeros(len(means))
    for t in range(len(means)):
        g = Gaussians(f(means[t]), f(quats[t]), f(appearance["log_scales"]), f(appearance["opacity_logits"]),
                      f(appearance["colors"]))
        with torch.no_grad():
            views = render_views(g, cameras)
        ious, psnrs = [], []
        for c, view in enumerate(views):
            mask = masks[c][t]
            solid = view.alpha.numpy() > 0.5
            union = np.logical_or(solid, mask).sum()
            ious.append(np.logical_and(solid, mask).sum() / union if union else 1.0)
            target = rgb[c][t].astype(np.float64) / 255.0 * mask[..., None]
            mse = np.mean((view.rgb.clamp(0, 1).double().numpy() - target) ** 2)
            psnr_db = 10 * np.log10(1.0 / mse) if mse > 0 else 100.0
            psnrs.append(psnr_db)
        iou[t], psnr[t] = np.mean(ious), np.mean(psnrs)
    return {"mask_iou": iou, "psnr_db": psnr}


def compare_renders(model, episode, episode_dir, track_dir) -> dict:
    """Render scores over a whole push (robot_dyn.object_dynamics.evaluation.whole_push_rollout from the first
    frame with a full history) of a "tracked" dataset's episode, for three sets of Gaussians: 'predicted'
    (skinned to the model's predicted particles), 'tracked' (the track itself: the ceiling) and 'frozen'
    (left where they started: zero motion). Returns {variant: {"mask_iou": mean, "psnr_db": mean,
    "final_mask_iou": last frame's}}."""
    from robot_dyn.object_dynamics.dataset import read_npz
    from robot_dyn.object_dynamics.evaluation import LearnedPredictor, whole_push_rollout
    from robot_dyn.perception.episodes import load_episode

    track = read_npz(Path(track_dir) / "track.npz",
                     ("means", "rotations", "frames", "colors", "log_scales", "opacity_logits"))
    recorded = load_episode(episode_dir)
    start, predicted = whole_push_rollout(LearnedPredictor(model), episode)
    particles = np.concatenate([episode.particles[start:start + 1], predicted])
    first = int(track["frames"][0]) + start  # the episode's frame at the rollout's start
    frames = range(first, first + len(particles))
    means0, quats0 = track["means"][start], track["rotations"][start]
    variants = {"predicted": skin(means0, quats0, particles),
                "tracked": (track["means"][start:], track["rotations"][start:]),
                "frozen": (np.repeat(means0[None], len(particles), 0), np.repeat(quats0[None], len(particles), 0))}
    appearance = {k: track[k] for k in ("colors", "log_scales", "opacity_logits")}
    rgb = [images[frames.start:frames.stop] for images in recorded.rgb]
    masks = [images[frames.start:frames.stop] for images in recorded.mask]
    result = {}
    for name, (means, quats) in variants.items():
        scores = render_scores(appearance, means, quats, recorded.cameras, rgb, masks)
        result[name] = {"mask_iou": float(scores["mask_iou"].mean()), "psnr_db": float(scores["psnr_db"].mean()),
                        "final_mask_iou": float(scores["mask_iou"][-1])}
    return result
