"""A trained policy drives the arm through the graph: the policy node takes the sim's camera images and
joint states over DDS and sends teleop commands the controller follows; a policy for another task is
refused at start with the reason. The policy is real but small (two expert demonstrations, a random
encoder, an MLP head trained briefly): this checks the wiring, robot-dyn bench imitation the skill."""
from pathlib import Path

import numpy as np
import pytest

from robot_dyn.bringup.graph import sim_graph
from robot_dyn.bringup.processes import GraphProcesses
from robot_dyn.jobs.session import SimSession


@pytest.fixture(scope="module")
def pusht_policy(tmp_path_factory) -> Path:
    from robot_dyn.imitation.behaviour_cloning import train_policy
    from robot_dyn.imitation.encoders import load_encoder
    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.imitation.policy import PolicyConfig
    from robot_dyn.imitation.pretrain import build_method, pretrain
    from robot_dyn.jobs.demos import record_expert_demo_in_process
    from robot_dyn.recording.lerobot_export import export_lerobot

    root = tmp_path_factory.mktemp("policy")
    demos = [record_expert_demo_in_process("pusht", seed, root / f"demos{seed}", camera_size=(64, 48),
                                           camera_names=("cam0",)) for seed in (1, 2)]
    frames = DemoFrames.load(export_lerobot([d["path"] for d in demos], root / "lerobot", fps=10).out, image_size=32)
    _, method = build_method("random", encoder_width=8)
    pretrain(frames, root / "encoder", method, train=False, log=lambda *_: None)
    encoder, meta = load_encoder(root / "encoder")
    train_policy(frames, encoder, meta, root / "policy", PolicyConfig(head="mlp", steps=50, log_every=50),
                 log=lambda *_: None)
    return root / "policy"


def test_the_policy_node_drives_the_arm_through_the_controller(tmp_path, pusht_policy):
    with SimSession("panda", tmp_path, mode="realtime", task="pusht", policy=str(pusht_policy)) as s:
        c = s.client
        c.wait_for_event(c.policy_events, "policy acting", wall_timeout=60)
        start = len(c.states)
        s.wait(3.0)
        diagnostics = c.next_diagnostics("policy")
        stats = s.node_stats()
        events = list(c.controller_events)
    q = np.array([x[1] for x in c.states[start:]])
    assert np.ptp(q, axis=0).max() > 1e-3  # the arm moved: the policy's commands were followed
    assert any("twist following started" in e for e in events), events
    # a command refused as stale is a loaded machine's late delivery (the controller must refuse it), and rare
    rejected = [e for e in events if "twist command rejected" in e]
    assert all("header.stamp" in e for e in rejected), rejected
    assert stats["controller"]["twist_rejections"] <= 0.02 * int(diagnostics["commands_sent"]), rejected
    assert int(diagnostics["policy_steps"]) >= 15  # 10 Hz decisions over 3 s of sim time, on a loaded machine too
    assert 0 < float(diagnostics["policy_infer_ms_p99"]) < 500


def test_a_policy_for_another_task_is_refused_with_the_reason(tmp_path, pusht_policy):
    nodes = [n for n in sim_graph("panda", mode="realtime", task="insert", policy=str(pusht_policy)) if n.name == "policy"]
    with GraphProcesses(nodes, tmp_path) as graph:
        proc = graph.procs["policy"]
        assert proc.wait(60) != 0
        log = graph.log_tail("policy")
    assert "policy refused: it was trained for task 'pusht', not 'insert'" in log, log


def test_eval_policy_writes_videos_a_success_table_and_the_demonstrations_curve(tmp_path, pusht_policy):
    import json

    from robot_dyn.jobs.policy_eval import evaluation_run

    out = evaluation_run(pusht_policy, 2, tmp_path / "run", time_limit=2.0, workers=1,
                         datasets=str(pusht_policy.parent / "lerobot"), log=lambda *_: None)
    results = json.loads((out / "results.json").read_text())
    first, *curve = results["rows"]
    assert first["episodes"] == 2 and [r["seed"] for r in first["rollouts"]] == [100000, 100001]
    assert 0.0 <= first["mean_score"] <= 1.0 and first["success_ci95"][0] <= first["success_rate"] <= first["success_ci95"][1]
    assert first["policy_infer_ms_p99"] > 0
    assert [r["demonstrations"] for r in curve] == [2, 2, 2]  # 25/50/100 % of two episodes, at least two each
    assert (out / "success_vs_demos.png").stat().st_size > 0
    assert (out / first["videos"][0]).stat().st_size > 0
    assert "| success rate |" in (out / "success.md").read_text()
