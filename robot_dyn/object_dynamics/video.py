"""A predicted push beside the real one, as a video a person can check at a glance (OpenCV).

Each video frame shows the table from above in two panels: left the ground truth (the rope's
vertices as a polyline and dots), right the prediction (the predicted particles, and the ground
truth faint underneath), the tool's tip circle in both, with the step and the error written on it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

PANEL = 360  # px, square
VIEW = 0.5  # m, the side of the table area shown


def _pixels(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Top-view pixel coordinates (M, 2) int of world points (M, 3): x up the image, y to the left."""
    scale = PANEL / VIEW
    u = PANEL / 2 - (points[:, 1] - centre[1]) * scale
    v = PANEL / 2 - (points[:, 0] - centre[0]) * scale
    return np.round(np.stack([u, v], axis=1)).astype(np.int32)


def _panel(points: np.ndarray, tool: np.ndarray, centre: np.ndarray, colour, title: str, tool_radius: float,
           faint: np.ndarray | None = None) -> np.ndarray:
    import cv2

    image = np.full((PANEL, PANEL, 3), 245, np.uint8)
    if faint is not None:
        cv2.polylines(image, [_pixels(faint, centre)], False, (200, 200, 200), 6)
    pixels = _pixels(points, centre)
    cv2.polylines(image, [pixels], False, colour, 2)
    for p in pixels:
        cv2.circle(image, tuple(int(c) for c in p), 3, colour, -1)
    cv2.circle(image, tuple(int(c) for c in _pixels(tool[None], centre)[0]), max(2, int(tool_radius * PANEL / VIEW)),
               (60, 60, 60), 2)
    cv2.putText(image, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def write_prediction_video(path: str | Path, truth: np.ndarray, predicted: np.ndarray, tool: np.ndarray,
                           errors_mm: np.ndarray, fps: float, tool_radius: float) -> Path:
    """Write an mp4: truth (T, V, 3) m beside predicted (T, M, 3) m (frame 0 is the start, shown in both),
    tool (T, 3) m, errors_mm (T,) the mean vertex error per frame."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    centre = truth[0].mean(axis=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (2 * PANEL, PANEL))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4 here")
    try:
        for t in range(len(truth)):
            left = _panel(truth[t], tool[t], centre, (40, 140, 40), f"ground truth, step {t}", tool_radius)
            right = _panel(predicted[t], tool[t], centre, (40, 40, 200),
                           f"predicted, error {errors_mm[t]:.1f} mm", tool_radius, faint=truth[t])
            writer.write(np.concatenate([left, right], axis=1))
    finally:
        writer.release()
    return path
