"""The train job: dataset in, checkpoint folder out (safetensors + config + metrics.json)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from robot_dyn.distributed import finish as finish_distributed
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.inverse_dynamics.dataset import load_dataset, read_metadata
from robot_dyn.inverse_dynamics.training import TrainConfig, config_dict, evaluate, train
from robot_dyn.robots import load_robot


def split(episodes):
    return [e for e in episodes if e.split == "train"], [e for e in episodes if e.split == "heldout"]


def train_job(dataset: Path, config: TrainConfig, out: Path | None = None, log=print) -> Path:
    """Train `config.kind` on a dataset's training split, evaluate on its held-out split, save."""
    robot = load_robot(read_metadata(dataset)["robot"])
    model_rb = RigidBody(robot)
    meta, episodes = load_dataset(dataset, robot)
    train_eps, heldout = split(episodes)
    if not train_eps or not heldout:
        raise ValueError(f"{dataset}: needs both 'train' and 'heldout' episodes")
    out = Path(out or f"runs/models/{robot.name}-{config.kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    log(f"train {config.kind} on {dataset} ({len(train_eps)} training, {len(heldout)} held-out episodes)")
    start = time.monotonic()
    model = train(model_rb, train_eps, meta["rate_hz"], config, log=log)
    distributed = torch.distributed.is_initialized()
    if distributed and torch.distributed.get_rank() != 0:  # under torchrun: rank 0 evaluates and saves
        finish_distributed()
        return out
    metrics = {"heldout": evaluate(model, heldout, meta["rate_hz"], config), "train_seconds": time.monotonic() - start,
               "dataset": str(dataset), "effects_profile": meta.get("effects_profile"), "train_config": config_dict(config)}
    if model.identified_parameters() is not None:
        metrics["inertial_parameters"] = {"nominal_urdf": model_rb.inertial_parameters().tolist(),
                                          "identified": model.identified_parameters().tolist()}
        coulomb, viscous = (f.detach().numpy().tolist() for f in model.rigid.friction())
        metrics["friction"] = {"coulomb_nm": coulomb, "viscous_nm_s_per_rad": viscous}
    model.save(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"held-out nMSE {metrics['heldout']['nmse']:.4f} (per joint {np.round(metrics['heldout']['nmse_per_joint'], 4).tolist()})")
    log(f"checkpoint: {out}")
    if distributed:
        finish_distributed()
    return out
