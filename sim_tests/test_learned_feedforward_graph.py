"""The controller node with a learned feedforward checkpoint, and with a broken one."""
import numpy as np
import torch

from robot_dyn.dynamics import RigidBody
from robot_dyn.inverse_dynamics.models import InverseDynamicsModel
from robot_dyn.jobs.session import SimSession
from robot_dyn.robots import load_robot


def _hybrid_checkpoint(path):
    model = InverseDynamicsModel("hybrid", RigidBody(load_robot("panda")), hidden=16)
    with torch.no_grad():
        model.residual.head.weight.zero_()  # residual off: the identified start (URDF + small friction)
        model.residual.head.bias.zero_()
    return model.save(path)


def _joint_goal_with(checkpoint, workdir):
    """Run the graph with a hybrid feedforward from `checkpoint`; (final joint error, controller log)."""
    overrides = {"controller": {"feedforward": "hybrid", "feedforward_checkpoint": str(checkpoint)}}
    with SimSession("panda", workdir, overrides=overrides) as s:
        goal = s.robot.home + np.array([0.3, 0.2, -0.2, 0.2, 0.3, -0.2, 0.4])
        error = s.joint_goal(goal, settle=0.3)["final_error_rad_max"]
    return error, (workdir / "controller.log").read_text()


def test_controller_runs_a_hybrid_checkpoint(tmp_path):
    error, log = _joint_goal_with(_hybrid_checkpoint(tmp_path / "hybrid"), tmp_path / "run")
    assert error < 2e-3
    assert "feedforward: hybrid model from" in log and "feedforward 'hybrid'" in log


def test_corrupt_checkpoint_falls_back_to_nominal_with_a_warning(tmp_path):
    ckpt = _hybrid_checkpoint(tmp_path / "hybrid")
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[:100])
    error, log = _joint_goal_with(ckpt, tmp_path / "run")
    assert error < 1e-3
    assert "model.safetensors: unreadable" in log and "falling back to nominal feedforward" in log
    assert "feedforward 'nominal'" in log
