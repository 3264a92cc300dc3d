"""The oracle: MuJoCo itself predicting the rope, from the true state, along the recorded arm motion.

From a window's start frame t the scene is set to the recorded state -- the arm's joint positions
and velocities, the rope's true vertices, with velocities from the last frame's displacement -- and
simulated for the window, the arm moved kinematically along its recorded joint path (linear between
frames; the joint positions and velocities are overwritten before every physics step, so contact
with the rope cannot push it off its path). What the oracle misses is only what a frame does not
record: the rope's exact velocities and the arm's path between frames. Its error is the floor for
any learned model of this scene; a model is judged by how close it comes.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robot_dyn.object_dynamics.dataset import ParticleEpisode


class MujocoOracle:
    """Predictor (robot_dyn.object_dynamics.evaluation) of the rope's vertices by simulation. The
    dataset's scene must be configs/perception.yaml's (or `config`'s): checked on construction."""

    outputs_vertices = True
    history = 1

    def __init__(self, dataset_meta: dict, config=None):
        from dataclasses import replace

        from robot_dyn.perception.episodes import RopePushSim, load_config

        config = config or load_config()
        config = replace(config, robot=dataset_meta["robot"])
        scene = {"table_height": config.table.height, "tool_radius": config.pusher.tip_radius,
                 "object.n_vertices": config.rope.n_vertices, "object.spacing": config.rope.spacing}
        stored = {"table_height": dataset_meta["table_height"], "tool_radius": dataset_meta["tool_radius"],
                  "object.n_vertices": dataset_meta.get("object", {}).get("n_vertices"),
                  "object.spacing": dataset_meta.get("object", {}).get("spacing")}
        differ = [k for k in scene if stored[k] is None or not np.isclose(stored[k], scene[k])]
        if differ:
            raise ValueError(f"the oracle simulates the configured scene, and the dataset's differs in {differ}")
        self.sim = RopePushSim(config, render=False)
        self.rope = config.rope.name
        self.step_s = float(dataset_meta["step_s"])
        self.substeps = max(1, round(self.step_s / self.sim.backend.dt))

    def predict(self, episode: ParticleEpisode, starts: np.ndarray, steps: int) -> np.ndarray:
        """Rope vertices (S, steps, V, 3) m simulated from each start frame (the arm held at its last
        recorded position past the episode's end)."""
        from robot_dyn.sim.deformables import rope_vertices, set_flex_vertices

        backend, model, data = self.sim.backend, self.sim.model, self.sim.data
        last = episode.n_frames - 1
        out = np.empty((len(starts), steps, episode.truth.shape[1], 3))
        for s, t in enumerate(starts):
            backend.reset(episode.joint_positions[t], episode.joint_velocities[t])
            velocity = (episode.truth[t] - episode.truth[max(t - 1, 0)]) / self.step_s
            set_flex_vertices(model, data, episode.truth[t], self.rope, velocities=velocity)
            for k in range(steps):
                a, b = episode.joint_positions[min(t + k, last)], episode.joint_positions[min(t + k + 1, last)]
                rate = (b - a) / self.step_s
                for i in range(self.substeps):
                    backend.set_arm_state(a + (b - a) * (i / self.substeps), rate)
                    mujoco.mj_step(model, data)
                out[s, k] = rope_vertices(model, data, self.rope)
        return out
