"""DynaMo's parts (robot_dyn.imitation): the encoder, causality, the covariance term, and that the
objective trains on clips whose motion it can only explain through the latent action."""
import json

import numpy as np
import pytest
import torch

from robot_dyn.imitation.dynamo import CausalTransformer, DynaMo, DynamoConfig, covariance_penalty
from robot_dyn.imitation.encoders import ResNetEncoder

TINY = DynamoConfig(window=5, latent_dim=4, layers=2, heads=2, width=16, encoder_width=8)


def _clips(n: int, size: int = 24, seed: int = 0) -> torch.Tensor:
    """(n, 1, 5, 3, size, size): a bright square moving at a random constant velocity per clip."""
    rng = np.random.default_rng(seed)
    clips = np.zeros((n, 1, 5, 3, size, size), np.float32)
    for i in range(n):
        x, y = rng.integers(4, size - 10, 2)
        vx, vy = rng.integers(-2, 3, 2)
        for t in range(5):
            cx, cy = np.clip([x + vx * t, y + vy * t], 0, size - 6)
            clips[i, 0, t, :, cy:cy + 6, cx:cx + 6] = 1.0
    return torch.from_numpy(clips)


def test_encoder_is_resnet18_shaped_and_refuses_bad_input():
    full = ResNetEncoder(64, small_images=False)
    assert full.embedding_dim == 512
    assert sum(p.numel() for p in full.parameters()) == pytest.approx(11.17e6, rel=0.01)  # ResNet-18 without fc
    small = ResNetEncoder(8).eval()
    assert small(torch.rand(2, 3, 32, 32)).shape == (2, 64)
    with pytest.raises(ValueError, match=r"expected images \(N, 3, H, W\)"):
        small(torch.rand(2, 32, 32, 3))


def test_causal_transformer_does_not_see_the_future():
    torch.manual_seed(0)
    net = CausalTransformer(6, 3, layers=2, heads=2, width=8, max_len=5).eval()
    x = torch.randn(1, 5, 6)
    y = x.clone()
    y[:, 3:] += 10.0
    a, b = net(x), net(y)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6) and not torch.allclose(a[:, 3:], b[:, 3:])


def test_embedding_spread_tells_collapse_from_spread():
    from robot_dyn.imitation.dynamo import embedding_spread

    assert embedding_spread(torch.ones(50, 8) + 1e-6 * torch.randn(50, 8)) < 1e-3
    assert embedding_spread(torch.randn(5000, 8, generator=torch.Generator().manual_seed(0))) == pytest.approx(1.0, abs=0.05)


def test_covariance_penalty_is_the_mean_squared_off_diagonal():
    uncorrelated = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert float(covariance_penalty(uncorrelated)) == pytest.approx(0.0, abs=1e-12)
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))
    x[:, 1] = x[:, 0]  # one correlated pair
    cov = np.cov(x.numpy().T)
    expected = (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / 6
    assert float(covariance_penalty(x)) == pytest.approx(expected, rel=1e-4)


def test_config_and_input_checks_name_the_field():
    with pytest.raises(ValueError, match="'window' must be >= 2"):
        DynamoConfig(window=1).validated()
    with pytest.raises(ValueError, match="'width' .* multiple of 'heads'"):
        DynamoConfig(width=10, heads=3).validated()
    with pytest.raises(ValueError, match=r"expected frames \(batch, cameras, 5, 3, H, W\)"):
        DynaMo(TINY).loss(torch.rand(2, 5, 3, 24, 24))


def test_the_objective_trains_and_the_latent_action_carries_the_motion():
    """On moving squares, training lowers the forward model's error; with the latent action zeroed it
    is worse (the motion is only in the latent action, which saw the next frame)."""
    torch.manual_seed(0)
    model = DynaMo(TINY)
    clips = _clips(32)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss, terms = model.loss(clips)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(terms["dynamics"])
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    model.eval()
    with torch.no_grad():
        s = model.embed(clips.flatten(0, 1))
        z = model.inverse(s)
        target = s[:, 1:]
        with_latent = model.forward_model(torch.cat([s[:, :-1], z[:, 1:]], -1))
        without = model.forward_model(torch.cat([s[:, :-1], torch.zeros_like(z[:, 1:])], -1))
        cos = torch.nn.functional.cosine_similarity
        assert float((1 - cos(with_latent, target, dim=-1)).mean()) < float((1 - cos(without, target, dim=-1)).mean())


# --- training windows from a LeRobot export ------------------------------------------------------

def test_demo_frames_give_windows_of_every_camera_with_states_and_actions(tmp_path):
    from test_lerobot_export import write_episode

    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.recording.lerobot_export import export_lerobot, read_lerobot

    episodes = [write_episode(tmp_path / "a", size=(24, 32)), write_episode(tmp_path / "b", seconds=0.6, size=(24, 32))]
    root = export_lerobot(episodes, tmp_path / "ds", fps=10).out
    frames = DemoFrames.load(root, image_size=16)
    assert frames.cameras == ("cam0",) and frames.episodes == [0, 1] and frames.fps == 10
    windows = frames.windows(5)
    assert len(windows) == (10 - 4) + (6 - 4)
    x, state, action = frames.batch(windows[:3], 5)
    assert x.shape == (3, 1, 5, 3, 16, 16) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert torch.equal(state[1], torch.from_numpy(read_lerobot(root)[0]["state"][1:6]))
    assert action.shape == (3, 5, 6)
    # the synthetic video's brightness steps with time: each window frame is its own row's image
    expected = np.array([((30 + k) * 40) % 256 for k in range(5)]) / 255.0  # image_at on the 0.1 s grid from 3 s
    assert np.allclose([float(x[0, 0, t].mean()) for t in range(5)], expected, atol=10 / 255)

    with pytest.raises(ValueError, match=r"cameras \['wrist'\] not in the export"):
        DemoFrames.load(root, cameras=["wrist"])
    (root / "videos/observation.images.cam0/chunk-000/file-001.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"file-001.mp4: unreadable video"):
        DemoFrames.load(root)


def test_pretraining_writes_a_checkpoint_policies_can_load_and_is_seeded(tmp_path):
    from safetensors.torch import load_file
    from test_lerobot_export import write_episode

    from robot_dyn.imitation.frames import DemoFrames
    from robot_dyn.imitation.pretrain import PretrainConfig, build_method, pretrain
    from robot_dyn.recording.lerobot_export import export_lerobot

    episodes = [write_episode(tmp_path / f"e{i}", start_ns=(3 + i) * 1_000_000_000, size=(24, 32)) for i in range(3)]
    frames = DemoFrames.load(export_lerobot(episodes, tmp_path / "ds", fps=10).out, image_size=16)
    config = PretrainConfig(steps=6, batch_size=4, log_every=5, validation_fraction=0.3)

    def method():
        return build_method("dynamo", layers=1, heads=2, width=16, encoder_width=8)[1]

    a = pretrain(frames, tmp_path / "a", method(), config, log=lambda *_: None)
    b = pretrain(frames, tmp_path / "b", method(), config, log=lambda *_: None)
    assert a["final"]["loss"] == b["final"]["loss"]  # seeded
    assert [h["step"] for h in a["history"]] == [0, 5] and "val_dynamics" in a["final"]
    assert 0 < a["final"]["val_embedding_spread"] < 2
    saved = json.loads((tmp_path / "a/config.json").read_text())
    assert len(saved["validation_episodes"]) == 1 and saved["image_size"] == 16 and saved["model"]["encoder_width"] == 8
    assert saved["method"] == "dynamo" and saved["encoder"] == {"width": 8, "blocks": [2, 2, 2, 2], "small_images": True}
    encoder = ResNetEncoder(8)
    encoder.load_state_dict(load_file(str(tmp_path / "a/encoder.safetensors")))
    assert encoder.eval()(torch.rand(1, 3, 16, 16)).shape == (1, 64)
