"""Load an export with lerobot's own LeRobotDataset and compare it with what was exported.

Runs in an isolated environment with lerobot 0.4.x (it pins an older torch than this project's), so
it imports nothing of robot_dyn: python lerobot_check.py DATASET EXPECTED.npz prints one JSON object.
EXPECTED.npz holds per episode e the arrays state_<e> and action_<e> (float32) that were exported.
Video frames are decoded with PyAV (lerobot's torchcodec needs the system's FFmpeg libraries).
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a complete local dataset needs no Hub; an incomplete one fails fast


def main(root: str, expected_file: str) -> dict:
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    expected = np.load(expected_file)
    dataset = LeRobotDataset("robot_dyn/export", root=root, video_backend="pyav")
    state_error = action_error = 0.0
    frames = 0
    cameras = [k for k in dataset.meta.features if k.startswith("observation.images.")]
    for i in range(len(dataset)):
        item = dataset[i]
        e, k = int(item["episode_index"]), int(item["frame_index"])
        state_error = max(state_error, float(np.abs(item["observation.state"].numpy() - expected[f"state_{e}"][k]).max()))
        action_error = max(action_error, float(np.abs(item["action"].numpy() - expected[f"action_{e}"][k]).max()))
        for key in cameras:
            image = item[key]
            if tuple(image.shape[-2:]) != tuple(dataset.meta.features[key]["shape"][:2]):
                raise ValueError(f"{key}: decoded shape {tuple(image.shape)}")
        frames += 1
    return {"loaded": 1, "episodes": dataset.num_episodes, "frames": frames, "cameras": len(cameras),
            "task": dataset[0]["task"], "max_state_error": state_error, "max_action_error": action_error}


if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1], sys.argv[2])))
    except Exception as exc:  # the report says why it did not load
        print(json.dumps({"loaded": 0, "error": f"{type(exc).__name__}: {exc}"}))
