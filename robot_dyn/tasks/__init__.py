"""Imitation tasks in the sim: scenes with a tool on the flange, their scores, and scripted experts that
drive the arm through the teleop interface.

load_task(name) gives a task: its `tool` (part of the robot for controller, sim and safety filter
alike, robot_dyn/robots/tools.py), `episode(seed)` (the scene extension for MuJoCo and the score
of a state, the objects an operator sees), `expert(seed)` (the scripted expert), `teleop_rate_hz`
(the expert's command rate) and `object_names` (the objects' planar poses, /task/<name> in the graph).
"""
from __future__ import annotations

from pathlib import Path

TASK_NAMES = ("insert", "pusht")
# the sim's cameras for demonstrations (robot_dyn.jobs.demos) and the policies that learn from them: no shadows
DEMO_CAMERAS = {"cameras": True, "camera_width": 160, "camera_height": 120, "camera_shadow_size": 0}


def load_task(name: str, config: str | Path | None = None):
    """The named task with configs/tasks/<name>.yaml (or `config`); ValueError names the field at fault."""
    if name == "insert":
        from robot_dyn.tasks.insert import InsertTask, load_insert_config

        return InsertTask(load_insert_config(config))
    if name == "pusht":
        from robot_dyn.tasks.pusht import PushTTask, load_pusht_config

        return PushTTask(load_pusht_config(config))
    raise ValueError(f"unknown task '{name}'; known: {list(TASK_NAMES)}")


def camera_rig(scene_config, scene: str, task_config: str | Path | None = None):
    """The sim's camera rig for `scene`: the scene config's cameras (robot_dyn.perception.episodes), and for
    a task a wrist camera looking along its tool (robot_dyn.perception.cameras.wrist_camera)."""
    from robot_dyn.perception.cameras import wrist_camera

    rig = scene_config.cameras.build()
    if scene not in TASK_NAMES:
        return rig
    cameras = scene_config.cameras
    return rig.with_cameras(wrist_camera(load_task(scene, task_config).tool.length, cameras.width, cameras.height_px))


def demo_rig(task_name: str, camera_size: tuple, camera_names=None):
    """The cameras demonstrations of `task_name` are recorded with: the task's rig (camera_rig) at
    camera_size (width, height) px without shadows; camera_names: only these (ValueError names any the
    rig lacks)."""
    from robot_dyn.perception.cameras import CameraRig
    from robot_dyn.perception.episodes import load_config

    rig = camera_rig(load_config().with_images(*camera_size, DEMO_CAMERAS["camera_shadow_size"]), task_name)
    if camera_names is None:
        return rig
    unknown = sorted(set(camera_names) - set(rig.names))
    if unknown:
        raise ValueError(f"cameras {unknown} are not in the '{task_name}' scene's rig {list(rig.names)}")
    return CameraRig(tuple(c for c in rig.cameras if c.name in camera_names), rig.shadow_size)
