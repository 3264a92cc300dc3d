"""Scoring particle dynamics models against the ground truth, the same way for every model.

Windows: every frame t of a held-out push at which the tool pushes -- its tip centre within 1 cm of
its pushing height (table + tip radius + 1 cm) and moving more than 1 mm sideways over the next
step -- with the model's history (H frames before t) available. From each, the model rolls out
along the recorded tool path; its prediction h steps ahead is scored against the ground truth at
t + h (where the push lasts that long). Most of a push is the rope at rest, which every model gets
right; scoring from the pushing frames keeps the figures about the motion.

Predicted particles are turned into ground-truth vertices first: when the particles are the
vertices themselves (a "truth" dataset) directly, otherwise (tracked particles on the rope's
surface) by the attachment of robot_dyn.perception.tracking_metrics, made at the window's start.
Then, in mm:
- MDE: mean distance between each predicted vertex and its true position;
- Chamfer: symmetric, the mean of both directions' mean nearest-neighbour distances;
- EMD: mean distance under the optimal one-to-one matching (scipy's linear_sum_assignment), which
  unlike Chamfer penalises bunching.
Whole push: one rollout from the first frame with a full history to the last frame, scored at the
last frame (the prediction error accumulated over the whole push).
"""
from __future__ import annotations

import numpy as np

from robot_dyn.object_dynamics.dataset import ParticleDataset, ParticleEpisode

HORIZONS = (1, 5, 10, 20)
PUSH_HEIGHT_MARGIN = 0.01  # m
PUSH_MOTION = 0.001  # m per step, sideways


def push_frames(episode: ParticleEpisode, table_height: float, tool_radius: float) -> np.ndarray:
    """Frames (indices) at which the tool pushes: low (within PUSH_HEIGHT_MARGIN of pushing height) and
    moving sideways by more than PUSH_MOTION over the next step."""
    low = episode.tool[:-1, 2] < table_height + tool_radius + PUSH_HEIGHT_MARGIN
    moving = np.linalg.norm(np.diff(episode.tool[:, :2], axis=0), axis=1) > PUSH_MOTION
    return np.flatnonzero(low & moving)


def chamfer(a: np.ndarray, b: np.ndarray):
    """Symmetric Chamfer distance (m) between point sets a (M, D) and b (V, D), any dimension D; for a
    batch of sets a (B, M, D), the distances (B,)."""
    d = np.linalg.norm(a[..., :, None, :] - b[None], axis=-1)  # (..., M, V)
    value = 0.5 * (d.min(axis=-1).mean(axis=-1) + d.min(axis=-2).mean(axis=-1))
    return float(value) if np.ndim(value) == 0 else value


def emd(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance (m): mean distance under the optimal matching of equal-size sets (V, 3)."""
    from scipy.optimize import linear_sum_assignment

    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    rows, cols = linear_sum_assignment(d)
    return float(d[rows, cols].mean())


def to_vertices(predicted: np.ndarray, particles0: np.ndarray, truth0: np.ndarray) -> np.ndarray:
    """Predicted particles (K, N, 3) as ground-truth vertices (K, V, 3), given the particles (N, 3) and the
    vertices (V, 3) at the rollout's start (see the module notes)."""
    from robot_dyn.perception.tracking_metrics import attach, propagate

    if particles0.shape == truth0.shape and np.allclose(particles0, truth0, atol=1e-9):
        return predicted
    frames = np.concatenate([particles0[None], predicted])
    return propagate(attach(truth0, particles0), frames)[1:]


class LearnedPredictor:
    """Rollouts of a particle model (robot_dyn.object_dynamics.models interface) for evaluation."""

    outputs_vertices = False

    def __init__(self, model):
        self.model, self.history = model, model.config.history

    def predict(self, episode: ParticleEpisode, starts: np.ndarray, steps: int) -> np.ndarray:
        """Rollouts (S, steps, N, 3) m from each start frame along the recorded tool path (held at its last
        position past the episode's end)."""
        import torch

        from robot_dyn.object_dynamics.models import rollout

        last = episode.n_frames - 1
        offsets = np.arange(-self.history, 1)
        ahead = np.minimum(starts[:, None] + np.arange(1, steps + 1), last)
        objects = torch.as_tensor(episode.particles[starts[:, None] + offsets], dtype=torch.float32)
        tool = torch.as_tensor(episode.tool[starts[:, None] + offsets], dtype=torch.float32)
        path = torch.as_tensor(episode.tool[ahead], dtype=torch.float32)
        device = next(iter(self.model.parameters()), torch.zeros(0)).device  # where the model is (a GPU in training)
        with torch.no_grad():
            return rollout(self.model, objects.to(device), tool.to(device), path.to(device)).double().cpu().numpy()


def predictor_of(model):
    """The model as a predictor: itself when it has predict() (the oracle), else a LearnedPredictor."""
    return model if hasattr(model, "predict") else LearnedPredictor(model)


def vertices_of(predictor, predicted: np.ndarray, episode: ParticleEpisode, t: int) -> np.ndarray:
    """A rollout (K, N or V, 3) from frame t as ground-truth vertices (K, V, 3)."""
    if predictor.outputs_vertices:
        return predicted
    return to_vertices(predicted, episode.particles[t], episode.truth[t])


def whole_push_rollout(predictor, episode: ParticleEpisode) -> tuple[int, np.ndarray]:
    """(start frame, the prediction (T - 1 - start, N or V, 3) m): one rollout from the first frame with a
    full history to the last frame (vertices_of turns it into vertices)."""
    start = predictor.history
    return start, predictor.predict(episode, np.array([start]), episode.n_frames - 1 - start)[0]


def evaluate(model, dataset: ParticleDataset, horizons=HORIZONS, whole_push: bool = False) -> dict:
    """mde_mm_at_<h>, chamfer_mm_at_<h>, emd_mm_at_<h> for each horizon h (mean over windows),
    mde_mm_curve (steps 1 .. max h), windows (count) and, with whole_push, whole_push_mde_mm (mean
    over pushes) and whole_push_mde_mm_max. model: a particle model, or a predictor with history,
    outputs_vertices and predict(episode, starts, steps) (the MuJoCo oracle)."""
    predictor = predictor_of(model)
    history = predictor.history
    top = max(horizons)
    errors = {name: [[] for _ in range(top)] for name in ("mde", "chamfer", "emd")}
    count = 0
    table, radius = dataset.meta["table_height"], dataset.meta["tool_radius"]
    for episode in dataset.episodes:
        starts = push_frames(episode, table, radius)
        starts = starts[starts >= history]
        if not len(starts):
            continue
        count += len(starts)
        predicted = predictor.predict(episode, starts, top)
        for s, t in enumerate(starts):
            steps = min(top, episode.n_frames - 1 - t)
            vertices = vertices_of(predictor, predicted[s, :steps], episode, t)
            for k in range(steps):
                truth = episode.truth[t + k + 1]
                errors["mde"][k].append(np.linalg.norm(vertices[k] - truth, axis=1).mean())
                if k + 1 in horizons:
                    errors["chamfer"][k].append(chamfer(vertices[k], truth))
                    errors["emd"][k].append(emd(vertices[k], truth))
    if not count:
        raise ValueError("no pushing frame with a full history in the evaluation episodes")
    mm = lambda values: float(np.mean(values) * 1e3) if values else float("nan")  # noqa: E731
    result = {"windows": count, "mde_mm_curve": [mm(v) for v in errors["mde"]]}
    for h in horizons:
        for name in ("mde", "chamfer", "emd"):
            result[f"{name}_mm_at_{h}"] = mm(errors[name][h - 1])
    if whole_push:
        finals = []
        for episode in dataset.episodes:
            start, predicted = whole_push_rollout(predictor, episode)
            vertices = vertices_of(predictor, predicted, episode, start)
            finals.append(np.linalg.norm(vertices[-1] - episode.truth[-1], axis=1).mean())
        result["whole_push_mde_mm"] = mm(finals)
        result["whole_push_mde_mm_max"] = float(np.max(finals) * 1e3)
    return result
