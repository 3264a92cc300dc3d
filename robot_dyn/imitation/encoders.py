"""A ResNet-18-style image encoder in plain torch, trained from random initialisation.

Written here because there is no CPU torchvision build for this project's torch and no weights can be
downloaded; the layout is ResNet-18's (He et al. 2016): four stages of two basic blocks, widths w, 2w,
4w, 8w, global average pooling, so width 64 gives ResNet-18's 512-d embedding. `small_images` swaps
the 7x7 stride-2 stem and max-pool (a quarter of the resolution) for one 3x3 stride-2 convolution (half
of it), so that 64-96 px images keep enough resolution: 64 px frames reach the first stage at 32 px,
as CIFAR's ResNets see theirs (a stride-1 stem there cost 3.5x the time for the same network). Input: RGB in [0, 1], (N, 3, H, W); normalised inside with
ImageNet's mean and std (as DynaMo's encoder does). Output: (N, 8 w).
"""
from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    def __init__(self, width: int = 64, blocks=(2, 2, 2, 2), small_images: bool = True):
        super().__init__()
        if width < 1 or len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"encoder: width must be >= 1 and blocks four counts >= 1, got {width}, {blocks}")
        self.width, self.blocks, self.small_images = width, tuple(blocks), small_images
        if small_images:
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
        stages, channels = [], width
        for i, count in enumerate(blocks):
            out = width * 2 ** i
            for k in range(count):
                stages.append(BasicBlock(channels, out, 2 if (k == 0 and i > 0) else 1))
                channels = out
        self.stages = nn.Sequential(*stages)
        self.embedding_dim = channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def layout(self) -> dict:
        """What rebuilds this encoder (encoder_from_layout): width, blocks, small_images."""
        return {"width": self.width, "blocks": list(self.blocks), "small_images": self.small_images}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"encoder: expected images (N, 3, H, W), got {tuple(images.shape)}")
        x = self.stages(self.stem((images - self.mean) / self.std))
        return x.mean(dim=(2, 3))


def save_encoder(out, encoder: ResNetEncoder, meta: dict) -> None:
    """out/encoder.safetensors (the weights) and out/config.json: `meta` (method, cameras, image size, ...)
    with the encoder's layout under 'encoder'. What policies load (load_encoder)."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}, str(out / "encoder.safetensors"))
    (out / "config.json").write_text(json.dumps({**meta, "encoder": encoder.layout()}, indent=2))


def encoder_from_layout(layout: dict) -> ResNetEncoder:
    """A fresh encoder of a layout (ResNetEncoder.layout(), as checkpoints store it)."""
    return ResNetEncoder(int(layout["width"]), tuple(layout["blocks"]), bool(layout["small_images"]))


def load_weights(module: nn.Module, path, what: str) -> None:
    """A safetensors file's tensors into `module`; ValueError naming the file when it is unreadable or its
    tensors are not `what`'s."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        module.load_state_dict(load_file(str(path)))
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise ValueError(f"{path}: weights unreadable or not {what} ({str(exc).splitlines()[0]})") from None


def load_encoder(path) -> tuple[ResNetEncoder, dict]:
    """(the encoder in eval mode, its config.json) of a checkpoint folder written by save_encoder; ValueError
    names the file and what is wrong (missing, malformed, weights that do not fit the layout)."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
        encoder = encoder_from_layout(meta["encoder"])
        missing = [key for key in ("cameras", "image_size", "method") if key not in meta]
        if missing:
            raise KeyError(", ".join(missing))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path / 'config.json'}: not an encoder checkpoint's config ({exc!r})") from None
    load_weights(encoder, path / "encoder.safetensors", f"of the layout {meta['encoder']}")
    return encoder.eval(), meta
