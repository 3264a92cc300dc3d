"""Inverse-dynamics models: physical consistency, identification, checkpoints."""
import json
import shutil

import numpy as np
import pinocchio as pin
import pytest
import torch
from hypothesis import given, settings, strategies as st

from robot_dyn.dynamics import RigidBody
from robot_dyn.inverse_dynamics.collect import CollectionConfig, collect
from robot_dyn.inverse_dynamics.dataset import load_dataset
from robot_dyn.inverse_dynamics.excitation import FourierTrajectory
from robot_dyn.inverse_dynamics.models import CheckpointError, InverseDynamicsModel, load_model
from robot_dyn.inverse_dynamics.physical import dynamic_to_log_cholesky, is_physically_consistent, log_cholesky_to_dynamic
from robot_dyn.inverse_dynamics.training import TrainConfig, evaluate, train
from robot_dyn.robots import load_robot

ROBOT = load_robot("panda")
RB = RigidBody(ROBOT)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=10, max_size=10))
def test_any_log_cholesky_vector_is_a_physically_consistent_body(theta):
    pi = log_cholesky_to_dynamic(torch.tensor(theta, dtype=torch.float64)).numpy()
    assert is_physically_consistent(pi, tol=0.0)


def test_torch_map_equals_pinocchio_and_inverts():
    rng = np.random.default_rng(0)
    for _ in range(20):
        theta = rng.normal(size=10)
        ref = pin.Inertia.FromLogCholeskyParameters(pin.LogCholeskyParameters(theta)).toDynamicParameters()
        np.testing.assert_allclose(log_cholesky_to_dynamic(torch.tensor(theta)).numpy(), ref, atol=1e-12)
    pi = RB.inertial_parameters()
    np.testing.assert_allclose(log_cholesky_to_dynamic(torch.tensor(dynamic_to_log_cholesky(pi).reshape(-1, 10))).numpy().ravel(), pi, atol=1e-12)


def test_consistency_check_catches_impossible_bodies():
    pi = RB.inertial_parameters().copy()
    assert is_physically_consistent(pi)
    pi[0] = -1.0  # negative mass on link 1
    assert not is_physically_consistent(pi)


@pytest.fixture(scope="module")
def rigid_dataset(tmp_path_factory):
    """Noise-free rigid-body data (nominal profile, exact states), short."""
    rng = np.random.default_rng(1)
    excitation = FourierTrajectory(4.0, ROBOT.home, rng.normal(0, 0.12, (7, 4)), rng.normal(0, 0.12, (7, 4)))
    path = tmp_path_factory.mktemp("rigid") / "data"
    collect(excitation, path, CollectionConfig(effects="nominal", excitation_periods=2, excitation_time_scales=(1.0, 1.5),
                                               point_to_point_moves=2, train_point_to_point_moves=2,
                                               figure_eight_cycles=1, lead_in_s=1.0),
            log=lambda *_: None)
    return load_dataset(path, ROBOT)


def test_identification_recovers_rigid_body_torques(rigid_dataset):
    meta, episodes = rigid_dataset
    train_eps = [e for e in episodes if e.split == "train"]
    heldout = [e for e in episodes if e.split == "heldout"]
    # Start from a wrong model (every mass and inertia x1.3) so there is something to recover.
    config = TrainConfig(kind="identified", use_exact=True, identify_iterations=200, init_scale=1.3)
    start = InverseDynamicsModel("identified", RB, init_scale=1.3)
    assert evaluate(start, heldout, meta["rate_hz"], config)["nmse"] > 0.05
    model = train(RB, train_eps, meta["rate_hz"], config, log=lambda *_: None)
    assert evaluate(model, heldout, meta["rate_hz"], config)["nmse"] < 0.01
    assert is_physically_consistent(model.identified_parameters())


def test_checkpoint_round_trip_and_bad_checkpoints(tmp_path):
    model = InverseDynamicsModel("hybrid", RB, hidden=16)
    with torch.no_grad():
        model.residual.head.bias.fill_(0.3)
    model.save(tmp_path / "ok")
    loaded = load_model(tmp_path / "ok", RB)
    x = np.random.default_rng(0).normal(size=(3, 20, 7))
    np.testing.assert_allclose(loaded.predict(*x), model.predict(*x))

    with pytest.raises(CheckpointError, match="field 'robot' is 'panda', this controller runs 'iiwa14'"):
        load_model(tmp_path / "ok", RigidBody(load_robot("iiwa14")))
    shutil.copytree(tmp_path / "ok", tmp_path / "joints")
    config = json.loads((tmp_path / "joints/config.json").read_text())
    (tmp_path / "joints/config.json").write_text(json.dumps({**config, "joint_names": config["joint_names"][:6]}))
    with pytest.raises(CheckpointError, match="field 'joint_names' has 6 joints"):
        load_model(tmp_path / "joints", RB)
    shutil.copytree(tmp_path / "ok", tmp_path / "urdf")
    (tmp_path / "urdf/config.json").write_text(json.dumps({**config, "urdf_sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="field 'urdf_sha256' differs"):
        load_model(tmp_path / "urdf", RB)
    shutil.copytree(tmp_path / "ok", tmp_path / "corrupt")
    data = (tmp_path / "corrupt/model.safetensors").read_bytes()
    (tmp_path / "corrupt/model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable"):
        load_model(tmp_path / "corrupt", RB)
    shutil.copytree(tmp_path / "ok", tmp_path / "shape")
    (tmp_path / "shape/config.json").write_text(json.dumps({**config, "hidden": 32}))
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(tmp_path / "shape", RB)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path / "missing", RB)


def test_hybrid_beats_identified_with_friction_and_hysteresis(tmp_path):
    """realistic_memory (LuGre stick-slip and presliding hysteresis, armature, payload): small data,
    short training; the hybrid's recurrent residual must beat the identified rigid body held out."""
    from robot_dyn.inverse_dynamics.excitation import ExcitationConfig, optimise_excitation

    exc, _, _ = optimise_excitation(RB, ExcitationConfig(iterations=8, samples=50))
    collect(exc, tmp_path / "data", CollectionConfig(excitation_periods=1, excitation_time_scales=(1.0, 2.5),
                                                     train_point_to_point_moves=6, point_to_point_moves=2,
                                                     figure_eight_cycles=1), log=lambda *_: None)
    meta, episodes = load_dataset(tmp_path / "data", ROBOT)
    train_eps = [e for e in episodes if e.split == "train"]
    heldout = [e for e in episodes if e.split == "heldout"]
    scores = {}
    for config in (TrainConfig(kind="identified"), TrainConfig(kind="hybrid", epochs=20, hidden=32, learning_rate=1e-2)):
        model = train(RB, train_eps, meta["rate_hz"], config, log=lambda *_: None)
        scores[config.kind] = evaluate(model, heldout, meta["rate_hz"], config)["nmse"]
    assert scores["hybrid"] < 0.6 * scores["identified"], scores  # seen: 0.023 vs 0.095
