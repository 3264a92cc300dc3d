"""Inverse-dynamics data: what is recorded is consistent, and bad datasets fail clearly."""
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robot_dyn.dynamics import RigidBody
from robot_dyn.inverse_dynamics.collect import CollectionConfig, collect
from robot_dyn.inverse_dynamics.dataset import DatasetError, load_dataset, write_dataset
from robot_dyn.inverse_dynamics.excitation import FourierTrajectory
from robot_dyn.robots import load_robot

ROBOT = load_robot("panda")
SMALL = dict(excitation_periods=1, excitation_time_scales=(1.0,), point_to_point_moves=1, train_point_to_point_moves=1, figure_eight_cycles=1, lead_in_s=1.0)


def _excitation():
    rng = np.random.default_rng(0)
    return FourierTrajectory(3.0, ROBOT.home, rng.normal(0, 0.05, (7, 3)), rng.normal(0, 0.05, (7, 3)))


@pytest.fixture(scope="module")
def nominal_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "nominal"
    collect(_excitation(), path, CollectionConfig(effects="nominal", **SMALL), log=lambda *_: None)
    return path


def test_recorded_torque_is_the_rigid_body_torque_of_the_exact_states(nominal_dataset):
    meta, episodes = load_dataset(nominal_dataset, ROBOT)
    assert {e.split for e in episodes} == {"train", "heldout"}
    assert meta["effects_profile"] == "nominal" and meta["rate_hz"] == pytest.approx(1000.0)
    rb = RigidBody(ROBOT)
    for ep in episodes:
        pred = np.array([rb.rnea(*s) for s in zip(ep["q_exact"], ep["qd_exact"], ep["qdd_exact"])])
        np.testing.assert_allclose(pred, ep["tau"], atol=1e-8)
        np.testing.assert_allclose(ep["tau"], ep["tau_commanded"] + ep["tau_gravity"])


def test_filtered_derivatives_are_close_to_the_exact_ones(nominal_dataset):
    _, episodes = load_dataset(nominal_dataset)
    for ep in episodes:
        inner = slice(20, -20)  # the filter's edges
        assert np.abs(ep["qd"][inner] - ep["qd_exact"][inner]).max() < 0.02
        assert np.sqrt(np.mean((ep["qdd"][inner] - ep["qdd_exact"][inner]) ** 2)) < 0.3
        assert 0 < np.abs(ep["q"] - ep["q_exact"]).max() < 2e-4  # measured positions carry noise


def test_realistic_memory_data_is_not_rigid_body(tmp_path):
    path = tmp_path / "memory"
    collect(_excitation(), path, CollectionConfig(effects="realistic_memory", **SMALL), log=lambda *_: None)
    _, episodes = load_dataset(path, ROBOT)
    rb = RigidBody(ROBOT)
    ep = episodes[0]
    pred = np.array([rb.rnea(*s) for s in zip(ep["q_exact"], ep["qd_exact"], ep["qdd_exact"])])
    assert np.mean((pred - ep["tau"]) ** 2) / np.var(ep["tau"]) > 1e-3  # friction, payload, armature...


@pytest.fixture
def copy(nominal_dataset, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(nominal_dataset, path)
    return path


def test_malformed_metadata_and_version(copy):
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(DatasetError, match="field 'version' is 99"):
        load_dataset(copy)
    (copy / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="metadata.json: malformed JSON"):
        load_dataset(copy)


def test_truncated_parquet_is_named(copy):
    file = sorted((copy / "episodes").glob("*.parquet"))[0]
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"{file.name}: unreadable parquet"):
        load_dataset(copy)


def test_nan_and_missing_columns_are_named(copy):
    file = sorted((copy / "episodes").glob("*.parquet"))[0]
    table = pq.read_table(file)
    tau = table.column("tau").combine_chunks().flatten().to_numpy().copy()
    tau[5] = np.nan
    table = table.set_column(table.column_names.index("tau"), "tau", pa.FixedSizeListArray.from_arrays(pa.array(tau), 7))
    pq.write_table(table, file)
    with pytest.raises(DatasetError, match="column 'tau' has NaN"):
        load_dataset(copy)
    pq.write_table(table.drop(["qd"]), file)
    with pytest.raises(DatasetError, match="missing column 'qd'"):
        load_dataset(copy)


def test_wrong_robot_is_refused_and_nothing_is_overwritten(nominal_dataset):
    with pytest.raises(DatasetError, match="recorded on 'panda'"):
        load_dataset(nominal_dataset, load_robot("iiwa14"))
    before = (nominal_dataset / "metadata.json").read_text()
    with pytest.raises(DatasetError, match="a dataset already exists there"):
        write_dataset(nominal_dataset, {}, [])
    assert (nominal_dataset / "metadata.json").read_text() == before
