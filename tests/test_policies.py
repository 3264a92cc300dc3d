"""Visuomotor policies (robot_dyn.imitation): the action heads learn what they claim on tiny synthetic
problems, the pretraining baselines train, checkpoints round-trip and refuse corrupt files, the runner
executes chunks receding and refuses bad observations, behaviour cloning learns a tiny LeRobot export.

Everything is real (tiny models trained for a few hundred steps) and seeded. torch runs on one thread
here: with two threads on a contended 2-core machine its spin-waiting makes small ops ~100x slower.
"""
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from robot_dyn.imitation.encoders import ResNetEncoder, load_encoder, save_encoder
from robot_dyn.imitation.heads import DiffusionHead, HeadConfig, MlpHead, VqBetHead, make_head
from robot_dyn.imitation.policy import (Policy, PolicyConfig, PolicyRunner, check_compatible, load_policy,
                                        save_policy, square_frame, with_changes)

JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """A LeRobot export of three identical 1 s 'insert' episodes on the panda (10 frames each at 10 Hz, one
    24x32 camera 'cam0'), loaded at 16 px. Commands [0 1 0 0 0 -0.5] live in frames 1..5, zero elsewhere."""
    from test_lerobot_export import write_episode

    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.recording.lerobot_export import export_lerobot

    tmp = tmp_path_factory.mktemp("demos")
    episodes = [write_episode(tmp / f"e{i}", size=(24, 32)) for i in range(3)]
    root = export_lerobot(episodes, tmp / "ds", fps=10).out
    return DemoFrames.load(root, image_size=16)


def _quiet(*_):
    pass


# --- heads -----------------------------------------------------------------------------------------

TINY_HEAD = HeadConfig(hidden=64, depth=2, diffusion_train_steps=50, diffusion_sample_steps=8, vq_levels=2, vq_codes=8,
                       vq_latent=8)


def _linear_problem(n, seed):
    """obs in R^4, a chunk of 4 two-dimensional actions that is a fixed smooth function of it."""
    obs = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    weights = torch.randn(4, 8, generator=torch.Generator().manual_seed(99))
    return obs, torch.tanh(obs @ weights / 2).view(n, 4, 2)


def _bimodal_problem(n, seed):
    """obs in R^4; the chunk is +0.6 or -0.6 everywhere (a hidden coin flip) plus a small function of obs
    (returned too): a regressor averages the modes to ~0, a generative head must pick one."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=g)
    mode = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    detail = 0.25 * torch.tanh(obs[:, None, :2]) * torch.linspace(0.5, 1.0, 4)[None, :, None]
    return obs, 0.6 * mode[:, None, None] + detail, detail


def _train_head(head, obs, actions, steps, lr=2e-3, batch=64):
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr)
    for step in range(steps):
        picks = torch.randint(0, len(obs), (batch,))
        head.train()
        loss, _ = head.loss(obs[picks], actions[picks], step / steps)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head.eval()


def _modes(samples):
    """Of (N, K, A) samples of the bimodal problem: the share with a positive mean, the share near a mode."""
    m = samples.mean(dim=(1, 2))
    return float((m > 0).float().mean()), float(((m.abs() - 0.6).abs() < 0.2).float().mean())


def test_head_config_and_make_head_refuse_bad_settings():
    assert HeadConfig().validated() == HeadConfig()
    for bad, message in [(dict(hidden=0), "'hidden' must be an integer >= 1"),
                         (dict(depth=2.0), "'depth' must be an integer >= 1"),
                         (dict(vq_codes=-3), "'vq_codes' must be an integer >= 1"),
                         (dict(diffusion_train_steps=5, diffusion_sample_steps=6), "'diffusion_sample_steps' must not exceed"),
                         (dict(vq_fraction=0.0), "'vq_fraction' must lie in"),
                         (dict(vq_fraction=1.0), "'vq_fraction' must lie in")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            HeadConfig(**bad).validated()
        with pytest.raises(ValueError, match=re.escape(message)):  # make_head validates too
            make_head("mlp", 4, 2, 6, HeadConfig(**bad))
    with pytest.raises(ValueError, match=r"head must be one of \['mlp', 'diffusion', 'vqbet'\], got 'transformer'"):
        make_head("transformer", 4, 2, 6)
    for name, cls in [("mlp", MlpHead), ("diffusion", DiffusionHead), ("vqbet", VqBetHead)]:
        assert isinstance(make_head(name, 4, 3, 2, TINY_HEAD), cls)


def test_mlp_head_regresses_a_chunk():
    torch.manual_seed(0)
    head = make_head("mlp", 4, 4, 2, TINY_HEAD)
    obs, actions = _linear_problem(512, 0)
    with torch.no_grad():
        before, terms = head.loss(obs, actions)
    assert set(terms) == {"mse"} and terms["mse"] == pytest.approx(float(before))
    _train_head(head, obs, actions, 200)
    test_obs, test_actions = _linear_problem(256, 1)
    with torch.no_grad():
        after, _ = head.loss(test_obs, test_actions)
        samples = head.sample(test_obs, torch.Generator().manual_seed(0))
    assert float(after) < 0.1 * float(before), (float(before), float(after))  # ~0.9 -> ~0.015
    assert samples.shape == (256, 4, 2) and float(samples.abs().max()) <= 1.0
    assert float(((samples - test_actions) ** 2).mean()) < 0.08
    assert torch.equal(samples, head.sample(test_obs, torch.Generator().manual_seed(1)))  # deterministic
    with torch.no_grad():
        big = head.sample(100 * test_obs)
    assert float(big.abs().max()) <= 1.0  # clipped to the teleop range


def test_diffusion_head_learns_both_modes_where_regression_averages_them():
    obs, actions, _ = _bimodal_problem(512, 0)
    test_obs, _, _ = _bimodal_problem(400, 1)

    torch.manual_seed(0)
    mlp = _train_head(make_head("mlp", 4, 4, 2, TINY_HEAD), obs, actions, 200)
    with torch.no_grad():
        _, near = _modes(mlp.sample(test_obs))
    assert near < 0.25  # the regressor sits between the modes

    torch.manual_seed(0)
    head = make_head("diffusion", 4, 4, 2, TINY_HEAD)

    def noise_mse():
        torch.manual_seed(1)  # the loss draws its noise and steps from the global generator
        with torch.no_grad():
            loss, terms = head.loss(obs[:256], actions[:256])
        assert set(terms) == {"noise_mse"}
        return float(loss)

    before = noise_mse()
    _train_head(head, obs, actions, 500)
    after = noise_mse()
    assert after < 0.3 * before, (before, after)  # ~1.4 -> ~0.06
    with torch.no_grad():
        samples = head.sample(test_obs, torch.Generator().manual_seed(0))
        again = head.sample(test_obs, torch.Generator().manual_seed(0))
        other = head.sample(test_obs, torch.Generator().manual_seed(1))
    assert samples.shape == (400, 4, 2) and float(samples.abs().max()) <= 1.0
    positive, near = _modes(samples)
    assert 0.3 < positive < 0.7 and near > 0.65, (positive, near)  # both modes, each sharply (~0.87 near)
    assert torch.equal(samples, again) and not torch.allclose(samples, other)  # the generator decides


def test_vqbet_head_learns_a_vocabulary_then_codes_and_offsets():
    obs, actions, _ = _bimodal_problem(512, 0)
    torch.manual_seed(0)
    head = make_head("vqbet", 4, 4, 2, TINY_HEAD)
    optimiser = torch.optim.AdamW(head.parameters(), lr=2e-3)
    steps, history = 300, []
    vocabulary = None
    for step in range(steps):
        progress = step / steps
        if progress >= TINY_HEAD.vq_fraction and vocabulary is None:  # stage 2 begins: the vocabulary freezes
            vocabulary = {k: v.clone() for m in head._vocabulary_modules() for k, v in m.state_dict().items()}
        picks = torch.randint(0, len(obs), (64,))
        head.train()
        loss, terms = head.loss(obs[picks], actions[picks], progress)
        assert set(terms) == ({"vq_reconstruction", "vq_commitment"} if progress < TINY_HEAD.vq_fraction
                              else {"code_ce", "offset_l1"})
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(terms)
    head.eval()
    stage1 = [h for h in history if "vq_reconstruction" in h]
    stage2 = [h for h in history if "code_ce" in h]
    assert len(stage1) == 90 and len(stage2) == 210
    assert np.mean([h["vq_reconstruction"] for h in stage1[-10:]]) < 0.1 * stage1[0]["vq_reconstruction"]
    assert np.mean([h["code_ce"] for h in stage2[-10:]]) < 0.6 * stage2[0]["code_ce"]
    assert np.mean([h["offset_l1"] for h in stage2[-10:]]) < 0.5 * stage2[0]["offset_l1"]
    after = {k: v for m in head._vocabulary_modules() for k, v in m.state_dict().items()}
    assert all(torch.equal(vocabulary[k], after[k]) for k in vocabulary)  # stage 2 leaves the vocabulary alone

    test_obs, test_actions, detail = _bimodal_problem(400, 1)
    with torch.no_grad():
        samples = head.sample(test_obs, torch.Generator().manual_seed(0))
        again = head.sample(test_obs, torch.Generator().manual_seed(0))
    assert samples.shape == (400, 4, 2) and float(samples.abs().max()) <= 1.0
    positive, near = _modes(samples)
    assert 0.3 < positive < 0.7 and near > 0.85, (positive, near)
    # the offsets carry the observation-dependent detail (~0.003 left of its 0.015 mean square)
    residual = samples - 0.6 * torch.sign(samples.mean(dim=(1, 2)))[:, None, None]
    assert float(((residual - detail) ** 2).mean()) < 0.5 * float((detail ** 2).mean())
    assert torch.equal(samples, again)


# --- pretraining baselines -------------------------------------------------------------------------

def test_augment_is_a_seeded_crop_and_colour_jitter():
    from robot_dyn.imitation.baselines import augment

    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = augment(images, 0.6, 0.3, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and a.dtype == torch.float32 and 0 <= float(a.min()) <= float(a.max()) <= 1
    assert torch.equal(a, augment(images, 0.6, 0.3, torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, augment(images, 0.6, 0.3, torch.Generator().manual_seed(2)))
    assert not torch.allclose(a, images)
    # a uniform grey image: the crop and the contrast / saturation changes keep it grey, brightness scales it
    grey = torch.full((64, 3, 16, 16), 0.5)
    plain = augment(grey, 0.6, 0.0, torch.Generator().manual_seed(3))
    assert torch.allclose(plain[:, :, 4:12, 4:12], grey[:, :, 4:12, 4:12], atol=1e-5)
    jittered = augment(grey, 0.6, 0.3, torch.Generator().manual_seed(3))[:, :, 8, 8]  # (64, 3) centre pixels
    assert torch.allclose(jittered, jittered[:, :1].expand(-1, 3), atol=1e-5)  # still grey
    assert 0.35 - 1e-5 <= float(jittered.min()) < 0.45 and 0.55 < float(jittered.max()) <= 0.65 + 1e-5
    # the crop magnifies: a left-to-right ramp keeps its direction, over a range no wider than the image's
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(8, 3, 16, 16).contiguous()
    cropped = augment(ramp, 0.6, 0.0, torch.Generator().manual_seed(4))[:, 0, 8, 2:14]
    assert bool((cropped.diff(dim=-1) > 0).all())


def test_baseline_config_refuses_out_of_range_settings():
    from robot_dyn.imitation.baselines import BaselineConfig

    for bad in (dict(crop_scale=0.0), dict(crop_scale=1.5), dict(jitter=1.0), dict(jitter=-0.1)):
        with pytest.raises(ValueError, match="'crop_scale' must lie in"):
            BaselineConfig(**bad).validated()
    with pytest.raises(ValueError, match="'projection' must be >= 1"):
        BaselineConfig(projection=0).validated()


def test_simsiam_views_agree_more_after_training():
    from robot_dyn.imitation.baselines import BaselineConfig, SimSiam

    torch.manual_seed(0)
    model = SimSiam(BaselineConfig(encoder_width=4, projection=32))
    assert model.window == 1 and set(model.groups()) == {"encoder", "heads"} and model.main_term == "similarity"
    colours = torch.rand(16, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, 16)
    images = colours * ramp.view(1, 1, 1, 16) + (1 - colours) * ramp.view(1, 1, 16, 1)  # a colour gradient each
    frames = images[:, None, None]  # (B, V, T, 3, S, S)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    history = []
    for _ in range(40):
        loss, terms = model.loss(frames)
        assert -1 - 1e-5 <= loss.item() <= 1 + 1e-5 and terms["similarity"] == pytest.approx(loss.item())
        optimiser.zero_grad()
        loss.backward()
        assert model.encoder.stem[0].weight.grad.abs().sum() > 0  # the encoder learns through both views
        optimiser.step()
        history.append(terms["similarity"])
    assert np.mean(history[-5:]) < np.mean(history[:5]) - 0.3, history  # the negative cosine falls toward -1 (~ -0.7)


def test_inverse_actions_regresses_the_first_frames_command():
    from robot_dyn.imitation.baselines import BaselineConfig, InverseActions

    torch.manual_seed(0)
    model = InverseActions(BaselineConfig(encoder_width=4, hidden=32))
    assert model.window == 2 and set(model.groups()) == {"encoder", "inverse"} and model.main_term == "action_mse"
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(8, 2, 2, 3, 16, 16, generator=g)  # two cameras, window 2
    actions = torch.rand(8, 2, 6, generator=g) * 2 - 1
    model.eval()  # BatchNorm on running statistics: the loss is a function of its inputs
    with torch.no_grad():
        loss, terms = model.loss(frames, actions)
        changed = actions.clone()
        changed[:, 1] = 0.0  # the command at t + 1 is not the label
        assert float(model.loss(frames, changed)[0]) == pytest.approx(float(loss))
        changed[:, 0] = 0.0
        assert float(model.loss(frames, changed)[0]) != pytest.approx(float(loss))
    assert terms == {"action_mse": pytest.approx(float(loss))}
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        loss, terms = model.loss(frames, actions)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(terms["action_mse"])
    assert np.mean(history[-5:]) < 0.5 * history[0], history


# --- pretraining: methods and the random baseline --------------------------------------------------

def test_build_method_gives_each_method_at_the_preset():
    from robot_dyn.imitation.baselines import InverseActions, SimSiam
    from robot_dyn.imitation.dynamo import DynaMo
    from robot_dyn.imitation.pretrain import build_method

    small = dict(layers=1, heads=2, width=16)
    size, dynamo = build_method("dynamo", **small)
    assert size == 64 and isinstance(dynamo, DynaMo) and dynamo.window == 5 and dynamo.config.layers == 1
    assert dynamo.encoder.width == 16 and dynamo.encoder.small_images  # the cpu preset's encoder
    size, random = build_method("random", **small, encoder_width=4)
    assert size == 64 and isinstance(random, DynaMo) and random.encoder.width == 4
    size, simsiam = build_method("simsiam", projection=32)
    assert size == 64 and isinstance(simsiam, SimSiam) and simsiam.window == 1 and simsiam.name == "simsiam"
    assert simsiam.encoder.width == 16 and simsiam.config.projection == 32
    size, inverse = build_method("inverse_actions", "paper", hidden=16)
    assert size == 224 and isinstance(inverse, InverseActions) and inverse.window == 2
    assert inverse.encoder.width == 64 and not inverse.encoder.small_images and inverse.config.hidden == 16
    with pytest.raises(ValueError, match=r"method must be one of \['dynamo', 'simsiam', 'inverse_actions', 'random'\]"):
        build_method("byol")
    with pytest.raises(ValueError, match=r"preset must be one of \['cpu', 'paper'\], got 'gpu'"):
        build_method("dynamo", "gpu")


def test_pretrain_without_training_writes_the_random_encoder(demos, tmp_path):
    from safetensors.torch import load_file

    from robot_dyn.imitation.pretrain import PretrainConfig, build_method, pretrain

    torch.manual_seed(5)
    _, method = build_method("random", layers=1, heads=2, width=16, encoder_width=4)
    built = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    config = PretrainConfig(steps=50, batch_size=4, validation_fraction=0.34)
    metrics = pretrain(demos, tmp_path / "random", method, config, log=_quiet, train=False)
    assert metrics["method"] == "random" and [h["step"] for h in metrics["history"]] == [0]
    assert "val_dynamics" in metrics["final"] and 0 < metrics["final"]["val_embedding_spread"]
    saved = json.loads((tmp_path / "random/config.json").read_text())
    assert saved["method"] == "random" and saved["pretrain"] is None and saved["cameras"] == ["cam0"]
    assert saved["image_size"] == 16 and len(saved["validation_episodes"]) == 1 and len(saved["train_episodes"]) == 2
    assert json.loads((tmp_path / "random/metrics.json").read_text())["method"] == "random"
    encoder, meta = load_encoder(tmp_path / "random")
    assert meta["method"] == "random" and meta["encoder"] == {"width": 4, "blocks": [2, 2, 2, 2], "small_images": True}
    assert all(torch.equal(built[k], v) for k, v in encoder.state_dict().items())  # untrained
    whole = load_file(str(tmp_path / "random/model.safetensors"))
    assert any(k.startswith("inverse.") for k in whole) and torch.equal(whole["encoder.stem.0.weight"], built["stem.0.weight"])


@pytest.mark.parametrize("name, term", [("simsiam", "val_similarity"), ("inverse_actions", "val_action_mse")])
def test_pretrain_trains_the_baselines(demos, tmp_path, name, term):
    from robot_dyn.imitation.pretrain import PretrainConfig, build_method, pretrain

    torch.manual_seed(0)
    changes = dict(encoder_width=4, projection=16) if name == "simsiam" else dict(encoder_width=4, hidden=16)
    _, method = build_method(name, **changes)
    built = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    config = PretrainConfig(steps=3, batch_size=4, lr=1e-3, log_every=2, validation_fraction=0.34)
    metrics = pretrain(demos, tmp_path / name, method, config, log=_quiet)
    assert metrics["method"] == name and [h["step"] for h in metrics["history"]] == [0, 2]
    assert math.isfinite(metrics["final"][term]) and metrics["final"]["val_embedding_spread"] > 0
    encoder, meta = load_encoder(tmp_path / name)
    assert meta["method"] == name and meta["pretrain"]["steps"] == 3 and meta["model"]["encoder_width"] == 4
    assert not torch.equal(encoder.state_dict()["stem.0.weight"], built["stem.0.weight"])  # trained


# --- encoder checkpoints -----------------------------------------------------------------------------

def test_encoder_checkpoint_round_trips_and_refuses_malformed_files(tmp_path):
    torch.manual_seed(0)
    encoder = ResNetEncoder(4).eval()
    meta = {"method": "dynamo", "cameras": ["cam0"], "image_size": 16}
    save_encoder(tmp_path / "ok", encoder, meta)
    loaded, loaded_meta = load_encoder(tmp_path / "ok")
    assert not loaded.training and loaded_meta == {**meta, "encoder": {"width": 4, "blocks": [2, 2, 2, 2], "small_images": True}}
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded(images), encoder(images))

    good_config = (tmp_path / "ok/config.json").read_text()
    good_weights = (tmp_path / "ok/encoder.safetensors").read_bytes()
    config_faults = {"not json": "{'method': ",
                     "not an object": "[]",
                     "no cameras": json.dumps({k: v for k, v in json.loads(good_config).items() if k != "cameras"}),
                     "no encoder": json.dumps({k: v for k, v in json.loads(good_config).items() if k != "encoder"}),
                     "three stages": json.dumps({**meta, "encoder": {"width": 4, "blocks": [2, 2, 2], "small_images": True}}),
                     "width not a number": json.dumps({**meta, "encoder": {"width": "four", "blocks": [2, 2, 2, 2],
                                                                          "small_images": True}})}
    for fault, text in config_faults.items():
        folder = tmp_path / fault.replace(" ", "_")
        save_encoder(folder, encoder, meta)
        (folder / "config.json").write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(folder / "config.json")) + ": not an encoder checkpoint"):
            load_encoder(folder)
    missing = tmp_path / "missing"
    missing.mkdir()
    with pytest.raises(ValueError, match=re.escape(str(missing / "config.json"))):
        load_encoder(missing)

    save_encoder(tmp_path / "wide", ResNetEncoder(8), meta)
    weight_faults = {"garbage": b"\x00garbage" * 10, "truncated": good_weights[:len(good_weights) // 2],
                     "another layout": (tmp_path / "wide/encoder.safetensors").read_bytes(), "absent": None}
    for fault, data in weight_faults.items():
        folder = tmp_path / fault.replace(" ", "_")
        save_encoder(folder, encoder, meta)
        if data is None:
            (folder / "encoder.safetensors").unlink()
        else:
            (folder / "encoder.safetensors").write_bytes(data)
        with pytest.raises(ValueError, match=re.escape(str(folder / "encoder.safetensors")) + ": weights unreadable"):
            load_encoder(folder)


# --- policies ------------------------------------------------------------------------------------------

TINY_POLICY_HEAD = HeadConfig(hidden=16, depth=1, diffusion_train_steps=20, diffusion_sample_steps=4, vq_codes=4,
                              vq_latent=4)


def _meta(**changes):
    return {"task": "insert", "robot": "panda", "joint_names": list(JOINTS), "cameras": ["cam0"], "camera_size": [32, 24],
            "image_size": 16, "fps": 10.0, "encoder": {"width": 4, "blocks": [2, 2, 2, 2], "small_images": True}, **changes}


def _policy(head="mlp", seed=0, **changes):
    torch.manual_seed(seed)
    config = PolicyConfig(head=head, obs_window=2, chunk=4, execute=3, head_config=TINY_POLICY_HEAD, **changes)
    return Policy(ResNetEncoder(4), config, 1, 7, _meta()).eval()


def test_policy_config_validation_and_changes():
    config = PolicyConfig()
    assert config.validated() is config
    assert PolicyConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    for bad, message in [(dict(execute=9, chunk=8), "'execute' (9) must not exceed 'chunk' (8)"),
                         (dict(obs_window=0), "'obs_window' must be an integer >= 1"),
                         (dict(chunk=4.0), "'chunk' must be an integer >= 1"),
                         (dict(steps=0), "'steps' must be an integer >= 1"),
                         (dict(lr=0.0), "out-of-range setting"),
                         (dict(validation_fraction=1.0), "out-of-range setting"),
                         (dict(head_config=HeadConfig(vq_fraction=1.5)), "'vq_fraction' must lie in")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            replace(config, **bad).validated()
    changed = with_changes(config, head="mlp", chunk=6, hidden=32, vq_codes=4)
    assert changed.head == "mlp" and changed.chunk == 6 and changed.head_config.hidden == 32
    assert changed.head_config.vq_codes == 4 and changed.head_config.depth == config.head_config.depth
    with pytest.raises(ValueError, match="'execute' .* must not exceed"):
        with_changes(config, chunk=2)


@pytest.mark.parametrize("head", ["mlp", "diffusion", "vqbet"])
def test_policy_acts_and_round_trips_through_its_checkpoint(tmp_path, head):
    policy = _policy(head)
    assert policy.obs_dim == 2 * (1 * 32 + 7)  # window x (cameras x embedding + joints)
    # a few training steps (both VQ-BeT stages) and a non-trivial normaliser, so that everything saved matters
    optimiser = torch.optim.AdamW(policy.head.parameters(), lr=1e-3)
    obs, actions = torch.randn(16, policy.obs_dim), torch.rand(16, 4, 6) * 2 - 1
    for progress in (0.0, 0.1, 0.5, 0.9):
        policy.head.train()
        loss, _ = policy.head.loss(obs, actions, progress)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    policy.eval()
    policy.obs_mean.copy_(torch.randn(policy.obs_dim) * 0.1)
    policy.obs_std.copy_(torch.rand(policy.obs_dim) + 0.5)
    save_policy(tmp_path / head, policy, {"note": head})
    loaded = load_policy(tmp_path / head)
    assert not loaded.training and loaded.config == policy.config and loaded.meta == policy.meta
    assert json.loads((tmp_path / head / "metrics.json").read_text()) == {"note": head}
    original, restored = policy.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)

    g = torch.Generator().manual_seed(0)
    images, state = torch.rand(3, 2, 1, 3, 16, 16, generator=g), torch.randn(3, 2, 7, generator=g) * 0.1
    a = policy.act(images, state, torch.Generator().manual_seed(7))
    b = loaded.act(images, state, torch.Generator().manual_seed(7))
    assert a.shape == (3, 4, 6) and float(a.abs().max()) <= 1.0
    assert torch.equal(a, b)
    if head != "mlp":  # a stochastic head: the seed is what made them equal
        assert not torch.equal(a, loaded.act(images, state, torch.Generator().manual_seed(8)))


def test_load_policy_refuses_corrupt_weights_and_malformed_descriptions(tmp_path):
    policy = _policy("diffusion")
    save_policy(tmp_path / "ok", policy, {})
    good_json = json.loads((tmp_path / "ok/policy.json").read_text())
    good_weights = (tmp_path / "ok/policy.safetensors").read_bytes()
    save_policy(tmp_path / "mlp", _policy("mlp"), {})

    def broken(name, description=None, weights=None):
        folder = tmp_path / name
        save_policy(folder, policy, {})
        if description is not None:
            (folder / "policy.json").write_text(description if isinstance(description, str) else json.dumps(description))
        if weights is not None:
            (folder / "policy.safetensors").write_bytes(weights)
        return folder

    def without(key):
        return {k: v for k, v in good_json.items() if k != key}

    json_faults = {"not_json": "{\"task\": ", "no_task": without("task"), "no_fps": without("fps"),
                   "no_config": without("config"), "no_encoder": without("encoder"),
                   "unknown_head": {**good_json, "config": {**good_json["config"], "head": "transformer"}},
                   "execute_over_chunk": {**good_json, "config": {**good_json["config"], "execute": 9}},
                   "unknown_setting": {**good_json, "config": {**good_json["config"], "speed": 2}},
                   "bad_head_config": {**good_json, "config": {**good_json["config"], "head_config": {"hidden": 0}}},
                   "a_list": "[]"}
    for name, description in json_faults.items():
        folder = broken(name, description=description)
        with pytest.raises(ValueError, match=re.escape(str(folder / "policy.json")) + ": not a policy checkpoint"):
            load_policy(folder)

    weight_faults = {"garbage": b"\x00\x01garbage" * 20, "truncated": good_weights[: len(good_weights) // 3],
                     "empty": b"", "another_head": (tmp_path / "mlp/policy.safetensors").read_bytes()}
    for name, weights in weight_faults.items():
        folder = broken(name, weights=weights)
        with pytest.raises(ValueError, match=re.escape(str(folder / "policy.safetensors")) + ": weights unreadable"):
            load_policy(folder)
    folder = broken("absent")
    (folder / "policy.safetensors").unlink()
    with pytest.raises(ValueError, match=re.escape(str(folder / "policy.safetensors"))):
        load_policy(folder)
    # joints in the description that the weights were not trained for
    folder = broken("more_joints", description={**good_json, "joint_names": JOINTS + ["extra"]})
    with pytest.raises(ValueError, match=re.escape(str(folder / "policy.safetensors"))):
        load_policy(folder)


@pytest.mark.parametrize("description", ["null", "\"policy\""])
def test_load_policy_refuses_a_description_that_is_not_an_object(tmp_path, description):
    save_policy(tmp_path, _policy("mlp"), {})
    (tmp_path / "policy.json").write_text(description)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "policy.json"))):
        load_policy(tmp_path)


def _camera_images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(count)]


def _joints(count, seed=0):
    rng = np.random.default_rng(seed + 1)
    return [0.1 * rng.standard_normal(7) for _ in range(count)]


def test_runner_executes_chunks_receding(tmp_path):
    """execute = 3 of each chunk of 4: a chunk is inferred at steps 0, 3, 6, each from the last two frames
    (the episode's first frame standing in for the one before it)."""
    policy = _policy("mlp")
    runner = PolicyRunner(policy, seed=0)
    assert runner.infer_ms == []  # the warm-up is not timed
    images, joints = _camera_images(8), _joints(8)
    commands = [runner.step({"cam0": images[k]}, joints[k]) for k in range(7)]
    assert len(runner.infer_ms) == 3 and all(ms > 0 for ms in runner.infer_ms)

    def chunk(frames):
        x = torch.from_numpy(np.stack([square_frame(images[k], 16)[None] for k in frames])).permute(0, 1, 4, 2, 3)
        state = torch.from_numpy(np.stack([joints[k] for k in frames]).astype(np.float32))
        return policy.act(x.float().div(255.0)[None], state[None])[0].numpy()

    expected = list(chunk([0, 0])[:3]) + list(chunk([2, 3])[:3]) + list(chunk([5, 6])[:1])
    for got, want in zip(commands, expected):
        assert got.shape == (6,) and np.allclose(got, want, atol=1e-6)
    assert not np.allclose(commands[3], chunk([0, 0])[3])  # the unexecuted end of a chunk is dropped
    assert not np.allclose(commands[0], commands[3])

    runner.reset()  # a new episode: a fresh chunk from its own first frame
    assert np.allclose(runner.step({"cam0": images[7]}, joints[7]), chunk([7, 7])[0], atol=1e-6)
    assert len(runner.infer_ms) == 4


def test_runner_with_a_stochastic_head_is_reproducible_by_seed():
    policy = _policy("diffusion")
    images, joints = _camera_images(4), _joints(4)

    def run(seed):
        runner = PolicyRunner(policy, seed=seed)
        return np.array([runner.step({"cam0": images[k]}, joints[k]) for k in range(4)])

    assert np.array_equal(run(0), run(0)) and not np.allclose(run(0), run(1))


def test_runner_refuses_bad_observations_naming_the_field_and_sends_nothing():
    policy = _policy("mlp")
    runner = PolicyRunner(policy)
    images, joints = _camera_images(2), _joints(2)
    first = runner.step({"cam0": images[0]}, joints[0])
    history = list(runner.history)
    good = {"cam0": images[1]}
    faults = [({"wrist": images[1]}, joints[1], r"images: cameras \['cam0'\] missing"),
              (good, joints[1][:6], r"joint_positions: expected 7 values"),
              (good, np.append(joints[1], 0.0), r"joint_positions: expected 7 values"),
              (good, np.where(np.arange(7) == 3, np.nan, joints[1]), r"joint_positions: not finite"),
              (good, np.where(np.arange(7) == 0, np.inf, joints[1]), r"joint_positions: not finite"),
              ({"cam0": images[1].astype(np.float32) / 255}, joints[1], r"images\.cam0: expected \(H, W, 3\) uint8"),
              ({"cam0": images[1][..., 0]}, joints[1], r"images\.cam0: expected \(H, W, 3\) uint8"),
              ({"cam0": np.concatenate([images[1], images[1][..., :1]], -1)}, joints[1], r"images\.cam0: expected")]
    for frame, q, message in faults:
        with pytest.raises(ValueError, match=message):
            runner.step(frame, q)
    assert all(a is b for a, b in zip(runner.history, history)) and len(runner.queue) == 2 and len(runner.infer_ms) == 1  # untouched
    # the next good observation gets the chunk's next command, as if the refused ones never came
    reference = PolicyRunner(policy)
    assert np.array_equal(first, reference.step({"cam0": images[0]}, joints[0]))
    assert np.array_equal(runner.step(good, joints[1]), reference.step(good, joints[1]))
    # extra cameras are ignored
    assert runner.step({"cam0": images[1], "wrist": images[0]}, joints[1]).shape == (6,)


def test_check_compatible_refuses_another_task_robot_cameras_or_joint_order():
    meta = _meta(cameras=["cam0", "wrist"])
    check_compatible(meta, task="insert", cameras=["wrist", "cam0", "top"], robot="panda", joint_names=JOINTS)
    check_compatible(meta)  # nothing asked, nothing refused
    for asked, message in [(dict(task="pusht"), "trained for task 'insert', not 'pusht'"),
                           (dict(robot="ur5e"), "trained on robot 'panda', not 'ur5e'"),
                           (dict(cameras=["cam0"]), "its cameras ['wrist'] are not among the graph's ['cam0']"),
                           (dict(joint_names=JOINTS[::-1]), "its joints"),
                           (dict(joint_names=JOINTS[:6]), "its joints")]:
        with pytest.raises(ValueError, match="policy refused: .*" + re.escape(message)):
            check_compatible(meta, **asked)
    with pytest.raises(ValueError, match="task 'insert', not 'pusht'; it was trained on robot 'panda'"):
        check_compatible(meta, task="pusht", robot="ur5e")  # every reason at once


# --- behaviour cloning ---------------------------------------------------------------------------------

BC = PolicyConfig(head="mlp", obs_window=2, chunk=4, execute=2, steps=150, batch_size=16, lr=2e-3, warmup=0.05,
                  validation_fraction=0.34, log_every=1000, head_config=HeadConfig(hidden=32, depth=1))


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "policy.safetensors"))


def test_samples_pair_each_frame_with_its_window_and_the_next_chunk(demos):
    from robot_dyn.imitation.behaviour_cloning import Samples

    samples = Samples(demos, [0, 2], BC)
    assert len(samples.items) == 20 and samples.items[10] == (2, 0)
    assert list(samples.obs_frames(0, 0)) == [0, 0] and list(samples.obs_frames(0, 5)) == [4, 5]
    actions = samples.actions([(0, 0), (0, 8)]).numpy()
    assert np.array_equal(actions[0], demos.action[0][0:4])
    assert np.array_equal(actions[1, :2], demos.action[0][8:10]) and not actions[1, 2:].any()  # nothing past the end
    states = samples.states([(0, 5)]).numpy()
    assert np.array_equal(states[0], demos.state[0][[4, 5]])
    images = samples.images([(0, 5)])
    assert images.shape == (1, 2, 1, 3, 16, 16) and 0 <= float(images.min()) <= float(images.max()) <= 1
    assert torch.equal(images[0, 1, 0], torch.from_numpy(demos.images[0][0, 5]).permute(2, 0, 1).float() / 255)


def test_behaviour_cloning_learns_the_demonstrations_and_is_seeded(demos, tmp_path):
    from robot_dyn.imitation.behaviour_cloning import Samples, embed_episodes, train_policy

    def run(name):
        torch.manual_seed(3)
        encoder = ResNetEncoder(4)
        built = {k: v.clone() for k, v in encoder.state_dict().items()}
        meta = {"method": "dynamo", "path": "/checkpoints/dynamo"}
        return built, train_policy(demos, encoder, meta, tmp_path / name, BC, log=_quiet)

    built, metrics = run("a")
    _, again = run("b")
    history = metrics["history"]
    assert [h["step"] for h in history] == [0, 149] and len(metrics["validation_episodes"]) == 1
    first, final = history[0]["val_action_mse"], history[-1]["val_action_mse"]
    assert final < 0.3 * first and final < 0.03, (first, final)  # the held-out episode is predicted
    assert again["history"] == [{**h, "wall_s": g["wall_s"]} for h, g in zip(history, again["history"])]  # seeded
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[f"encoder.{k}"], v) for k, v in built.items())  # frozen: the encoder as given

    description = json.loads((tmp_path / "a/policy.json").read_text())
    assert {k: description[k] for k in ("task", "robot", "joint_names", "cameras", "camera_size", "image_size", "fps")} == {
        "task": "insert", "robot": "panda", "joint_names": JOINTS, "cameras": ["cam0"], "camera_size": [32, 24],
        "image_size": 16, "fps": 10.0}
    assert description["encoder"] == {"width": 4, "blocks": [2, 2, 2, 2], "small_images": True, "method": "dynamo",
                                      "source": "/checkpoints/dynamo", "frozen": True}
    # the normaliser is the training observations' mean and std (what a runner standardises with)
    policy = load_policy(tmp_path / "a")
    samples = Samples(demos, metrics["train_episodes"], BC)
    embeddings = embed_episodes(policy, demos, metrics["train_episodes"])
    raw = torch.cat([policy.raw_observation(embeddings[e][samples.obs_frames(e, k)][None], samples.states([(e, k)]))
                     for e, k in samples.items])
    assert torch.allclose(policy.obs_mean, raw.mean(0), atol=1e-5)
    assert torch.allclose(policy.obs_std, raw.std(0).clamp(min=1e-3), rtol=1e-4, atol=1e-6)
    # the saved policy, stepped on an episode's frames, reproduces its commands (the episode was trained on)
    runner = PolicyRunner(policy)
    episode = metrics["train_episodes"][0]
    commands = [runner.step({"cam0": demos.images[episode][0, k]}, demos.state[episode][k]) for k in range(10)]
    assert np.mean((np.array(commands) - demos.action[episode]) ** 2) < 0.03
    assert len(runner.infer_ms) == 5  # execute = 2 of chunk 4


def test_behaviour_cloning_end_to_end_trains_the_encoder(demos, tmp_path):
    from robot_dyn.imitation.behaviour_cloning import train_policy

    torch.manual_seed(0)
    encoder = ResNetEncoder(4)
    built = {k: v.clone() for k, v in encoder.state_dict().items()}
    config = replace(BC, head="diffusion", steps=3, batch_size=4, finetune_encoder=True, log_every=2,
                     head_config=TINY_POLICY_HEAD)
    metrics = train_policy(demos, encoder, None, tmp_path / "e2e", config, log=_quiet)
    assert [h["step"] for h in metrics["history"]] == [0, 2]
    assert all(math.isfinite(h["val_action_mse"]) and set(h) >= {"loss", "noise_mse"} for h in metrics["history"])
    weights = _weights(tmp_path / "e2e")
    assert not torch.equal(weights["encoder.stem.0.weight"], built["stem.0.weight"])
    description = json.loads((tmp_path / "e2e/policy.json").read_text())
    assert description["encoder"]["method"] == "scratch" and description["encoder"]["frozen"] is False
    assert description["config"]["head"] == "diffusion" and description["config"]["finetune_encoder"] is True
    assert load_policy(tmp_path / "e2e").config == config


def test_behaviour_cloning_refuses_an_export_of_several_tasks(demos, tmp_path):
    from robot_dyn.imitation.behaviour_cloning import train_policy

    with pytest.raises(ValueError, match=r"tasks \['insert', 'pusht'\]; a policy learns one"):
        train_policy(replace(demos, tasks=("insert", "pusht")), ResNetEncoder(4), None, tmp_path / "x", BC, log=_quiet)
    assert not (tmp_path / "x").exists()


# --- evaluation ------------------------------------------------------------------------------------------

def test_wilson_interval_known_values():
    from robot_dyn.imitation.rollout import wilson_interval

    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == pytest.approx(1.0)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(1, 20) == pytest.approx((0.0089, 0.2361), abs=1e-4)
    for k, n in [(3, 7), (12, 40), (0, 1)]:  # symmetric in successes and failures, and contains the rate
        low, high = wilson_interval(k, n)
        assert (low, high) == pytest.approx(tuple(1 - x for x in reversed(wilson_interval(n - k, n))))
        assert low <= k / n <= high
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < wilson_interval(5, 10)[1] - wilson_interval(5, 10)[0]
