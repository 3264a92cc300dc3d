"""Particle-trajectory datasets for learning how the rope moves under the pusher.

After Zhang, Zhang, Li (CoRL 2024): the object is a set of N control particles, the tool one more
particle, and a dynamics model maps the particles' recent history and the tool's next move to the
particles' next positions. A dataset holds, per push, those trajectories at a fixed time step and
the ground truth the predictions are scored against.

Step: one frame of the recordings, 1 / fps s of sim time (0.1 s at the default 10 fps). At the
default push speed (0.12 m/s) the tool moves up to 12 mm per step while pushing -- close to the
paper's 1 cm of tool travel per step -- and less while it is lowered, lifted or at rest.

Sources of the particles:
- "truth": the rope's simulation vertices (all of them, or `n_particles` of them picked by
  farthest-point sampling on the first frame). Training on these is the ablation.
- "tracked": the control particles of a 3D Gaussian track (robot-dyn track's track.npz: the
  tracked Gaussian centres at the particle indices). Training on these and scoring against the
  ground truth is the honest setting.
The tool particle is the pusher tip's centre from forward kinematics of the measured joints.

Format "robot_dyn.particle_dynamics", version 1: a folder with meta.json and one episode_NNN.npz
per push. meta.json: format, version, source, step_s, robot, n_particles, object (rope: n_vertices,
spacing, radius), table_height (m), tool_radius (m, the tip sphere), episodes ([{file, n_frames,
seed}]). Each npz (numpy, no pickled objects; T frames; world frame, z up, m): ``particles``
(T, N, 3), ``tool`` (T, 3), ``truth`` (T, V, 3) the rope's vertices, ``time`` (T,) s, the arm's
``joint_positions`` (T, n) rad and ``joint_velocities`` (T, n) rad/s (what the MuJoCo oracle replays).
``load_dataset`` checks all of it and raises ValueError naming the file and field.
"""
from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "robot_dyn.particle_dynamics"
VERSION = 1
SOURCES = ("truth", "tracked")
ARRAYS = ("particles", "tool", "truth", "time", "joint_positions", "joint_velocities")


@dataclass
class ParticleEpisode:
    """One push: particles (T, N, 3) m, tool (T, 3) m, truth (T, V, 3) m, time (T,) s, and the arm's
    measured joint_positions (T, n) rad and joint_velocities (T, n) rad/s; world frame."""

    particles: np.ndarray
    tool: np.ndarray
    truth: np.ndarray
    time: np.ndarray
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    name: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.time)


@dataclass
class ParticleDataset:
    """Episodes sharing a source, a step and a particle count; `meta` as stored in meta.json."""

    episodes: list[ParticleEpisode]
    meta: dict

    @property
    def step_s(self) -> float:
        return float(self.meta["step_s"])

    @property
    def n_particles(self) -> int:
        return int(self.meta["n_particles"])

    def split(self, validation: int) -> tuple["ParticleDataset", "ParticleDataset"]:
        """(training, validation): the last `validation` episodes held out, the others for training."""
        if not 0 < validation < len(self.episodes):
            raise ValueError(f"validation: need 1..{len(self.episodes) - 1} of {len(self.episodes)} episodes, "
                             f"got {validation}")
        cut = len(self.episodes) - validation
        return ParticleDataset(self.episodes[:cut], self.meta), ParticleDataset(self.episodes[cut:], self.meta)


# --- making episodes -----------------------------------------------------------

def particle_subset(points: np.ndarray, n_particles: int | None) -> np.ndarray:
    """Indices (N,) of the points (T, M, 3) kept as particles: all of them (n_particles None or >= M), else
    n_particles by farthest-point sampling of the first frame (evenly spread over the object)."""
    from robot_dyn.perception.particles import sample_particles

    count = points.shape[1]
    if n_particles is None or n_particles >= count:
        return np.arange(count)
    return np.sort(sample_particles(points[0], int(n_particles), seed=0))


def simulate_push(seed, config=None, n_particles: int | None = None, sim=None) -> ParticleEpisode:
    """One scripted push (robot_dyn.perception.episodes' scene and push, no cameras), ground-truth
    particles. `sim` reuses a RopePushSim(render=False) across pushes."""
    from robot_dyn.perception.episodes import RopePushSim, plan_push

    sim = sim or RopePushSim(config, render=False)
    rng = np.random.default_rng(seed)
    vertices = sim.reset(rng)
    push = plan_push(rng, vertices, sim.config)
    records = []
    sim.run_push(push, records.append)
    truth = np.array([r.rope_vertices for r in records])
    return ParticleEpisode(truth[:, particle_subset(truth, n_particles)], np.array([r.pusher_tip for r in records]),
                           truth, np.array([r.time for r in records]), np.array([r.q for r in records]),
                           np.array([r.qd for r in records]))


def _simulate_chunk(job: tuple) -> list[ParticleEpisode]:
    config, n_particles, seeds = job
    from robot_dyn.perception.episodes import RopePushSim

    sim = RopePushSim(config, render=False)
    return [simulate_push(seed, n_particles=n_particles, sim=sim) for seed in seeds]


def any_direction(config):
    """The EpisodeConfig `config` with pushes at any angle to the rope and anywhere along it, ends included
    (push.angle_jitter_deg 90 around a random side's normal, contact_fraction [0, 1]): what a model needs to
    have seen for a planner that aims pushes anywhere. Bench planning's GNN trained on such pushes reached
    0.58 success at 10 mm; on the config's own (within 30 deg of the normal, away from the ends), 0.28."""
    from dataclasses import replace

    return replace(config, push=replace(config.push, angle_jitter_deg=90.0, contact_fraction=(0.0, 1.0)))


def record_pushes(out: str | Path, n: int, seed: int = 0, config=None, n_particles: int | None = None,
                  workers: int = 1, progress=None) -> ParticleDataset:
    """Simulate n pushes (push i uses the seed (seed, i)) and write them as a "truth" dataset to `out`.
    config: an EpisodeConfig, a YAML path, or None for configs/perception.yaml."""
    from robot_dyn.parallel import spawn_map
    from robot_dyn.perception.episodes import EpisodeConfig, load_config

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"'n' (pushes) must be a positive integer, got {n!r}")
    config = config if isinstance(config, EpisodeConfig) else load_config(config)
    seeds = [(seed, i) for i in range(n)]
    per_chunk = max(1, math.ceil(n / (4 * max(workers, 1))))
    jobs = [(config, n_particles, seeds[i:i + per_chunk]) for i in range(0, n, per_chunk)]
    chunks = spawn_map(_simulate_chunk, jobs, workers, chunk=1,
                       progress=(lambda done, total: progress(min(done * per_chunk, n), n)) if progress else None)
    episodes = [episode for chunk in chunks for episode in chunk]
    scene = {"robot": config.robot, "object": {"type": "rope", "n_vertices": config.rope.n_vertices,
                                               "spacing": config.rope.spacing, "radius": config.rope.radius},
             "table_height": config.table.height, "tool_radius": config.pusher.tip_radius}
    return write_dataset(out, episodes, "truth", 1.0 / config.fps, scene, seeds)


def tracked_episode(episode, track_dir: str | Path, n_particles: int | None = None) -> ParticleEpisode:
    """The control particles of a track (robot-dyn track's run folder: track.npz with 'means' (T, G, 3),
    'particle_indices' (N,) and 'frames' (T,), the episode's frames tracked) of a loaded recorded episode
    (robot_dyn.perception.episodes.Episode), with its ground truth; n_particles of them (farthest-point
    sampled) when given."""
    file = Path(track_dir) / "track.npz"
    arrays = read_npz(file, ("means", "particle_indices", "frames"))
    means, indices, frames = arrays["means"], arrays["particle_indices"], arrays["frames"]
    if means.ndim != 3 or means.shape[2] != 3 or not np.all(np.isfinite(means)):
        raise ValueError(f"{file}: 'means' must be finite (T, G, 3), got {means.shape}")
    if indices.ndim != 1 or not len(indices) or indices.min() < 0 or indices.max() >= means.shape[1]:
        raise ValueError(f"{file}: 'particle_indices' must index the {means.shape[1]} Gaussians")
    if (frames.shape != (len(means),) or len(frames) < 2 or np.any(np.diff(frames) != 1) or frames[0] < 0
            or frames[-1] >= episode.n_frames):
        raise ValueError(f"{file}: 'frames' must be consecutive frames of the episode {episode.path} "
                         f"(0..{episode.n_frames - 1}), one per tracked frame")
    particles = means[:, indices]
    particles = particles[:, particle_subset(particles, n_particles)]
    kept = slice(int(frames[0]), int(frames[-1]) + 1)
    return ParticleEpisode(particles, episode.pusher_tip[kept], episode.rope_vertices[kept], episode.time[kept],
                           episode.joint_positions[kept], episode.joint_velocities[kept], episode.path.name)


def _recorded_scene(episode) -> dict:
    """What a dataset's meta.json says of the scene, and the frame rate, from a recorded episode's meta."""
    meta = episode.meta
    try:
        rope = {k: meta["object"].get(k) for k in ("type", "n_vertices", "spacing", "radius")}
        return {"robot": meta["robot"], "object": rope,
                "table_height": float(meta["table"]["height"]), "tool_radius": float(meta["pusher"]["tip_radius"]),
                "fps": episode.fps}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{episode.path / 'meta.json'}: no table height or pusher tip radius ({exc!r})") from None


def import_tracks(out: str | Path, episode_dirs: list, track_dirs: list, n_particles: int | None = None) -> ParticleDataset:
    """A "tracked" dataset from recorded episodes and their tracks (pairs in the same order), with n_particles
    of each track's control particles (farthest-point sampled; None: all). The scene (robot, rope, table,
    tool) is the episodes' own, which must be one."""
    from robot_dyn.perception.episodes import load_episode

    if len(episode_dirs) != len(track_dirs) or not episode_dirs:
        raise ValueError(f"need one track per episode, got {len(episode_dirs)} episodes and {len(track_dirs)} tracks")
    recorded = [load_episode(e, images=False) for e in episode_dirs]
    scenes = [_recorded_scene(r) for r in recorded]
    differ = [str(r.path) for r, scene in zip(recorded, scenes) if scene != scenes[0]]
    if differ:
        raise ValueError(f"episodes {differ} were recorded in another scene or at another rate than {recorded[0].path}")
    episodes = [tracked_episode(r, t, n_particles) for r, t in zip(recorded, track_dirs)]
    counts = {e.particles.shape[1] for e in episodes}
    if len(counts) != 1:
        raise ValueError(f"the tracks have different particle counts {sorted(counts)}: track them with one config")
    seeds = [r.meta["push"].get("seed") for r in recorded]
    step_s = 1.0 / scenes[0].pop("fps")
    return write_dataset(out, episodes, "tracked", step_s, scenes[0], seeds)


# --- the format ----------------------------------------------------------------

def write_dataset(out: str | Path, episodes: list[ParticleEpisode], source: str, step_s: float, scene: dict,
                  seeds: list) -> ParticleDataset:
    """Write episodes as a dataset folder (must not hold one yet); scene: meta.json's robot, object,
    table_height and tool_radius. Returns the dataset as loaded."""
    out = Path(out)
    if (out / "meta.json").exists():
        raise ValueError(f"{out}: already holds a dataset (meta.json); choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    listing = []
    for i, (episode, seed) in enumerate(zip(episodes, seeds)):
        name = f"episode_{i:03d}.npz"
        np.savez(out / name, **{k: getattr(episode, k) for k in ARRAYS})
        listing.append({"file": name, "n_frames": episode.n_frames,
                        "seed": list(seed) if isinstance(seed, tuple) else seed})
    meta = {"format": FORMAT, "version": VERSION, "source": source, "step_s": step_s, **scene,
            "n_particles": int(episodes[0].particles.shape[1]), "episodes": listing}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return load_dataset(out)


def read_npz(file: Path, keys) -> dict:
    if not file.is_file():
        raise ValueError(f"{file}: missing")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in keys if k in npz.files}
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ValueError(f"{file}: unreadable or not a numpy .npz archive ({exc})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"{file}: missing array(s) {missing}")
    return arrays


def load_dataset(path: str | Path) -> ParticleDataset:
    """Read and check a dataset folder; ValueError names the file and the field that is wrong."""
    path = Path(path)
    file = path / "meta.json"
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise ValueError(f"{file}: missing (not a particle dataset: make one with 'robot-dyn record pushes')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file}: unreadable or malformed JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file}: expected a JSON object")
    for key in ("format", "version", "source", "step_s", "robot", "n_particles", "table_height", "tool_radius",
                "episodes"):
        if key not in meta:
            raise ValueError(f"{file}: missing field '{key}'")
    if meta["format"] != FORMAT or meta["version"] != VERSION:
        raise ValueError(f"{file}: 'format'/'version' are {meta['format']!r}/{meta['version']!r}, "
                         f"expected {FORMAT!r}/{VERSION}")
    if meta["source"] not in SOURCES:
        raise ValueError(f"{file}: 'source' must be one of {list(SOURCES)}, got {meta['source']!r}")
    for key in ("step_s", "tool_radius"):
        if not isinstance(meta[key], (int, float)) or not meta[key] > 0:
            raise ValueError(f"{file}: '{key}' must be a positive number, got {meta[key]!r}")
    if not isinstance(meta["episodes"], list) or not meta["episodes"]:
        raise ValueError(f"{file}: 'episodes' must be a non-empty list")
    episodes = []
    for i, entry in enumerate(meta["episodes"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or "/" in entry["file"]:
            raise ValueError(f"{file}: 'episodes[{i}].file' must be a file name in the dataset folder")
        arrays = read_npz(path / entry["file"], ARRAYS)
        episodes.append(_checked_episode(path / entry["file"], arrays, meta["n_particles"], entry))
    return ParticleDataset(episodes, meta)


def _checked_episode(file: Path, a: dict, n_particles: int, entry: dict) -> ParticleEpisode:
    frames = len(a["time"])
    shapes = {"particles": (frames, n_particles, 3), "tool": (frames, 3), "time": (frames,)}
    for key, shape in shapes.items():
        if a[key].shape != shape:
            raise ValueError(f"{file}: '{key}' has shape {a[key].shape}, expected {shape}")
    if a["truth"].ndim != 3 or a["truth"].shape[0] != frames or a["truth"].shape[2] != 3:
        raise ValueError(f"{file}: 'truth' must have shape ({frames}, V, 3), got {a['truth'].shape}")
    for key in ("joint_positions", "joint_velocities"):
        if a[key].ndim != 2 or a[key].shape != (frames, a["joint_positions"].shape[-1]):
            raise ValueError(f"{file}: '{key}' must have shape ({frames}, joints), got {a[key].shape}")
    if frames != entry.get("n_frames") or frames < 2:
        raise ValueError(f"{file}: {frames} frames, meta.json says {entry.get('n_frames')!r} (need >= 2)")
    for key in ARRAYS:
        if not np.issubdtype(a[key].dtype, np.floating) or not np.all(np.isfinite(a[key])):
            raise ValueError(f"{file}: '{key}' must be finite floating-point numbers")
    if not np.all(np.diff(a["time"]) > 0):
        raise ValueError(f"{file}: 'time' must increase")
    return ParticleEpisode(*(a[k].astype(np.float64) for k in ARRAYS), name=file.stem)
