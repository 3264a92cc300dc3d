"""The simulation graph: node set and parameters from configs/, checked against the schema.

`sim_graph()` is called by launch/sim.launch.py (ROS 2 install) and by `robot-dyn launch
sim` / the main job / the graph tests (plain processes).
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path


from robot_dyn import paths
from robot_dyn.bringup import schema
from robot_dyn.tasks import TASK_NAMES, camera_rig


class ConfigError(ValueError):
    """A malformed or inconsistent config file; the message names the file and the field."""


@dataclass(frozen=True)
class NodeSpec:
    """One node: its ROS name, console-script executable, Python module, parameters and topic remappings
    ((from, to) pairs)."""

    name: str
    executable: str
    module: str
    parameters: dict = field(default_factory=dict)
    remappings: tuple = ()


FR3_EFFORT_LIMIT = [87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0]  # Nm, as urdf/fr3.urdf
ARM_STATES = "/robot_dyn/joint_states"  # on hardware: the arm's states under the URDF's names (the adapter's output)


def franka_deployment() -> dict:
    """The parameters and remappings of robot_dyn's nodes on an FR3, in one place: the hardware launch file
    (hardware/franka/franka_impedance.launch.py) and the rehearsal against MuJoCo (rehearsal_graph) use
    them. {'hardware_adapter': params, 'controller': params, 'controller_remappings': pairs}."""
    from robot_dyn import hardware_bridge as bridge

    adapter = {"target": "franka", "input_topic": "/impedance_reference", "output_topic": bridge.FRANKA_COMMAND_TOPIC,
               "robot": "fr3", "effort_limit": FR3_EFFORT_LIMIT, "horizon_s": 0.02, "extrapolate": True,
               "include_effort": True, "state_input_topic": bridge.FRANKA_STATE_TOPIC, "state_output_topic": ARM_STATES}
    # The FR3 compensates gravity: tau_ff must exclude it. The adapter forwards a reference as it comes:
    # each state is answered for its own time (no lead).
    controller = {"robot_compensates_gravity": True, "robot": "fr3", "reference_lead_ticks": 0}
    return {"hardware_adapter": adapter, "controller": controller,
            "controller_remappings": (("/joint_states", ARM_STATES),)}


def rehearsal_graph(target: str = "franka", overrides: dict | None = None, config_dir: Path | None = None) -> list[NodeSpec]:
    """The hardware graph (controller + hardware_adapter, as franka_deployment() gives them) against the sim
    node emulating the vendor's controller (sim parameter hardware_emulation), in real time."""
    if target != "franka":
        raise ConfigError(f"hardware emulation: '{target}' is not available: only 'franka' (the KUKA path needs "
                          "lbr_fri_idl's LBRTorqueCommand, which no package registry here has)")
    config_dir = Path(config_dir) if config_dir else paths.config_path("")
    deployment = franka_deployment()
    sim = load_node_parameters(config_dir / "sim.yaml", "sim")
    sim.update(robot="fr3", mode="realtime", hardware_emulation="franka", use_sim_time=False)
    controller = load_node_parameters(config_dir / "controller.yaml", "controller")
    controller.update(deployment["controller"], use_sim_time=True)
    adapter = dict(deployment["hardware_adapter"], use_sim_time=True)
    nodes = {"sim": sim, "controller": controller, "hardware_adapter": adapter}
    for node, params in (overrides or {}).items():
        if node not in nodes:
            raise ConfigError(f"overrides: unknown node '{node}' ({', '.join(nodes)})")
        nodes[node].update(check_parameters(f"overrides: {node}", node, params))
    controller["rate_hz"] = sim.get("state_rate_hz", schema.SIM["state_rate_hz"][0])
    controller["lockstep"] = False
    sim["reference_lead_ticks"] = controller["reference_lead_ticks"]
    return [
        NodeSpec("sim", "sim", "robot_dyn.nodes.sim_node", sim),
        NodeSpec("hardware_adapter", "hardware_adapter", "robot_dyn.nodes.hardware_adapter_node", adapter),
        NodeSpec("controller", "controller", "robot_dyn.nodes.controller_node", controller,
                 deployment["controller_remappings"]),
    ]


def _check_value(where: str, name: str, value, default):
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (int, str)):
        ok = isinstance(value, type(default)) and not isinstance(value, bool)
    else:  # list of numbers
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        value = [float(v) for v in value] if ok else value
    if not ok:
        kind = "a list of numbers" if isinstance(default, list) else type(default).__name__
        raise ConfigError(f"{where}: parameter '{name}' must be {kind}, got {value!r}")
    return value


def load_node_parameters(path: Path, node: str) -> dict:
    """The `<node>: ros__parameters:` section of a YAML file, every key checked against the schema."""
    section = paths.read_yaml_mapping(path, ConfigError).get(node)
    if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
        raise ConfigError(f"{path}: expected '{node}: ros__parameters: {{...}}'")
    return check_parameters(f"{path}: {node}", node, section["ros__parameters"])


def check_parameters(where: str, node: str, params: dict) -> dict:
    known = schema.NODES[node]
    out = {}
    for name, value in params.items():
        if name == "use_sim_time":
            out[name] = _check_value(where, name, value, True)
            continue
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            raise ConfigError(f"{where}: unknown parameter '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        out[name] = _check_value(where, name, value, known[name][0])
    return out


def sim_graph(robot: str = "panda", backend: str | None = None, mode: str | None = None, effects: str | None = None,
              overrides: dict | None = None, config_dir: Path | None = None, perception: bool = False,
              teleop: str | None = None, recorder: bool = False, task: str | None = None,
              policy: str | None = None, search: str | None = None, search_model: str | None = None,
              dynamics_model: str | None = None) -> list[NodeSpec]:
    """sim + controller, sharing robot and gravity handling; overrides: {node: {param: value}}.

    backend, mode and effects left as None keep the values of configs/sim.yaml.
    perception: the rope scene with its camera rig in the sim node, and the perception node
    (configs/perception_node.yaml); off by default, so the arm-only graph renders nothing.
    teleop: a device name adds the teleop node (configs/teleop.yaml) with that device.
    recorder: adds the recorder node (configs/recorder.yaml), recording the sim's cameras when they are on.
    task: an imitation task's scene (robot_dyn/tasks) in the sim, its tool on the controller's flange;
    with teleop 'expert' its scripted expert drives the arm.
    policy: a policy folder (robot-dyn train policy) drives the arm instead of a teleop device (the policy
    node, configs' defaults of schema.POLICY): the sim's cameras on, at the image size and without the
    shadows of the demonstrations it learned from.
    search: a search strategy (robot_dyn.search) for the insert scene: the search node, whose /search/start
    runs one (search_model: a model folder, robot-dyn train search, for the learned strategies).
    dynamics_model: a particle dynamics model folder (robot-dyn train dynamics): the dynamics_planner node,
    whose /dynamics_planner/start pushes the rope toward a target shape; needs perception.
    """
    config_dir = Path(config_dir) if config_dir else paths.config_path("")
    sim = load_node_parameters(config_dir / "sim.yaml", "sim")
    controller = load_node_parameters(config_dir / "controller.yaml", "controller")
    chosen = {"backend": backend, "mode": mode, "effects_profile": effects}
    sim.update({k: v for k, v in chosen.items() if v is not None}, robot=robot, use_sim_time=False)
    if task:
        sim["scene"] = task
    controller.update(robot=robot, use_sim_time=True)
    nodes = {"sim": sim, "controller": controller}
    if perception:
        sim.update(scene="rope", cameras=True)
        nodes["perception"] = load_node_parameters(config_dir / "perception_node.yaml", "perception")
        nodes["perception"].update(robot=robot, use_sim_time=True)
    if teleop:
        nodes["teleop"] = load_node_parameters(config_dir / "teleop.yaml", "teleop")
        nodes["teleop"].update(robot=robot, device=teleop, use_sim_time=True)
    if policy:
        if teleop:
            raise ConfigError("policy and teleop both command the arm: choose one")
        meta = json.loads((Path(policy) / "policy.json").read_text()) if (Path(policy) / "policy.json").is_file() else {}
        width, height = meta.get("camera_size") or (schema.SIM["camera_width"][0], schema.SIM["camera_height"][0])
        sim.update(cameras=True, camera_width=int(width), camera_height=int(height), camera_shadow_size=0)
        nodes["policy"] = {**schema.defaults(schema.POLICY), "checkpoint": str(policy), "robot": robot, "use_sim_time": True}
    if search:
        if teleop or policy:
            raise ConfigError("search and teleop or policy all command the arm: choose one")
        if sim.get("scene") != "insert":
            raise ConfigError(f"search: needs the insert scene (task 'insert'), not '{sim.get('scene', '')}'")
        nodes["search"] = {**schema.defaults(schema.SEARCH), "robot": robot, "strategy": search,
                           "model": str(search_model or ""), "use_sim_time": True}
    if dynamics_model:
        if not perception:
            raise ConfigError("dynamics_model: the dynamics planner plans on the perception node's particles: "
                              "turn perception on")
        if teleop or policy or search:
            raise ConfigError("the dynamics planner and teleop, policy or search all command the arm: choose one")
        nodes["dynamics_planner"] = {**schema.defaults(schema.DYNAMICS_PLANNER), "robot": robot,
                                     "model": str(dynamics_model), "use_sim_time": True}
    if recorder:
        nodes["recorder"] = load_node_parameters(config_dir / "recorder.yaml", "recorder")
        nodes["recorder"].update(use_sim_time=True)
    for node, params in (overrides or {}).items():
        if node not in nodes:
            raise ConfigError(f"overrides: unknown node '{node}' ({', '.join(nodes)})")
        nodes[node].update(check_parameters(f"overrides: {node}", node, params))
    # One owner for facts both nodes must agree on: the simulated robot decides.
    controller["robot_compensates_gravity"] = sim.get("robot_compensates_gravity", schema.SIM["robot_compensates_gravity"][0])
    controller["rate_hz"] = sim.get("state_rate_hz", schema.SIM["state_rate_hz"][0])
    controller["lockstep"] = sim.get("mode", schema.SIM["mode"][0]) == "lockstep"
    scene = sim.get("scene", schema.SIM["scene"][0])
    if scene in TASK_NAMES:  # the flange carries the task's tool: the controller's model must know it
        controller["tool"], controller["tool_config"] = scene, sim.get("task_config", "")
        if teleop:
            nodes["teleop"]["task"], nodes["teleop"]["task_config"] = scene, sim.get("task_config", "")
        if search:
            nodes["search"]["task_config"] = sim.get("task_config", "")
    for scale in ("twist_linear_scale", "twist_angular_scale"):  # the scripted operator aims at the speeds it gets
        if teleop:
            nodes["teleop"][scale] = controller.get(scale, schema.CONTROLLER[scale][0])
    sim["reference_lead_ticks"] = controller.get("reference_lead_ticks", schema.CONTROLLER["reference_lead_ticks"][0])
    guard = sim.get("max_position_error_rad", schema.SIM["max_position_error_rad"][0])
    pause = controller.get("pause_lag_rad", schema.CONTROLLER["pause_lag_rad"][0])
    hold = controller.get("hold_lag_rad", schema.CONTROLLER["hold_lag_rad"][0])
    if not pause < guard or not hold < guard:
        raise ConfigError(f"controller: 'pause_lag_rad' ({pause}) and 'hold_lag_rad' ({hold}) must be less than the "
                          f"sim's 'max_position_error_rad' ({guard}): a motion must pause, and its reference stay, "
                          "before the robot layer refuses it")
    specs = [
        NodeSpec("sim", "sim", "robot_dyn.nodes.sim_node", sim),
        NodeSpec("controller", "controller", "robot_dyn.nodes.controller_node", controller),
    ]
    if perception:
        _share_scene(sim, nodes["perception"])
        specs.append(NodeSpec("perception", "perception", "robot_dyn.nodes.perception_node", nodes["perception"]))
    if teleop:
        specs.append(NodeSpec("teleop", "teleop", "robot_dyn.nodes.teleop_node", nodes["teleop"]))
    if policy:
        rig = camera_rig(_scene_config(sim), scene, sim.get("task_config") or None)
        nodes["policy"].update(task=scene if scene in TASK_NAMES else "", cameras=",".join(rig.names))
        specs.append(NodeSpec("policy", "policy", "robot_dyn.nodes.policy_node", nodes["policy"]))
    if search:
        specs.append(NodeSpec("search", "search", "robot_dyn.nodes.search_node", nodes["search"]))
    if dynamics_model:
        planner = nodes["dynamics_planner"]
        planner["scene_config"] = sim.get("scene_config", "")
        planner["world_frame"] = sim.get("world_frame", schema.SIM["world_frame"][0])
        specs.append(NodeSpec("dynamics_planner", "dynamics_planner", "robot_dyn.nodes.dynamics_planner_node", planner))
    if recorder:
        if sim.get("cameras") and not nodes["recorder"].get("cameras"):
            rig = camera_rig(_scene_config(sim), sim.get("scene", schema.SIM["scene"][0]), sim.get("task_config") or None)
            nodes["recorder"]["cameras"] = ",".join(rig.names)
        facts = {"robot": robot, "scene": sim.get("scene", ""), "task_seed": sim.get("task_seed", -1),
                 "mode": sim.get("mode", schema.SIM["mode"][0])}
        nodes["recorder"]["graph_facts"] = ",".join(f"{k}={v}" for k, v in facts.items())
        specs.append(NodeSpec("recorder", "recorder", "robot_dyn.nodes.recorder_node", nodes["recorder"]))
    return specs


def _share_scene(sim: dict, perception: dict) -> None:
    """The sim's scene config decides what the perception node must agree on: the cameras'
    names, the world frame and the tool (pusher) offset."""
    scene = _scene_config(sim)
    perception["cameras"] = ",".join(scene.cameras.build().names)
    perception["world_frame"] = sim.get("world_frame", schema.SIM["world_frame"][0])
    perception["tool_offset"] = float(scene.pusher.length)


def _scene_config(sim: dict):
    """The sim's scene config (configs/perception.yaml unless scene_config names another)."""
    from robot_dyn.perception.episodes import load_config

    try:
        return load_config(sim.get("scene_config") or None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
