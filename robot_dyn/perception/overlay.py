"""Pictures of a tracked episode that a person can check at a glance (OpenCV).

For each shown frame and camera, two panels side by side:
- left: the camera's real image with the control particles (coloured dots, one colour per
  particle, the same in every frame and camera), the tool particle (white ring) and, when
  given, the ground-truth points (small black crosses), all projected with the calibration;
- right: the tracked Gaussians rendered into the same camera (frozen appearance, that frame's
  centres and rotations), black background.
`contact_sheet` stacks a few frames (rows) of all cameras (columns) into one PNG;
`write_video` writes every frame as an mp4 (one row of cameras per video frame).
Images are upscaled (nearest neighbour) by `zoom` so 160x120 views stay legible.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robot_dyn.perception.cameras import project
from robot_dyn.perception.rasterizer import Camera, Gaussians, render


def _particle_colours(first: np.ndarray) -> np.ndarray:
    """BGR colours (N, 3) uint8 of particles at their first positions (N, 3): hue by rank along
    the principal axis, so along a rope the colours run through the rainbow and a particle that
    slides along the object shows as colours out of order."""
    import cv2

    centred = first - first.mean(0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0] if len(first) > 1 else np.zeros(3)
    rank = np.argsort(np.argsort(centred @ axis))
    hue = (150 * rank / max(len(first) - 1, 1)).astype(np.uint8)  # red .. violet, not back to red
    hsv = np.stack([hue, np.full_like(hue, 230), np.full_like(hue, 255)], 1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]


def render_gaussians(track, i: int, calibration) -> np.ndarray:
    """RGB uint8 (H, W, 3) of the tracked Gaussians of tracked frame i seen by one calibrated camera."""
    a = track.appearance
    f = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    g = Gaussians(f(track.means[i]), f(track.rotations[i]), f(a["log_scales"]), f(a["opacity_logits"]), f(a["colors"]))
    cam = Camera(f(calibration.K), f(calibration.world_to_cam), calibration.width, calibration.height)
    with torch.no_grad():
        rgb = render(g, cam, backend="torch").rgb
    return (rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def panel(episode, track, i: int, camera: int, zoom: int = 3, truth: bool = True) -> np.ndarray:
    """BGR uint8: the annotated real image of tracked frame i (the episode's frame
    track.frames[i]), camera index `camera`, beside the render."""
    import cv2

    cal = episode.cameras[camera]
    t = track.frames[i]
    real = cv2.cvtColor(episode.rgb[camera][t], cv2.COLOR_RGB2BGR)
    real = cv2.resize(real, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)

    def pixels(points):
        uv, z = project(np.asarray(points).reshape(-1, 3), cal.K, cal.world_to_cam)
        return [(int(round((u + 0.5) * zoom - 0.5)), int(round((v + 0.5) * zoom - 0.5))) if d > 0 else None
                for (u, v), d in zip(uv, z)]

    if truth:
        for p in pixels(episode.rope_vertices[t]):
            if p:
                cv2.drawMarker(real, p, (0, 0, 0), cv2.MARKER_CROSS, 2 * zoom, 1)
    for p, colour in zip(pixels(track.particles[i]), _particle_colours(track.particles[0])):
        if p:
            cv2.circle(real, p, max(2, zoom), tuple(int(c) for c in colour), -1, cv2.LINE_AA)
    tool = pixels(track.tool[i])[0]
    if tool:
        cv2.circle(real, tool, 3 * zoom, (255, 255, 255), 2, cv2.LINE_AA)
    rendered = cv2.cvtColor(render_gaussians(track, i, cal), cv2.COLOR_RGB2BGR)
    rendered = cv2.resize(rendered, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    both = np.hstack([real, rendered])
    cv2.putText(both, f"{cal.name} frame {t}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return both


def _row(episode, track, i: int, zoom: int, truth: bool) -> np.ndarray:
    sep = lambda h: np.full((h, 4, 3), 64, np.uint8)  # noqa: E731
    panels = [panel(episode, track, i, c, zoom, truth) for c in range(len(episode.cameras))]
    out = [panels[0]]
    for p in panels[1:]:
        out += [sep(p.shape[0]), p]
    return np.hstack(out)


def contact_sheet(episode, track, rows=None, zoom: int = 2, truth: bool = True) -> np.ndarray:
    """BGR uint8 image: one row per tracked frame index in `rows` (default 4, evenly spaced,
    first and last included), columns = every camera's annotated image and render."""
    if rows is None:
        rows = np.unique(np.linspace(0, track.n_frames - 1, min(4, track.n_frames)).round().astype(int))
    rows = [_row(episode, track, int(i), zoom, truth) for i in rows]
    gap = np.full((4, rows[0].shape[1], 3), 64, np.uint8)
    return np.vstack([x for r in rows for x in (r, gap)][:-1])


def write_video(episode, track, path: str | Path, zoom: int = 2, truth: bool = True) -> Path:
    """mp4 (OpenCV, mp4v) of every tracked frame at the episode's frame rate."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = _row(episode, track, 0, zoom, truth)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(episode.fps),
                             (first.shape[1], first.shape[0]))
    if not writer.isOpened():
        raise OSError(f"could not open a video writer for {path}")
    try:
        writer.write(first)
        for i in range(1, track.n_frames):
            writer.write(_row(episode, track, i, zoom, truth))
    finally:
        writer.release()
    return path


def write_overlay(episode, track, out_dir: str | Path, video: bool = True, truth: bool = True) -> list[Path]:
    """Write <episode>_tracking.png (contact sheet) and, if `video`, <episode>_tracking.mp4 into
    out_dir; returns the paths."""
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{episode.path.name}_tracking.png"
    if not cv2.imwrite(str(png), contact_sheet(episode, track, truth=truth)):
        raise OSError(f"could not write {png}")
    written = [png]
    if video:
        written.append(write_video(episode, track, out_dir / f"{episode.path.name}_tracking.mp4", truth=truth))
    return written
