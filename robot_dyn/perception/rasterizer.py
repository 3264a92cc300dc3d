"""Differentiable 3D Gaussian splatting: world-frame Gaussians -> RGB, depth and alpha images of a pinhole camera.

The image model of 3D Gaussian Splatting (Kerbl et al. 2023), as used for tracking by Dynamic
3D Gaussians (Luiten et al. 2024). One interface, `render` (one camera) and `render_views`
(several cameras, one pass), with two backends that follow the same conventions, so either can
stand in for the other:

- "gsplat": `gsplat.rasterization` (CUDA only). Imported only when used.
- "torch": plain torch ops, differentiated by autograd; any device, the one used on CPU.

Conventions of both backends:
- Camera: OpenCV axes (x right, y down, z forward). A point at camera-frame (x, y, z) m
  projects to u = fx x/z + cx, v = fy y/z + cy px, and pixel (row j, column i) has its centre
  at (u, v) = (i, j): the OpenCV convention of `cameras.intrinsics` (cx = (W - 1) / 2),
  `cameras.project` and `cameras.backproject`, so one K serves calibration, back-projection
  and rendering. gsplat and 3DGS put pixel centres at (i + 0.5, j + 0.5); the gsplat backend
  is handed K with 0.5 px added to cx and cy, which renders the same image.
- Gaussian: mean (m, world frame); rotation as a quaternion (w, x, y, z), normalised here;
  standard deviations exp(log_scales) m along its own axes; opacity sigmoid(logit); RGB colour.
- Projection (EWA): Sigma2D = J W Sigma3D W^T J^T + 0.3 px^2 I, W the world->camera rotation
  and J the Jacobian of the projection at the mean, evaluated with x/z and y/z clamped to 1.3x
  the field of view (as 3DGS and gsplat do; keeps Gaussians beside the image from smearing).
  Gaussians whose mean has camera z outside (near, far) are not drawn.
- Per pixel, Gaussians in order of camera z (front to back):
  a_i = min(0.99, opacity_i exp(-0.5 d^T Sigma2D_i^-1 d)), d = pixel centre - projected mean;
  pairs with a_i < 1/255 are skipped; T_i = prod_{j<i} (1 - a_j); the Gaussian that would take
  T below 1e-4 and all behind it are skipped (3DGS early stop, no gradient either).
  colour = sum_i c_i a_i T_i + (1 - alpha) background, alpha = sum_i a_i T_i.
- Depth: the alpha-normalised expected camera z, sum_i z_i a_i T_i / alpha (m), z_i the
  camera-frame z of Gaussian i's mean. Normalised so that a partly covered pixel reads the
  depth of what covers it instead of being pulled toward 0; 0 where nothing is drawn
  (alpha <= 1e-6). Compare it with a sensor only where alpha is high.
Known difference: gsplat clamps a_i at 0.999, not 0.99, so the backends differ where a single
Gaussian is nearly opaque (opacity x falloff > 0.99).

How the torch backend works, and why. Each visible Gaussian gets the box of pixel centres
where its a_i can reach 1/255, i.e. d^T Sigma2D^-1 d <= 2 ln(255 opacity) (at most 3.33 sigma,
less for faint Gaussians): culling by this box never changes the image. Every (pixel,
Gaussian) pair of every box is listed without Python loops (repeat_interleave), pairs under
1/255 are dropped, the rest sorted by pixel (stable, so depth order holds within a pixel), and
the pairs behind each pixel's early stop dropped too; all of this without autograd. Only the
surviving pairs are then evaluated with autograd: the transmittance is a segmented exclusive
cumulative sum of log(1 - a_i) along the list (float64, so a long list keeps its precision),
and the pixel sums are index_adds. Per-Gaussian values are gathered as separate 1-D columns:
per-pair ops on contiguous columns and their 1-D index_add backward are 2-4x faster than on a
(P, k) table.
Several cameras render in one pass: each (camera, Gaussian) entry is projected as above, the
cameras' pixels are numbered one after another, and the one list of pairs is sorted and
composited as for one camera (pairs of different cameras never share a pixel). Same result as
one call per camera, with ~4x fewer tensor operations for four cameras; per-operation
overhead dominates small images on a CPU (four 100x80 crops of a rope, ~650 Gaussians,
forward+backward: 9 ms in one pass against 15 ms one camera at a time, CPU time).
Cost and memory grow with P, the number of contributing pairs (the sum of the Gaussians'
footprints in pixels, minus what the early stop cuts): ~90 bytes of autograd memory per pair,
not pixels x Gaussians. Forward+backward, 160x120, float32, one thread (shared 2-core VM):
  a sphere of 1000-3000 opaque Gaussians filling half the image (P ~ 3.3e5): ~40 ms;
  1000/2000/3000 scattered Gaussians of 5-15 mm at 1 m (P ~ 0.7/1.4/1.8e5): 9/17/24 ms.
Two threads gain ~1.2x on an idle machine but stall (to ~1 s per view) when the other core is
busy; prefer one thread per process. Measured alternatives on the same scenes, also plain
torch: 8x8 tiles with a padded per-tile Gaussian list (every pixel of a tile against every
Gaussian touching it, padded to the fullest tile, cumprod over the list) were at least 2.5-4x
slower, 16x16 tiles 5-10x, and a dense pixels x Gaussians alpha matrix takes seconds per view
(7 s at 2000 Gaussians). A scene of huge Gaussians (each covering much of the image) makes P,
and so the cost, approach the dense case.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Sequence

import torch

ALPHA_MIN = 1.0 / 255.0  # a pair contributes from this alpha up (3DGS)
ALPHA_MAX = 0.99  # clamp of each a_i (3DGS), keeps 1 - a_i > 0
T_MIN = 1e-4  # compositing stops before a pixel's transmittance falls below this (3DGS)
EPS2D = 0.3  # px^2, added to every projected covariance: a low-pass filter at pixel size (3DGS)
DEPTH_ALPHA_EPS = 1e-6  # pixels with alpha at or below this have depth 0 (nothing drawn there)
BACKENDS = ("auto", "torch", "gsplat")


def _check_tensor(owner: str, name: str, t, shape: tuple) -> None:
    """Raise ValueError unless `t` is a finite floating tensor of `shape` (None = any size)."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{owner}.{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{owner}.{name} must have shape {want}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{owner}.{name} must be a floating tensor, got {t.dtype}")
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{owner}.{name} contains NaN or inf")


@dataclass
class Camera:
    """A pinhole camera, OpenCV axes (x right, y down, z forward); pixel centres at integer px.

    K: (3, 3) intrinsics in px, zero skew, pixel (column i, row j) centred at (u, v) = (i, j) as
    in `cameras.intrinsics` (see the module notes). world_to_cam: (4, 4) rigid transform taking
    world points (m) to the camera frame (m).
    width, height: image size in px. near, far: camera-z range in m outside which Gaussians are
    not drawn.
    """

    K: torch.Tensor
    world_to_cam: torch.Tensor
    width: int
    height: int
    near: float = 0.01
    far: float = 100.0

    def __post_init__(self):
        _check_tensor("Camera", "K", self.K, (3, 3))
        _check_tensor("Camera", "world_to_cam", self.world_to_cam, (4, 4))
        K = self.K.detach().double().cpu()
        if K[0, 0] <= 0 or K[1, 1] <= 0 or K[0, 1] != 0 or K[1, 0] != 0 or K[2].tolist() != [0.0, 0.0, 1.0]:
            raise ValueError(f"Camera.K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], fx, fy > 0; got {K.tolist()}")
        T = self.world_to_cam.detach().double().cpu()
        R = T[:3, :3]
        rigid = torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype), atol=1e-3) and torch.det(R) > 0
        if T[3].tolist() != [0.0, 0.0, 0.0, 1.0] or not rigid:
            raise ValueError("Camera.world_to_cam must be a rigid transform (rotation, translation; last row 0 0 0 1)")
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"Camera.{name} must be a positive int (px), got {v!r}")
        if not (0 < self.near < self.far):
            raise ValueError(f"Camera.near, Camera.far must satisfy 0 < near < far (m), got {self.near}, {self.far}")


@dataclass
class Gaussians:
    """N 3D Gaussians in the world frame.

    means: (N, 3) m. quats: (N, 4) rotation Gaussian->world as (w, x, y, z), any non-zero norm.
    log_scales: (N, 3) log of the standard deviations along the Gaussian's axes, log m.
    opacity_logits: (N,), opacity = sigmoid(logit). colors: (N, 3) RGB, nominally in [0, 1].
    All on one device, one floating dtype.
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self):
        _check_tensor("Gaussians", "means", self.means, (None, 3))
        n = self.means.shape[0]
        for name, shape in (("quats", (n, 4)), ("log_scales", (n, 3)), ("opacity_logits", (n,)), ("colors", (n, 3))):
            t = getattr(self, name)
            _check_tensor("Gaussians", name, t, shape)
            if t.dtype != self.means.dtype or t.device != self.means.device:
                raise ValueError(f"Gaussians.{name} is {t.dtype} on {t.device}; "
                                 f"means is {self.means.dtype} on {self.means.device}")
        if n and not bool((self.quats.detach().norm(dim=1) > 0).all()):
            raise ValueError("Gaussians.quats has a zero-norm row")


@dataclass
class RenderOutput:
    """One rendered view. rgb: (H, W, 3) composited over the background. depth: (H, W) m,
    alpha-normalised expected camera z, 0 where alpha <= 1e-6. alpha: (H, W) accumulated
    opacity in [0, 1] (the rendered silhouette)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor


def render(gaussians: Gaussians, camera: Camera, backend: str = "auto",
           background: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0)) -> RenderOutput:
    """Render `gaussians` into `camera`; differentiable w.r.t. every Gaussian field.

    backend: "torch", "gsplat", or "auto" = gsplat when CUDA is available, gsplat imports and the
    Gaussians are on a CUDA device, else torch. background: RGB behind the Gaussians.
    """
    return render_views(gaussians, [camera], backend, background)[0]


def render_views(gaussians: Gaussians, cameras: Sequence[Camera], backend: str = "auto",
                 background: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0)) -> list[RenderOutput]:
    """Render `gaussians` into each of `cameras` (any sizes), as `render` does for one.

    The torch backend renders all cameras in one pass (one list of pairs, one sort, one
    compositing), which has the same result as one call per camera but a few times fewer
    tensor operations: on a CPU, small images cost more in per-operation overhead than in
    arithmetic."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    g = gaussians
    bg = torch.as_tensor(background, dtype=g.means.dtype, device=g.means.device)
    if bg.shape != (3,) or not bool(torch.isfinite(bg).all()):
        raise ValueError(f"background must be 3 finite numbers (RGB), got {background!r}")
    if not cameras or not all(isinstance(c, Camera) for c in cameras):
        raise ValueError("cameras must be a non-empty list of Camera")
    if backend == "auto":
        backend = "gsplat" if _gsplat_usable(g.means) else "torch"
    if backend == "gsplat":
        sums = [_rasterize_gsplat(g, cam) for cam in cameras]
    else:
        sums = _rasterize_torch(g, cameras)
    out = []
    for color_sum, alpha, depth_sum in sums:
        rgb = color_sum + (1.0 - alpha)[..., None] * bg
        depth = torch.where(alpha > DEPTH_ALPHA_EPS, depth_sum / alpha.clamp_min(DEPTH_ALPHA_EPS),
                            torch.zeros_like(alpha))
        out.append(RenderOutput(rgb=rgb, depth=depth, alpha=alpha))
    return out


def _gsplat_usable(means: torch.Tensor) -> bool:
    """True when the gsplat backend can render Gaussians held in `means`' device."""
    return means.is_cuda and torch.cuda.is_available() and importlib.util.find_spec("gsplat") is not None


def _rasterize_gsplat(g: Gaussians, cam: Camera) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """gsplat backend: (H, W, 3) sum c_i w_i, (H, W) alpha, (H, W) sum z_i w_i, with w_i = a_i T_i."""
    if not g.means.is_cuda:
        raise ValueError(f"backend 'gsplat' needs the Gaussians on a CUDA device, they are on {g.means.device}")
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise ImportError("render(backend='gsplat') needs the gsplat package and a CUDA device") from e
    K = cam.K.to(g.means).clone()
    K[:2, 2] += 0.5  # gsplat's pixel centres are at +0.5
    colors, alphas, _ = rasterization(
        means=g.means, quats=g.quats, scales=torch.exp(g.log_scales), opacities=torch.sigmoid(g.opacity_logits),
        colors=g.colors, viewmats=cam.world_to_cam.to(g.means)[None], Ks=K[None],
        width=cam.width, height=cam.height, near_plane=cam.near, far_plane=cam.far, eps2d=EPS2D,
        packed=False, render_mode="RGB+D", rasterize_mode="classic")  # "D": un-normalised sum z_i w_i
    return colors[0, ..., :3], alphas[0, ..., 0], colors[0, ..., 3]


def _project(g: Gaussians, cams: Sequence[Camera]):
    """The M (camera, Gaussian) entries where a Gaussian reaches some pixel of a camera with
    a >= 1/255, sorted front to back by camera z (cameras mixed: entries of different cameras
    never share a pixel).

    Returns geom, 6 tensors (M,): u, v px, conic A, B, C 1/px^2 (d^T Sigma2D^-1 d = A dx^2 +
    2B dx dy + C dy^2), opacity; feats, 4 tensors (M,): r, g, b, camera z m; each entry's
    camera index (M,) int64; and its pixel box, 4 int32 tensors (M,): first column x0, first
    row y0, width, height.
    Columns are kept as separate contiguous 1-D tensors: per-pair ops on them run ~2x faster
    than on strided columns of one table, and 1-D index_add (their backward) ~4x faster.
    """
    dtype, dev = g.means.dtype, g.means.device
    W2C = torch.stack([cam.world_to_cam.to(dtype=dtype, device=dev) for cam in cams])  # (C, 4, 4)
    # per camera: fx, fy, cx, cy, width, height, near, far, and the Jacobian clamp limits of x/z, y/z
    rows = []
    for cam in cams:
        fx, fy, cx, cy = (float(v) for v in (cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]))
        tan_x, tan_y = 0.5 * cam.width / fx, 0.5 * cam.height / fy
        left, top = cx + 0.5, cy + 0.5  # px from the image's outer edge (u = -0.5) to the principal point
        rows.append([fx, fy, cx, cy, cam.width, cam.height, cam.near, cam.far,
                     -(left / fx + 0.3 * tan_x), (cam.width - left) / fx + 0.3 * tan_x,
                     -(top / fy + 0.3 * tan_y), (cam.height - top) / fy + 0.3 * tan_y])
    cam_table = torch.tensor(rows, dtype=torch.float64, device=dev)  # (C, 12)
    p = torch.einsum("cij,nj->cni", W2C[:, :3, :3], g.means) + W2C[:, None, :3, 3]  # (C, N, 3) camera frame, m
    with torch.no_grad():
        visible_opacity = g.opacity_logits > math.log(ALPHA_MIN / (1 - ALPHA_MIN))
        near, far = cam_table[:, 6:7].to(dtype), cam_table[:, 7:8].to(dtype)
        ahead = (p[..., 2] > near) & (p[..., 2] < far) & visible_opacity
        entry = ahead.nonzero()  # (K, 2): camera, Gaussian
        ci, gi = entry[:, 0], entry[:, 1]
    x, y, z = p.reshape(-1, 3).index_select(0, ci * p.shape[1] + gi).unbind(1)
    q = g.quats.index_select(0, gi)
    qw, qx, qy, qz = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    R = torch.stack([1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
                     2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
                     2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)], 1).view(-1, 3, 3)
    scales = torch.exp(g.log_scales.index_select(0, gi))
    M = W2C[:, :3, :3].index_select(0, ci) @ R * scales[:, None, :]  # Sigma_cam = M M^T
    fx, fy, cx, cy, width, height, _, _, x_lo, x_hi, y_lo, y_hi = cam_table.index_select(0, ci).unbind(1)
    z64 = z.double()
    xz = torch.minimum(torch.maximum(x.double() / z64, x_lo), x_hi)
    yz = torch.minimum(torch.maximum(y.double() / z64, y_lo), y_hi)
    # rows of J M, J = [[fx/z, 0, -fx xz/z], [0, fy/z, -fy yz/z]]; Sigma2D and its inverse in float64
    # (per entry, cheap): in float32 det^2 overflows in the backward of long, large Gaussians
    M = M.double()
    r0 = (fx / z64)[:, None] * (M[:, 0] - xz[:, None] * M[:, 2])
    r1 = (fy / z64)[:, None] * (M[:, 1] - yz[:, None] * M[:, 2])
    a = (r0 * r0).sum(1) + EPS2D
    b = (r0 * r1).sum(1)
    c = (r1 * r1).sum(1) + EPS2D
    det = a * c - b * b
    u = fx.to(dtype) * x / z + cx.to(dtype)
    v = fy.to(dtype) * y / z + cy.to(dtype)
    opacity = torch.sigmoid(g.opacity_logits.index_select(0, gi))
    with torch.no_grad():  # the box of pixel centres where d^T Sigma2D^-1 d <= 2 ln(255 opacity)
        r2 = 2 * torch.log(opacity / ALPHA_MIN).clamp_min(0)
        ex, ey = torch.sqrt(r2 * a), torch.sqrt(r2 * c)
        zero = torch.zeros_like(width)
        x0 = torch.minimum(torch.maximum(torch.ceil(u - ex), zero), width).int()
        x1 = torch.minimum(torch.maximum(torch.floor(u + ex), zero - 1), width - 1).int()
        y0 = torch.minimum(torch.maximum(torch.ceil(v - ey), zero), height).int()
        y1 = torch.minimum(torch.maximum(torch.floor(v + ey), zero - 1), height - 1).int()
        bw, bh = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
        seen = ((bw > 0) & (bh > 0) & (det > 0)).nonzero()[:, 0]  # det <= 0: float round-off, degenerate
        order = seen.index_select(0, torch.argsort(z.index_select(0, seen), stable=True))
    colors = g.colors.index_select(0, gi)
    geom = [t.index_select(0, order).to(dtype) for t in (u, v, c / det, -b / det, a / det, opacity)]
    feats = [t.index_select(0, order) for t in (colors[:, 0], colors[:, 1], colors[:, 2], z)]
    return geom, feats, ci.index_select(0, order), *(t.index_select(0, order) for t in (x0, y0, bw, bh))


def _rasterize_torch(g: Gaussians, cams: Sequence[Camera]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Torch backend, all cameras in one pass: per camera (H, W, 3) sum c_i w_i, (H, W) alpha,
    (H, W) sum z_i w_i, with w_i = a_i T_i. The cameras' pixels are numbered one after another."""
    geom, feats, cam_of, x0, y0, bw, bh = _project(g, cams)
    dev, i32 = x0.device, torch.int32
    sizes = [cam.height * cam.width for cam in cams]
    with torch.no_grad():  # the contributing pairs, sorted by pixel and front to back within a pixel
        first_pixel = torch.tensor([0] + sizes[:-1], device=dev).cumsum(0).index_select(0, cam_of).int()
        row_len = torch.tensor([cam.width for cam in cams], device=dev, dtype=i32).index_select(0, cam_of)
        counts = bw * bh
        gid = torch.repeat_interleave(counts)  # entry (depth rank) of each box pair
        first_pair = torch.cumsum(counts, 0, dtype=i32) - counts
        off = torch.arange(gid.numel(), device=dev, dtype=i32) - first_pair.index_select(0, gid)  # within the box
        bwg = bw.index_select(0, gid)
        px, py = x0.index_select(0, gid) + off % bwg, y0.index_select(0, gid) + off // bwg
        a = _pair_alpha([t.detach().index_select(0, gid) for t in geom], px, py)
        keep = (a >= ALPHA_MIN).nonzero()[:, 0]  # the 1/255 cut
        # pairs were listed front to back, so a stable sort by pixel keeps that order within a pixel
        pix_all = first_pixel.index_select(0, gid) + py * row_len.index_select(0, gid) + px
        pix, order = torch.sort(pix_all.index_select(0, keep), stable=True)
        keep = keep.index_select(0, order)
        log1m = torch.log1p(-a.index_select(0, keep))
        # early stop: drop each pixel's pairs from the one that takes T below 1e-4 on
        alive = keep.index_select(0, (_log_transmittance(log1m, pix) + log1m >= math.log(T_MIN)).nonzero()[:, 0])
        pix = pix_all.index_select(0, alive)
        gid, px, py = gid.index_select(0, alive), px.index_select(0, alive), py.index_select(0, alive)
    a = _pair_alpha([t.index_select(0, gid) for t in geom], px, py)
    w = a * torch.exp(_log_transmittance(torch.log1p(-a), pix))
    zero = torch.zeros(sum(sizes), dtype=w.dtype, device=dev)
    r, gr, b, zsum = (zero.index_add(0, pix, w * f.index_select(0, gid)) for f in feats)
    alpha = zero.index_add(0, pix, w)
    rgb = torch.stack([r, gr, b], 1)
    out, start = [], 0
    for cam, n in zip(cams, sizes):
        H, W = cam.height, cam.width
        out.append((rgb[start:start + n].view(H, W, 3), alpha[start:start + n].view(H, W),
                    zsum[start:start + n].view(H, W)))
        start += n
    return out


def _log_transmittance(log1m: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
    """log T before each pair: the exclusive cumulative sum of log(1 - a) (P,) within each run of
    equal pixel index `pix` (P,), summed in float64 along the whole list."""
    with torch.no_grad():
        first = torch.ones_like(pix, dtype=torch.bool)
        first[1:] = pix[1:] != pix[:-1]
        start = torch.cummax(torch.where(first, torch.arange(pix.numel(), device=pix.device), 0), 0).values
    excl = torch.cumsum(log1m.double(), 0) - log1m.double()
    return (excl - excl.index_select(0, start)).to(log1m.dtype)


def _pair_alpha(pg: Sequence[torch.Tensor], px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """a = min(0.99, opacity exp(-0.5 d^T Sigma2D^-1 d)) of P pairs: `pg` _project's geom for each
    pair's Gaussian, 6 tensors (P,); px, py (P,) int pixel column, row."""
    u, v, A, B, C, opacity = pg
    dx = px.to(u.dtype) - u
    dy = py.to(u.dtype) - v
    return (opacity * torch.exp(-0.5 * (A * dx * dx + C * dy * dy) - B * dx * dy)).clamp(max=ALPHA_MAX)
