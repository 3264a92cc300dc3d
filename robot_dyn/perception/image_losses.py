"""Image losses for fitting rendered views to camera images: L1, SSIM (as in 3D Gaussian
Splatting: 11x11 Gaussian window, sigma 1.5 px) and an L1 on depth that skips invalid pixels.

Images are channel-last, (H, W, C) or (B, H, W, C), colours in [0, 1]; depth images are (H, W)
or (B, H, W) in metres. All are torch ops, differentiable w.r.t. their first argument.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11  # px
SSIM_SIGMA = 1.5  # px
SSIM_C1 = 0.01 ** 2  # stabilisers for a dynamic range of 1
SSIM_C2 = 0.03 ** 2


def l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |a - b|, over the pixels where `mask` is set (or weighted by it, if float).

    mask: shaped like `a`, or like `a` without its last (channel) axis. An empty mask gives 0
    (still connected to `a`, so a loss sum stays differentiable).
    """
    if a.shape != b.shape:
        raise ValueError(f"l1: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    err = (a - b).abs()
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    if m.shape == a.shape[:-1]:
        m = m[..., None]
    elif m.shape != a.shape:
        raise ValueError(f"l1: mask must have shape {tuple(a.shape)} or {tuple(a.shape[:-1])}, got {tuple(mask.shape)}")
    m = m.expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity of two (H, W, C) or (B, H, W, C) images, 1 = identical.

    Local statistics under an 11x11 Gaussian window (sigma 1.5 px), zero padding, per channel;
    1 - ssim is the usual loss term.
    """
    if a.shape != b.shape or a.dim() not in (3, 4):
        raise ValueError(f"ssim: a and b must both be (H, W, C) or (B, H, W, C), "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = (t.unsqueeze(0) if t.dim() == 3 else t for t in (a, b))
    x, y = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)  # (B, C, H, W)
    C = x.shape[1]
    r = torch.arange(SSIM_WINDOW, dtype=x.dtype, device=x.device) - SSIM_WINDOW // 2
    g = torch.exp(-r * r / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(C, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(t):
        return F.conv2d(t, window, padding=SSIM_WINDOW // 2, groups=C)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2))
    return s.mean()


def depth_l1(pred: torch.Tensor, target: torch.Tensor, valid_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |pred - target| (m) over pixels with a valid target depth.

    A target pixel is invalid when NaN, inf or <= 0 (no sensor return); valid_mask (bool, same
    shape) can exclude more, e.g. where the rendered alpha is low. No valid pixel gives 0.
    """
    if pred.shape != target.shape:
        raise ValueError(f"depth_l1: pred and target must have the same shape, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    valid = torch.isfinite(target) & (target > 0)
    if valid_mask is not None:
        if valid_mask.shape != target.shape:
            raise ValueError(f"depth_l1: valid_mask must have shape {tuple(target.shape)}, "
                             f"got {tuple(valid_mask.shape)}")
        valid = valid & valid_mask.bool()
    if not bool(valid.any()):
        return pred.sum() * 0.0
    return (pred[valid] - target[valid]).abs().mean()
