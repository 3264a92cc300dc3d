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


class MujocoRollouts:
    """Planning predictor (robot_dyn.object_dynamics.planning) that is MuJoCo itself: the configured rope
    and table, and the pusher (its rod and tip, as on the arm) driven along each path, the rope at rest at
    `particles` (its true vertices) at the start. No arm: the pusher, `tool_mass` kg with gravity
    compensated, rides three world-aligned slide joints, each with a stiff, critically damped position
    servo (`stiffness` N/m) whose target follows the path, linear between its samples. Driven, not placed:
    overwriting the pusher's position every physics step let the rope slip under the tip (a push the arm
    carried the rope 13.5 cm with moved it 8.1 cm; with the servo, 13.5 cm)."""

    outputs_vertices = True

    def __init__(self, config=None, step_s: float = 0.1, dt: float = 0.001, tool_mass: float = 5.0,
                 stiffness: float = 3e4):
        from robot_dyn.perception.episodes import load_config
        from robot_dyn.sim.deformables import DeformableScene, add_pusher

        config = config or load_config()
        spec = mujoco.MjSpec()
        spec.option.timestep = dt
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST  # as MujocoBackend
        DeformableScene(table=config.table, rope=config.rope, pusher=None).apply(spec)
        carriage = spec.worldbody.add_body(name="pusher_carriage")
        carriage.gravcomp = 1.0
        for i, axis in enumerate(np.eye(3)):
            carriage.add_joint(name=f"pusher_slide_{i}", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis)
            servo = spec.add_actuator(name=f"pusher_servo_{i}", target=f"pusher_slide_{i}", trntype=mujoco.mjtTrn.mjTRN_JOINT)
            servo.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            servo.gainprm[0], servo.biasprm[1] = stiffness, -stiffness
            servo.biasprm[2] = -2.0 * np.sqrt(stiffness * tool_mass)  # critical damping
        # the flange frame, its z axis down as the arm's at the push orientation: the tip is `length` below
        flange = carriage.add_body(name="pusher_flange", quat=[0.0, 1.0, 0.0, 0.0])
        flange.mass, flange.inertia, flange.explicitinertial, flange.gravcomp = tool_mass, [1e-2] * 3, True, 1.0
        add_pusher(spec, "pusher_flange", config.pusher)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.rope, self.length = config.rope.name, config.pusher.length
        self.step_s, self.substeps = float(step_s), max(1, round(step_s / dt))
        self.tool_qpos = slice(self.model.nq - 3, self.model.nq)

    def final(self, particles: np.ndarray, paths: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The rope's vertices (B, V, 3) m after steps[b] steps of path b (B, K + 1, 3), tip centres in m."""
        from robot_dyn.sim.deformables import rope_vertices, set_flex_vertices

        model, data, above = self.model, self.data, np.array([0.0, 0.0, self.length])
        out = np.empty((len(paths), len(particles), 3))
        for b, (path, count) in enumerate(zip(paths, steps)):
            mujoco.mj_resetData(model, data)
            data.qpos[self.tool_qpos] = data.ctrl[:] = path[0] + above
            set_flex_vertices(model, data, particles, self.rope)
            for k in range(int(count)):
                for i in range(self.substeps):
                    data.ctrl[:] = path[k] + (path[k + 1] - path[k]) * ((i + 1) / self.substeps) + above
                    mujoco.mj_step(model, data)
            out[b] = rope_vertices(model, data, self.rope)
        return out
