"""Expert demonstrations through the real path: one real-time graph per episode (the task's scene with its
seed, the controller, the teleop node's expert device, the recorder), recorded as a person's would be."""
from __future__ import annotations

import time
from pathlib import Path

from rosbags.rosbag2 import Reader

from robot_dyn.jobs.session import SimSession
from robot_dyn.recording.episode_bag import TYPESTORE

CAMERAS = {"cameras": True, "camera_width": 160, "camera_height": 120, "camera_shadow_size": 0}


def record_expert_demo(task: str, seed: int, out: Path, workdir: Path, cameras: bool = True, log=lambda *_: None) -> dict:
    """Episode `seed` of `task` solved by its expert and recorded into `out`: {'path', 'success', 'save_s'
    (the /recorder/stop round trip, wall s), 'stats' (the nodes' statistics)}."""
    sim = {"task_seed": seed, **(CAMERAS if cameras else {})}
    overrides = {"sim": sim, "teleop": {"seed": seed}, "recorder": {"out_dir": str(out), "task": task}}
    with SimSession("panda", workdir, mode="realtime", task=task, teleop="expert", recorder=True, overrides=overrides) as s:
        c = s.client
        ok, path = c.recorder("start")
        if not ok:
            raise RuntimeError(f"recorder: {path}")
        c.wait_for_event(c.teleop_events, "expert done", wall_timeout=240)
        s.wait(0.5)
        wall = time.monotonic()
        ok, message = c.recorder("stop")
        save_s = time.monotonic() - wall
        if not ok:
            raise RuntimeError(f"recorder: {message}")
        stats = s.node_stats()
    with Reader(path) as reader:
        success = [TYPESTORE.deserialize_cdr(d, c.msgtype).data for c, _, d in
                   reader.messages(connections=[c for c in reader.connections if c.topic == "/task/success"])]
    result = {"path": path, "success": bool(success and success[-1]), "save_s": save_s, "stats": stats}
    log(f"{task} seed {seed}: {'success' if result['success'] else 'FAILURE'}, saved in {save_s * 1e3:.0f} ms: {path}")
    return result
