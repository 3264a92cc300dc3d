"""Node configs: the graph's parameters come from configs/ and are checked against the schema."""
import ast
from pathlib import Path

import pytest

from robot_dyn import paths
from robot_dyn.bringup import schema
from robot_dyn.bringup.graph import ConfigError, load_node_parameters, sim_graph


def test_shipped_configs_load_and_agree_between_nodes():
    nodes = {n.name: n for n in sim_graph("iiwa14", mode="realtime")}
    sim, controller = nodes["sim"].parameters, nodes["controller"].parameters
    assert sim["robot"] == controller["robot"] == "iiwa14"
    assert sim["mode"] == "realtime" and sim["use_sim_time"] is False and controller["use_sim_time"] is True
    assert controller["robot_compensates_gravity"] == sim["robot_compensates_gravity"]
    assert controller["rate_hz"] == sim["state_rate_hz"]
    assert set(sim) - {"use_sim_time"} <= set(schema.SIM) and set(controller) - {"use_sim_time"} <= set(schema.CONTROLLER)


def test_gravity_handling_has_one_owner():
    nodes = {n.name: n for n in sim_graph(overrides={"sim": {"robot_compensates_gravity": False}})}
    assert nodes["controller"].parameters["robot_compensates_gravity"] is False


def _write(tmp_path, text):
    for name in ("sim.yaml", "controller.yaml"):
        (tmp_path / name).write_text(paths.config_path(name).read_text())
    (tmp_path / "sim.yaml").write_text(text)
    return tmp_path


def test_misspelt_parameter_is_named_with_a_suggestion(tmp_path):
    _write(tmp_path, "sim:\n  ros__parameters:\n    stifness: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"sim.yaml: sim: unknown parameter 'stifness' \(did you mean 'stiffness'\?\)"):
        sim_graph(config_dir=tmp_path)


def test_wrong_type_is_named(tmp_path):
    _write(tmp_path, "sim:\n  ros__parameters:\n    physics_rate_hz: fast\n")
    with pytest.raises(ConfigError, match=r"parameter 'physics_rate_hz' must be float, got 'fast'"):
        sim_graph(config_dir=tmp_path)


def test_malformed_yaml_and_missing_section_are_reported(tmp_path):
    _write(tmp_path, "sim: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        sim_graph(config_dir=tmp_path)
    (tmp_path / "sim.yaml").write_text("sim:\n  ros__parameters: {}\n")
    with pytest.raises(ConfigError, match=r"expected 'controller: ros__parameters"):
        load_node_parameters(tmp_path / "sim.yaml", "controller")


def test_bad_override_is_rejected():
    with pytest.raises(ConfigError, match="overrides: unknown node 'planner'"):
        sim_graph(overrides={"planner": {}})
    with pytest.raises(ConfigError, match="must be bool"):
        sim_graph(overrides={"sim": {"robot_compensates_gravity": "yes"}})


def test_launch_file_takes_its_nodes_from_sim_graph():
    """launch/sim.launch.py cannot run here (no launch_ros on PyPI); check it builds on sim_graph."""
    source = (Path(paths.share_dir()) / "launch" / "sim.launch.py").read_text()
    tree = ast.parse(source)
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "sim_graph" in calls and "Node" in calls
