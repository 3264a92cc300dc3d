"""A search through the graph: the search node, started by /search/start, drives the peg over DDS through
the controller (twist and wrench commands) until it drops into an offset hole, and says so on
/search/events. The spiral needs no model; the learned strategies run the same node with one
(robot-dyn bench search measures them, in process)."""
import numpy as np
import pytest

from robot_dyn.bringup.graph import ConfigError, sim_graph
from robot_dyn.bringup.schema import SEARCH
from robot_dyn.jobs.session import SimSession
from robot_dyn.tasks import load_task


def test_a_spiral_search_in_the_graph_finds_the_hole_and_presses_the_peg_home(tmp_path):
    task = load_task("insert")
    # a hole 4-5 mm off the nominal one along x or y: out of the chamfer's reach (3.25 mm a side) where the peg
    # lands, so the spiral needs turns to reach it
    seed = next(s for s in range(1, 200) if 0.004 < np.max(np.abs(task.episode(s).hole - task.config.nominal_hole)) < 0.005)
    with SimSession("panda", tmp_path, mode="realtime", task="insert", search="spiral",
                    overrides={"sim": {"task_seed": seed}}) as s:
        c = s.client
        c.wait_for_event(c.search_events, "search ready", wall_timeout=60)
        ok, message = c.search("start")
        assert ok, message
        assert c.search("start") == (False, "a search is running (/search/stop ends it)")
        found = c.wait_for_event(c.search_events, "found", wall_timeout=120)
        c.wait_for_event(c.search_events, "done", wall_timeout=60)
        s.wait(0.3)
        stats = s.node_stats()
        events = list(c.search_events)
        controller_events = list(c.controller_events)
    touched = [e for e in events if e.startswith("touched the fixture")]
    assert touched and events.index(touched[0]) < events.index(found), events
    searched = float(found.split(" after ")[1].split(" s ")[0])
    assert 1.0 < searched < 60.0, found  # it had to search (the hole is off), and found it within the budget
    assert c.task_success and c.task_success[-1], c.task_scores[-5:]
    # the spiral's 7 N went to the controller as wrench commands (50 Hz), each applied unless it came stale: a
    # busy core can hold one back past its 0.1 s of validity, and the controller refuses it (then the force
    # lapses, as designed); none is refused for anything else, and the stale are rare
    refused = [e for e in controller_events if e.startswith("wrench command rejected")]
    assert all("header.stamp: the command is" in e for e in refused), refused
    assert stats["controller"]["wrench_rejections"] <= 0.05 * SEARCH["rate_hz"][0] * searched, refused


def test_a_search_needs_the_insert_scene_and_a_model_for_the_learned_strategies(tmp_path):
    with pytest.raises(ConfigError, match="needs the insert scene"):
        sim_graph("panda", task="pusht", search="spiral")
    with pytest.raises(ConfigError, match="choose one"):
        sim_graph("panda", task="insert", search="spiral", teleop="expert")
    from robot_dyn.bringup.processes import GraphProcesses

    nodes = [n for n in sim_graph("panda", mode="realtime", task="insert", search="ergodic") if n.name == "search"]
    with GraphProcesses(nodes, tmp_path) as graph:
        assert graph.procs["search"].wait(60) != 0
        log = graph.log_tail("search")
    assert "strategy 'ergodic' learns from demonstrations: set parameter 'model'" in log, log
