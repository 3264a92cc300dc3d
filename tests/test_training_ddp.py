"""Training runs data-parallel under torchrun (2 CPU processes, gloo, loopback) and saves once."""
import json
import os
import subprocess
import sys

import numpy as np

from robot_dyn.inverse_dynamics.collect import CollectionConfig, collect
from robot_dyn.inverse_dynamics.excitation import FourierTrajectory
from robot_dyn.robots import load_robot


def test_torchrun_two_processes(tmp_path):
    robot = load_robot("panda")
    rng = np.random.default_rng(0)
    exc = FourierTrajectory(3.0, robot.home, rng.normal(0, 0.05, (7, 3)), rng.normal(0, 0.05, (7, 3)))
    collect(exc, tmp_path / "data", CollectionConfig(effects="nominal", excitation_periods=1, excitation_time_scales=(1.0,),
                                                     point_to_point_moves=1, train_point_to_point_moves=1,
                                                     figure_eight_cycles=1, lead_in_s=1.0), log=lambda *_: None)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         "--master_port=29517", "-m", "robot_dyn.cli", "train", "inverse-dynamics", "--dataset", str(tmp_path / "data"),
         "--model", "blackbox", "--epochs", "2", "--hidden", "8", "--out", str(tmp_path / "model")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert np.isfinite(metrics["heldout"]["nmse"])
    assert (out.stdout + out.stderr).count("checkpoint:") == 1  # rank 0 alone saved


def test_pretraining_runs_data_parallel_and_rank_zero_alone_saves(tmp_path):
    from test_lerobot_export import write_episode

    from robot_dyn.recording.lerobot_export import export_lerobot

    episodes = [write_episode(tmp_path / f"e{i}", start_ns=(3 + i) * 1_000_000_000, size=(24, 32)) for i in range(3)]
    dataset = export_lerobot(episodes, tmp_path / "ds", fps=10).out
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         "--master_port=29518", "-m", "robot_dyn.cli", "pretrain", "dynamo", "--dataset", str(dataset), "--steps", "3",
         "--batch-size", "4", "--image-size", "16", "--out", str(tmp_path / "encoder")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((tmp_path / "encoder" / "config.json").read_text())
    assert config["world_size"] == 2 and config["method"] == "dynamo"
    assert out.stdout.count(str(tmp_path / "encoder")) == 1  # rank 0 alone saved and said so
    metrics = json.loads((tmp_path / "encoder" / "metrics.json").read_text())
    assert np.isfinite(metrics["final"]["loss"])
    assert metrics["ranks_agree"]  # different batches per rank, the same model: the gradients were averaged


def test_dynamics_training_runs_data_parallel_and_rank_zero_alone_saves(tmp_path):
    from robot_dyn.object_dynamics.dataset import record_pushes

    record_pushes(tmp_path / "pushes", 2, seed=4)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1", MUJOCO_GL="egl")
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         "--master_port=29519", "-m", "robot_dyn.cli", "train", "dynamics", "--dataset", str(tmp_path / "pushes"),
         "--steps", "4", "--batch-size", "4", "--hidden", "16", "--validation", "1", "--out", str(tmp_path / "gnn")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "gnn" / "model.json").read_text())["world_size"] == 2
    metrics = json.loads((tmp_path / "gnn" / "metrics.json").read_text())
    assert metrics["ranks_agree"] and np.isfinite(metrics["validation"]["mde_mm_at_10"])
    assert out.stdout.count(str(tmp_path / "gnn")) == 1  # rank 0 alone saved and said so
