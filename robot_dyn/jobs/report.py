"""What a run leaves for a person to look at: metrics, plots and a video replay."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from robot_dyn.robots.description import RobotDescription  # noqa: E402


def rms(values) -> float:
    values = np.asarray(values)
    return float(np.sqrt(np.mean(values**2))) if values.size else float("nan")


def path_following(p_actual, p_desired) -> dict:
    """How a path was followed: p_actual (N, 3) m the measured positions and p_desired (N, 3) m the path's at
    the same times (as scheduled), consecutive points close together. tracking_*: the distance from the
    point of the same time; path_error_*: from the nearest point of the path's curve, whenever reached (a
    path the controller slowed is off its schedule by as much as it was late, not off its shape)."""
    from scipy.spatial import cKDTree

    p_actual, p_desired = np.asarray(p_actual, float), np.asarray(p_desired, float)
    err = np.linalg.norm(p_actual - p_desired, axis=1)
    off_curve = cKDTree(p_desired).query(p_actual)[0]
    return {"tracking_rms_m": rms(err), "tracking_max_m": float(err.max()),
            "path_error_rms_m": rms(off_curve), "path_error_max_m": float(off_curve.max())}


def align_references(t_states, t_refs, q_refs):
    """Reference positions at the state stamps (the reference stamped at or before each state)."""
    idx = np.clip(np.searchsorted(t_refs, t_states + 1e-9, side="right") - 1, 0, len(t_refs) - 1)
    return q_refs[idx]


def plot_joint_tracking(path: Path, robot: RobotDescription, t, q, q_ref) -> None:
    fig, axes = plt.subplots(robot.n_joints, 2, figsize=(12, 2.0 * robot.n_joints), sharex=True)
    for j, name in enumerate(robot.joint_names):
        axes[j, 0].plot(t, q_ref[:, j], "k--", lw=1, label="reference q_d")
        axes[j, 0].plot(t, q[:, j], lw=1, label="measured q")
        axes[j, 0].set_ylabel(f"{name}\n[rad]", fontsize=8)
        axes[j, 1].plot(t, 1e3 * (q_ref[:, j] - q[:, j]), lw=1, color="tab:red")
        axes[j, 1].set_ylabel("q_d - q [mrad]", fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[0, 0].set_title("joint positions")
    axes[0, 1].set_title("joint tracking error")
    for ax in axes[-1]:
        ax.set_xlabel("sim time [s]")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_torques(path: Path, robot: RobotDescription, t, tau) -> None:
    fig, axes = plt.subplots(robot.n_joints, 1, figsize=(10, 1.6 * robot.n_joints), sharex=True)
    for j, name in enumerate(robot.joint_names):
        axes[j].plot(t, tau[:, j], lw=1)
        peak = np.abs(tau[:, j]).max()
        axes[j].set_ylim(-max(peak * 1.3, 1e-3), max(peak * 1.3, 1e-3))
        axes[j].set_ylabel(f"{name}\n[Nm]", fontsize=8)
        axes[j].set_title(f"peak {peak:.3g} Nm of {robot.tau_max[j]:.0f} Nm limit", fontsize=8, loc="right")
    axes[0].set_title("commanded joint torque (robot layer output, gravity compensation excluded)", loc="left")
    axes[-1].set_xlabel("sim time [s]")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_cartesian(path: Path, t, p_actual, p_desired, plane: str) -> None:
    axes_idx = {"xy": (0, 1), "yz": (1, 2), "xz": (0, 2)}[plane]
    labels = "xyz"
    err = np.linalg.norm(p_actual - p_desired, axis=1) * 1e3
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    i, j = axes_idx
    a.plot(p_desired[:, i], p_desired[:, j], "k--", lw=1, label="desired")
    a.plot(p_actual[:, i], p_actual[:, j], lw=1, label="actual (FK of measured q)")
    a.set_aspect("equal")
    a.set_xlabel(f"{labels[i]} [m]")
    a.set_ylabel(f"{labels[j]} [m]")
    a.legend(fontsize=8)
    a.set_title("end-effector figure-8")
    b.plot(t, err, lw=1)
    b.set_xlabel("sim time [s]")
    b.set_ylabel("position error [mm]")
    b.set_title(f"tracking error: RMS {rms(err):.4f} mm, max {err.max():.4f} mm")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_replay(path: Path, robot: RobotDescription, t, q, fps: int, width: int, height: int, trace=None) -> int:
    """MP4 of the recorded joint trajectory from the scene camera (MuJoCo, MUJOCO_GL=egl headless).

    trace: optional (N, 3) world points drawn as small spheres (e.g. the desired path).
    Returns the number of frames written.
    """
    import imageio.v2 as imageio
    import mujoco

    from robot_dyn.sim.effects import UnmodelledEffects
    from robot_dyn.sim.mujoco_backend import SCENE_CAMERA, build_scene_spec

    model = build_scene_spec(robot, UnmodelledEffects(), 0.001).compile()
    data = mujoco.MjData(model)
    qpos = [model.joint(j).qposadr[0] for j in robot.joint_names]
    frame_times = np.arange(t[0], t[-1], 1.0 / fps)
    frames = 0
    with mujoco.Renderer(model, height, width) as renderer, imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=8) as writer:
        for tf in frame_times:
            k = min(np.searchsorted(t, tf), len(t) - 1)
            data.qpos[qpos] = q[k]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=SCENE_CAMERA)
            if trace is not None:
                scene = renderer.scene
                for point in trace[:: max(1, len(trace) // 150)]:
                    if scene.ngeom >= scene.maxgeom:
                        break
                    mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([0.004, 0, 0]),
                                        np.asarray(point, float), np.eye(3).reshape(-1), np.array([0.1, 0.4, 1.0, 0.8], np.float32))
                    scene.ngeom += 1
            writer.append_data(renderer.render())
            frames += 1
    return frames


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")
