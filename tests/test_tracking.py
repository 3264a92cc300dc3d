"""Offline rope tracking: Gaussian tracking of a short recorded push against ground truth, the
point-cloud baseline, control particles, the metrics, the pictures and bad input (CPU)."""
import dataclasses

import numpy as np
import pytest

from robot_dyn.perception import tracking_metrics as tm
from robot_dyn.perception.baseline import track_episode_baseline
from robot_dyn.perception.episodes import load_config, load_episode, record_episodes
from robot_dyn.perception.overlay import write_overlay
from robot_dyn.perception.particles import sample_particles, tool_particle
from robot_dyn.perception.tracking import (GaussianTracker, TrackingConfig, episode_frames, load_tracking_config,
                                           track_episode)

# Seed 3's push: the rope rests until frame ~16, is pushed through frame ~33 (up to 10 cm).
# Tracking frames 14-33 covers the whole push with the first frame at rest.
FRAMES = range(14, 34)
# The default Gaussians (6 mm voxels, ~400 on the rope), a shorter first-frame fit and 15 steps
# per frame (default 20): ~8 s of CPU.
SMALL = TrackingConfig(init_iterations=50, iterations=15)




@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """One recorded push, 4 cameras at 160x120 (the tracking resolution), no shadows (faster)."""
    config = load_config().with_images(width=160, height=120, shadow_size=0)
    (path,) = record_episodes(tmp_path_factory.mktemp("episodes"), 1, seed=3, config=config, progress=False)
    return load_episode(path)


@pytest.fixture(scope="module")
def tracked(episode):
    lines = []
    return track_episode(episode, SMALL, progress=lines.append, frames=FRAMES), lines


def test_gaussian_tracking_follows_a_pushed_rope(episode, tracked):
    track, lines = tracked
    truth = episode.rope_vertices[FRAMES.start:FRAMES.stop]
    g, still = tm.score(track.means, truth), tm.no_motion(truth)
    base = tm.score(track_episode_baseline(episode, frames=FRAMES)[0], truth)
    # Measured at these settings: median 1.5 mm, moving vertices 4.2 mm, final frame 3.1 mm;
    # reporting no motion scores 8.1 / 54 / 53 mm, the baseline 6.0 / 27 / 19 mm. Bounds: the
    # issue's 5 mm target for the median, and 10 mm -- a fifth of the no-motion error -- for the
    # moving vertices and the last frame, where a tracker that lost the rope would show.
    assert g["median_3d_error_mm"] < 5.0 < still["median_3d_error_mm"]
    assert g["moving_median_3d_error_mm"] < 10.0 < still["moving_median_3d_error_mm"] / 5
    assert g["final_median_3d_error_mm"] < 10.0 < still["final_median_3d_error_mm"] / 5
    assert g["survival_rate"] == 1.0
    assert g["moving_median_3d_error_mm"] < base["moving_median_3d_error_mm"]  # baseline measured 27 mm
    assert len(lines) == len(FRAMES) and "frame 14 (1/20): initialised" in lines[0]
    assert track.means.shape == (len(FRAMES), track.means.shape[1], 3) and track.rotations.shape[2] == 4
    assert np.all(np.isfinite(track.means)) and np.allclose(np.linalg.norm(track.rotations, axis=2), 1.0)


def test_particles_and_tool_particle(episode, tracked):
    track, _ = tracked
    n = len(track.particle_indices)
    # ~400 Gaussians over 0.47 m of rope: FPS stops at the 5 mm spacing before 100 particles
    assert 50 <= n <= SMALL.n_particles and len(set(track.particle_indices.tolist())) == n
    assert np.array_equal(track.particles, track.means[:, track.particle_indices])
    first = track.particles[0]
    gaps = np.linalg.norm(first[:, None] - first[None], axis=-1) + np.eye(n)
    assert gaps.min() >= SMALL.particle_min_spacing
    # the tool particle is the pusher tip, from forward kinematics of the recorded joints
    assert np.allclose(track.tool, episode.pusher_tip[FRAMES.start:FRAMES.stop], atol=1e-9)


def test_overlay_writes_a_contact_sheet(episode, tracked, tmp_path):
    import cv2

    (png,) = write_overlay(episode, tracked[0], tmp_path, video=False)
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 4 * 120 and image.shape[1] > 4 * 2 * 160


def test_farthest_point_sampling_spacing_count_and_seed():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 0.1, (2000, 3))
    idx = sample_particles(points, 50, min_spacing=0.005, seed=1)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert np.array_equal(idx, sample_particles(points, 50, min_spacing=0.005, seed=1))
    chosen = points[idx]
    gaps = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1) + np.eye(50)
    assert gaps.min() >= 0.005
    # FPS covers the set: every point is near a particle (a random pick would leave gaps)
    cover = np.linalg.norm(points[:, None] - chosen[None], axis=-1).min(1).max()
    assert cover < 0.03
    # a small object stops at the spacing: 3 cm of line, 1 cm spacing -> at most 4 particles
    line = np.column_stack([np.linspace(0, 0.03, 300), np.zeros(300), np.zeros(300)])
    assert 3 <= len(sample_particles(line, 100, min_spacing=0.01)) <= 4
    assert len(sample_particles(points[:7], 100)) == 7
    with pytest.raises(ValueError, match="means"):
        sample_particles(np.zeros((5, 2)), 3)
    with pytest.raises(ValueError, match="n"):
        sample_particles(points, 0)
    assert np.allclose(tool_particle([1.0, 2.0, 3.0], np.eye(3), 0.1), [1.0, 2.0, 3.1])


def test_metrics_recover_a_rigid_motion_and_score_no_motion():
    rng = np.random.default_rng(0)
    truth0 = np.column_stack([np.linspace(0, 0.3, 20), 0.02 * np.sin(np.linspace(0, 3, 20)), np.zeros(20)])
    surface = truth0[rng.integers(0, 20, 400)] + rng.normal(0, 0.007, (400, 3))  # points around the centreline
    frames = []
    for t in range(6):
        c, s = np.cos(0.1 * t), np.sin(0.1 * t)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        frames.append((R, np.array([0.01 * t, 0.0, 0.0])))
    tracked = np.stack([surface @ R.T + d for R, d in frames])
    truth = np.stack([truth0 @ R.T + d for R, d in frames])
    assert tm.score(tracked, truth)["median_3d_error_mm"] < 1e-9
    still = tm.no_motion(truth)
    displacement = np.linalg.norm(truth[1:] - truth[:1], axis=-1)
    assert still["median_3d_error_mm"] == pytest.approx(np.median(displacement) * 1e3)
    assert still["survival_rate"] == np.mean(displacement.max(0) <= tm.SURVIVAL_RADIUS)
    with pytest.raises(ValueError, match="tracked"):
        tm.score(tracked[:3], truth)


# --- bad input -------------------------------------------------------------------

def _replace(frames, i, **fields):
    frames = list(frames)
    frames[i] = dataclasses.replace(frames[i], **fields)
    return frames


def test_bad_frames_are_rejected_naming_the_field(episode):
    frames, cams = episode_frames(episode, 0), episode.cameras
    tracker = GaussianTracker(SMALL)
    with pytest.raises(RuntimeError, match="initialise"):
        tracker.track(frames)
    f0 = frames[0]
    cases = [
        (frames[:3], "frames: got 3 camera frames for 4"),
        (_replace(frames, 1, rgb=np.zeros((60, 80, 3), np.uint8)), r"frames\[1\].*rgb has shape"),
        (_replace(frames, 2, depth=f0.depth[:, :100]), r"frames\[2\].*depth has shape"),
        (_replace(frames, 0, rgb=f0.rgb.astype(np.float32)), r"frames\[0\].*rgb must be uint8"),
        (_replace(frames, 0, depth=f0.depth.astype(np.int32)), r"frames\[0\].*depth must be floating"),
        (_replace(frames, 3, mask=f0.mask.astype(np.uint8)), r"frames\[3\].*mask must be bool"),
        (_replace(frames, 1, depth=np.full_like(f0.depth, np.nan)), r"frames\[1\].*depth has no finite value"),
        ([dataclasses.replace(f, mask=np.zeros_like(f.mask)) for f in frames], "mask is empty in every camera"),
        (list(reversed(frames)), r"frames\[0\].*name: expected camera 'cam0'"),
        (frames[:1] + ["not a frame"] * 3, "list of CameraFrame"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            tracker.initialise(bad, cams)
    assert not tracker.initialised


def test_non_finite_depth_pixels_are_treated_as_invalid(episode):
    frames = episode_frames(episode, FRAMES.start)
    holes = []
    for k, f in enumerate(frames):
        depth = f.depth.copy()
        depth[::3, ::2] = np.nan if k % 2 else np.inf  # a third of the rows' pixels
        holes.append(dataclasses.replace(f, depth=depth))
    tracker = GaussianTracker(dataclasses.replace(SMALL, init_iterations=2, iterations=2))
    tracker.initialise(holes, episode.cameras)
    state = tracker.track(holes)
    assert tracker.initialised and np.all(np.isfinite(state.means))
    assert all(np.isfinite(v) for v in state.loss.values())


def test_tracking_config_is_validated_naming_the_field(tmp_path):
    assert load_tracking_config() == TrackingConfig.from_mapping(load_tracking_config().__dict__)
    for data, field in (({"iterations": 0}, "tracking.iterations"), ({"lr_means": "fast"}, "tracking.lr_means"),
                        ({"voxel_size": -1.0}, "tracking.voxel_size"), ({"backend": "opengl"}, "tracking.backend"),
                        ({"image_scale": 1.5}, "tracking.image_scale"), ({"irrations": 3}, "tracking.irrations"),
                        ({"warm_start_velocity": 1.5}, "tracking.warm_start_velocity")):
        with pytest.raises(ValueError, match=field):
            TrackingConfig.from_mapping(data)
    bad = tmp_path / "perception.yaml"
    bad.write_text("tracking:\n  neighbours: many\n")
    with pytest.raises(ValueError, match=r"perception.yaml: tracking.neighbours must be an integer"):
        load_tracking_config(bad)


def test_a_few_iterations_a_frame_hold_a_still_rope_while_the_arm_crosses_it_with_a_damped_warm_start():
    """The sim tests' live tracker (5 iterations a frame, 150 Gaussians, 96x72): the arm passes over the
    resting rope and hovers above a push's start. A full constant-velocity warm start carries each frame's
    residual of the partly occluded fit on into the next, and the track ran away (30 mm cloud medians); half
    of it does not (4 mm)."""
    from robot_dyn.perception.episodes import RopePushSim, plan_push
    from robot_dyn.sim.deformables import polyline_distance

    config = load_config().with_images(96, 72, shadow_size=0)
    sim = RopePushSim(config)
    rope = sim.reset(np.random.default_rng(3))
    push = plan_push(np.random.default_rng(0), rope, config)
    frames, truth, due = [], [], [sim.arm.time]

    def capture(t, q):
        if t >= due[0] - 1e-9:
            record = sim.snapshot()
            frames.append(record.frames)
            truth.append(record.rope_vertices)
            due[0] += 0.1

    capture(sim.arm.time, None)
    sim.move_tip(push.start + [0.0, 0.0, 0.06], 0.12, capture, extra=1.0)
    sim.close()
    tracker = GaussianTracker(TrackingConfig(max_gaussians=150, init_iterations=10, iterations=5, warm_start_velocity=0.5))
    tracker.initialise(frames[0], sim.calibrations)
    medians = [float(np.median(polyline_distance(tracker.track(f).means, v))) for f, v in zip(frames[1:], truth[1:])]
    assert max(medians) < 0.008, f"cloud medians (mm): {np.round(np.array(medians) * 1e3, 1)}"
