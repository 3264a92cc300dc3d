"""A LeRobot v3.0 export (robot_dyn.recording.lerobot_export) as training windows of camera frames.

The whole dataset is held in memory as uint8 at `image_size` x `image_size` px (demonstrations of a
few hundred episodes at 64-96 px fit in a few GB); the videos are decoded once, with imageio's
ffmpeg (what wrote them). A window is `window` consecutive frames of one episode, every camera;
batch() gives them as float RGB in [0, 1], (B, V, T, 3, S, S), with the states and actions of the
same frames. A malformed export raises ValueError naming the file and what is wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DemoFrames:
    cameras: tuple  # camera names, the order of V
    images: dict  # episode index -> (V, T, S, S, 3) uint8
    state: dict  # episode index -> (T, n) float32, rad
    action: dict  # episode index -> (T, 6) float32, the unitless twist
    fps: float
    image_size: int  # px, the frames' side
    joint_names: tuple = ()  # the state's order
    tasks: tuple = ()  # the export's task names
    robot: str | None = None  # the export's robot_type
    camera_size: tuple = ()  # (width, height) px of the recorded images, before resizing

    @classmethod
    def load(cls, root: Path, cameras=None, image_size: int = 64) -> "DemoFrames":
        """cameras: names to use (default: every camera of the export, sorted)."""
        import cv2
        import imageio.v3 as iio

        from robot_dyn.recording.lerobot_export import VIDEO_PATH, read_lerobot

        root = Path(root)
        info_path = root / "meta/info.json"
        try:
            info = json.loads(info_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{info_path}: not a LeRobot export's info ({exc})") from None
        available = sorted(k.removeprefix("observation.images.") for k in info.get("features", {})
                           if k.startswith("observation.images."))
        chosen = tuple(cameras) if cameras else tuple(available)
        unknown = [c for c in chosen if c not in available]
        if not chosen or unknown:
            raise ValueError(f"{info_path}: cameras {list(unknown or chosen)} not in the export (it has {available})")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 px, got {image_size}")
        tables = read_lerobot(root)
        images = {}
        for e, table in tables.items():
            per_camera = []
            for camera in chosen:
                video = root / VIDEO_PATH.format(video_key=f"observation.images.{camera}", chunk_index=e // 1000,
                                                 file_index=e % 1000)
                try:
                    frames = np.stack([cv2.resize(f, (image_size, image_size), interpolation=cv2.INTER_AREA)
                                       for f in iio.imiter(video)])
                except (OSError, ValueError, RuntimeError) as exc:
                    raise ValueError(f"{video}: unreadable video ({exc})") from None
                if len(frames) != len(table["state"]):
                    raise ValueError(f"{video}: {len(frames)} frames for {len(table['state'])} rows of episode {e}")
                per_camera.append(frames)
            images[e] = np.stack(per_camera)
        import pandas as pd

        tasks = tuple(pd.read_parquet(root / "meta/tasks.parquet").index)
        joints = tuple(info["features"].get("observation.state", {}).get("names") or ())
        h, w = info["features"][f"observation.images.{chosen[0]}"]["shape"][:2]
        return cls(chosen, images, {e: t["state"] for e, t in tables.items()},
                   {e: t["action"] for e, t in tables.items()}, float(info["fps"]), int(image_size), joints, tasks,
                   info.get("robot_type"), (int(w), int(h)))

    @property
    def episodes(self) -> list:
        return sorted(self.images)

    def subset(self, episodes) -> "DemoFrames":
        """The same frames restricted to `episodes`."""
        from dataclasses import replace

        keep = [e for e in self.episodes if e in set(episodes)]
        return replace(self, images={e: self.images[e] for e in keep}, state={e: self.state[e] for e in keep},
                       action={e: self.action[e] for e in keep})

    def windows(self, window: int, episodes=None) -> list[tuple[int, int]]:
        """(episode, first frame) of every window of `window` frames in the given episodes (default: all)."""
        return [(e, k) for e in (episodes if episodes is not None else self.episodes)
                for k in range(self.images[e].shape[1] - window + 1)]

    def batch(self, windows, window: int):
        """(frames (B, V, T, 3, S, S) float in [0, 1], state (B, T, n), action (B, T, 6)) as torch tensors."""
        import torch

        frames = np.stack([self.images[e][:, k:k + window] for e, k in windows])
        state = np.stack([self.state[e][k:k + window] for e, k in windows])
        action = np.stack([self.action[e][k:k + window] for e, k in windows])
        x = torch.from_numpy(frames).permute(0, 1, 2, 5, 3, 4).float().div_(255.0)
        return x, torch.from_numpy(state), torch.from_numpy(action)
