"""Gaussian splatting rasteriser and image losses: geometry, occlusion, gradients, validation."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from robot_dyn.perception.cameras import intrinsics, project
from robot_dyn.perception.image_losses import depth_l1, l1, ssim
from robot_dyn.perception.rasterizer import Camera, Gaussians, render, render_views


def rot_y(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def camera(width=64, height=48, f=60.0, deg=0.0, t=(0.0, 0.0, 0.0), dtype=torch.float64) -> Camera:
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3], T[:3, 3] = rot_y(deg), torch.tensor(t, dtype=torch.float64)
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return Camera(K.to(dtype), T.to(dtype), width, height)


def gaussians(means, sigma, opacity, colors, dtype=torch.float64) -> Gaussians:
    means = torch.as_tensor(means, dtype=dtype).reshape(-1, 3)
    n = means.shape[0]
    return Gaussians(means=means, quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype).repeat(n, 1),
                     log_scales=torch.full((n, 3), math.log(sigma), dtype=dtype),
                     opacity_logits=torch.full((n,), math.log(opacity / (1 - opacity)), dtype=dtype),
                     colors=torch.as_tensor(colors, dtype=dtype).reshape(n, 3))


def test_single_gaussian_lands_where_the_pinhole_projects_it_at_its_depth():
    # one pixel convention with cameras.py: K from cameras.intrinsics (pixel centres at integer
    # coordinates, cx = (W - 1) / 2), and cameras.project says where a world point lands
    width, height = 64, 48
    K = intrinsics(50.0, width, height)
    cam = camera(width, height, deg=12.0, t=(0.05, -0.02, 0.1))
    cam = Camera(torch.tensor(K), cam.world_to_cam, width, height)
    # the world point that the camera sees at the centre of pixel (column 30, row 20), z = 0.8 m
    z = 0.8
    p_cam = np.array([(30 - K[0, 2]) / K[0, 0] * z, (20 - K[1, 2]) / K[1, 1] * z, z])
    T = cam.world_to_cam.numpy()
    p_world = T[:3, :3].T @ (p_cam - T[:3, 3])
    (u, v), depth = (a[0] for a in project(p_world[None], K, T))
    assert (u, v, depth) == (pytest.approx(30.0), pytest.approx(20.0), pytest.approx(z))
    out = render(gaussians(torch.tensor(p_world), sigma=0.02, opacity=0.7, colors=[1.0, 0.5, 0.2]), cam,
                 backend="torch")
    row, col = divmod(int(out.alpha.argmax()), cam.width)
    assert (row, col) == (20, 30)
    assert out.alpha[20, 30].item() == pytest.approx(0.7, abs=1e-9)  # the mean sits on that pixel centre
    # sub-pixel: the alpha-weighted centroid of pixel centres is the projected mean (symmetric footprint)
    for shift in ((0.3, -0.2), (-0.45, 0.25)):
        q_cam = np.array([(30 + shift[0] - K[0, 2]) / K[0, 0] * z, (20 + shift[1] - K[1, 2]) / K[1, 1] * z, z])
        q_world = T[:3, :3].T @ (q_cam - T[:3, 3])
        (u, v), _ = (a[0] for a in project(q_world[None], K, T))
        a = render(gaussians(torch.tensor(q_world), sigma=0.02, opacity=0.7, colors=[1.0, 0.5, 0.2]), cam,
                   backend="torch").alpha
        rows, cols = torch.meshgrid(torch.arange(cam.height), torch.arange(cam.width), indexing="ij")
        w = a / a.sum()
        assert (w * cols).sum().item() == pytest.approx(u, abs=0.02)
        assert (w * rows).sum().item() == pytest.approx(v, abs=0.02)
    covered = out.alpha > 0
    assert torch.allclose(out.depth[covered], torch.tensor(z, dtype=torch.float64), atol=1e-9)
    assert (out.depth[~covered] == 0).all()
    assert torch.allclose(out.rgb[20, 30], torch.tensor([0.7, 0.35, 0.14], dtype=torch.float64))


def test_nearer_gaussian_occludes_whatever_the_input_order():
    cam = camera()
    red_near = ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    blue_far = ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
    images = []
    for first, second in ((red_near, blue_far), (blue_far, red_near)):
        g = gaussians([first[0], second[0]], sigma=0.05, opacity=0.95, colors=[first[1], second[1]])
        out = render(g, cam, backend="torch", background=(0.0, 1.0, 0.0))
        r, gr, b = out.rgb[24, 32].tolist()  # both project to (u, v) = (32, 24) px
        assert r > 0.9 and b < 0.1 and gr < 0.02
        assert 1.0 < out.depth[24, 32].item() < 1.1
        images.append(out.rgb)
    assert torch.allclose(images[0], images[1], atol=1e-12)
    assert images[0][0, 0].tolist() == [0.0, 1.0, 0.0]  # nothing there: the background


def test_gaussians_behind_the_camera_or_beyond_far_are_not_drawn():
    cam = camera()
    g = gaussians([[0.0, 0.0, -1.0], [0.0, 0.0, 150.0]], 0.1, 0.9, [[1.0, 1.0, 1.0]] * 2)
    out = render(g, cam, backend="torch")
    assert out.alpha.abs().max() == 0 and out.rgb.abs().max() == 0


def test_extreme_gaussians_give_finite_images_and_gradients_in_float32():
    torch.manual_seed(1)
    n = 300
    f = {"means": torch.randn(n, 3) * 2 + torch.tensor([0.0, 0.0, 1.0]), "quats": torch.randn(n, 4),
         "log_scales": torch.randn(n, 3) * 3 - 3, "opacity_logits": torch.randn(n) * 3, "colors": torch.rand(n, 3)}
    f["log_scales"][:5] = 6.0  # 400 m wide
    f["log_scales"][5:10, 0] = -15.0  # needles
    f["means"][10] = torch.tensor([0.0, 0.0, 0.011])  # just beyond the near plane
    f = {k: v.requires_grad_() for k, v in f.items()}
    out = render(Gaussians(**f), camera(80, 60, 70.0, dtype=torch.float32), backend="torch")
    (out.rgb.sum() + out.depth.sum() + out.alpha.sum()).backward()
    assert all(torch.isfinite(t).all() for t in (out.rgb, out.depth, out.alpha))
    assert all(torch.isfinite(v.grad).all() for v in f.values())
    assert out.alpha.max() <= 1.0


# Gradients against central differences: float64, 24x20 px, 4 overlapping Gaussians, moderate
# opacities (no 0.99 clamp, no early stop), every element of every field.
FD_EPS = 1e-6
FD_RTOL = 1e-6  # max |autograd - finite difference| / max |finite difference|, per field (measured <= 3e-8)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    cam = camera(width=24, height=20, f=30.0, deg=5.0)
    n = 4
    fields = {
        "means": torch.tensor([[0.0, 0.0, 1.0]]) + 0.08 * torch.randn(n, 3),
        "quats": torch.randn(n, 4),
        "log_scales": torch.log(0.04 + 0.04 * torch.rand(n, 3)),
        "opacity_logits": torch.empty(n).uniform_(-0.8, 1.2),
        "colors": torch.rand(n, 3),
    }
    fields = {k: v.double().requires_grad_() for k, v in fields.items()}
    weights = [torch.rand(cam.height, cam.width, k, dtype=torch.float64) for k in (3, 1, 1)]

    def loss(f):
        out = render(Gaussians(**f), cam, backend="torch", background=(0.2, 0.3, 0.4))
        return (out.rgb * weights[0]).sum() + (out.depth[..., None] * weights[1]).sum() \
            + (out.alpha[..., None] * weights[2]).sum()

    assert render(Gaussians(**fields), cam, backend="torch").alpha.max() > 0.5  # the Gaussians are in view
    loss(fields).backward()
    with torch.no_grad():
        for name, x in fields.items():
            fd = torch.zeros_like(x)
            for i in range(x.numel()):
                orig = x.view(-1)[i].item()
                x.view(-1)[i] = orig + FD_EPS
                up = loss(fields)
                x.view(-1)[i] = orig - FD_EPS
                down = loss(fields)
                x.view(-1)[i] = orig
                fd.view(-1)[i] = (up - down) / (2 * FD_EPS)
            rel = ((x.grad - fd).abs().max() / fd.abs().max()).item()
            assert fd.abs().max() > 0 and rel < FD_RTOL, f"{name}: relative gradient error {rel:.2e}"


def test_recovers_a_translated_mean_from_a_target_image():
    cam = camera()
    true_mean = torch.tensor([0.03, -0.02, 0.6], dtype=torch.float64)
    target = render(gaussians(true_mean, 0.02, 0.9, [0.9, 0.6, 0.3]), cam, backend="torch")
    g = gaussians(true_mean + torch.tensor([0.02, 0.015, -0.02], dtype=torch.float64), 0.02, 0.9, [0.9, 0.6, 0.3])
    g.means.requires_grad_()
    opt = torch.optim.Adam([g.means], lr=2e-3)
    for _ in range(80):  # Adam, 2 mm per step at most
        out = render(g, cam, backend="torch")
        loss = l1(out.rgb, target.rgb) + depth_l1(out.depth, target.depth, target.alpha > 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (g.means.detach() - true_mean).norm().item() < 1e-3  # from 32 mm off to within 1 mm


def test_several_cameras_in_one_pass_match_one_camera_at_a_time():
    torch.manual_seed(2)
    n = 60
    fields = {"means": torch.tensor([[0.0, 0.0, 1.0]]) + 0.1 * torch.randn(n, 3), "quats": torch.randn(n, 4),
              "log_scales": torch.log(0.01 + 0.02 * torch.rand(n, 3)), "opacity_logits": torch.randn(n),
              "colors": torch.rand(n, 3)}
    fields = {k: v.double() for k, v in fields.items()}
    cams = [camera(), camera(40, 30, 35.0, deg=20.0, t=(0.1, 0.0, 0.05)), camera(deg=-15.0, t=(-0.1, 0.02, 0.0))]
    grads = []
    for together in (True, False):
        f = {k: v.clone().requires_grad_() for k, v in fields.items()}
        g = Gaussians(**f)
        outs = render_views(g, cams, backend="torch") if together else [render(g, c, backend="torch") for c in cams]
        sum((o.rgb.sum(-1) * (k + 1) + o.depth + o.alpha).sum() for k, o in enumerate(outs)).backward()
        grads.append(({k: v.grad for k, v in f.items()}, outs))
    (ga, a), (gb, b) = grads
    for x, y in zip(a, b):
        assert x.rgb.shape == y.rgb.shape
        assert all(torch.allclose(getattr(x, k), getattr(y, k), atol=1e-12) for k in ("rgb", "depth", "alpha"))
    assert all(torch.allclose(ga[k], gb[k], atol=1e-10) for k in fields)


def test_auto_backend_on_cpu_is_the_torch_backend():
    g, cam = gaussians([0.0, 0.0, 1.0], 0.05, 0.8, [1.0, 1.0, 1.0]), camera()
    a, b = render(g, cam), render(g, cam, backend="torch")
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth) and torch.equal(a.alpha, b.alpha)


def test_no_gaussians_gives_the_background_and_zero_gradients():
    cam = camera()
    g = gaussians(torch.zeros(0, 3), 0.05, 0.5, torch.zeros(0, 3))
    g.means.requires_grad_()
    out = render(g, cam, backend="torch", background=(0.1, 0.2, 0.3))
    assert torch.allclose(out.rgb, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64).expand(48, 64, 3))
    out.rgb.sum().backward()
    assert g.means.grad.shape == (0, 3)


@pytest.mark.parametrize("field, make", [
    ("means", lambda g: g.update(means=torch.zeros(3, 2))),
    ("means", lambda g: g["means"].__setitem__((1, 0), float("nan"))),
    ("quats", lambda g: g.update(quats=torch.ones(3, 3))),
    ("quats", lambda g: g.update(quats=torch.zeros(3, 4))),
    ("log_scales", lambda g: g.update(log_scales=torch.zeros(2, 3))),
    ("opacity_logits", lambda g: g.update(opacity_logits=torch.zeros(3, 1))),
    ("colors", lambda g: g.update(colors=torch.zeros(3, 3, dtype=torch.float64))),
])
def test_bad_gaussians_are_rejected_naming_the_field(field, make):
    g = {"means": torch.zeros(3, 3), "quats": torch.ones(3, 4), "log_scales": torch.zeros(3, 3),
         "opacity_logits": torch.zeros(3), "colors": torch.zeros(3, 3)}
    make(g)
    with pytest.raises(ValueError, match=field):
        Gaussians(**g)


@pytest.mark.parametrize("field, kwargs", [
    ("width", {"width": 0}), ("height", {"height": -4}), ("width", {"width": 32.0}),
    ("K", {"K": torch.eye(4)}), ("world_to_cam", {"world_to_cam": 2 * torch.eye(4)}),
    ("near", {"near": 0.0}),
])
def test_bad_cameras_are_rejected_naming_the_field(field, kwargs):
    args = {"K": torch.tensor([[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]]), "world_to_cam": torch.eye(4),
            "width": 32, "height": 24, **kwargs}
    with pytest.raises(ValueError, match=field):
        Camera(**args)


def test_bad_backend_or_background_is_rejected():
    g, cam = gaussians([0.0, 0.0, 1.0], 0.05, 0.8, [1.0, 1.0, 1.0]), camera()
    with pytest.raises(ValueError, match="backend"):
        render(g, cam, backend="opengl")
    with pytest.raises(ValueError, match="background"):
        render(g, cam, background=(0.0, 0.0))


def test_ssim_l1_and_depth_l1():
    torch.manual_seed(0)
    x = torch.rand(2, 20, 24, 3)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(x[0], x[0]).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(x, torch.rand(2, 20, 24, 3)).item() < 0.2
    assert ssim(x[0], (x[0] + 0.05).clamp(0, 1)).item() > 0.9

    a, b = torch.zeros(4, 5, 3), torch.ones(4, 5, 3)
    b[0, 0] = 3.0
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 0] = mask[1, 1] = True
    assert l1(a, b).item() == pytest.approx((57 + 9) / 60)
    assert l1(a, b, mask).item() == pytest.approx((9 + 3) / 6)
    assert l1(a, b, torch.zeros(4, 5)).item() == 0.0

    pred = torch.full((3, 4), 2.0, requires_grad=True)
    target = torch.full((3, 4), 1.5)
    target[0, 0], target[0, 1], target[1, 0] = float("nan"), 0.0, 4.0
    loss = depth_l1(pred, target)
    assert loss.item() == pytest.approx((9 * 0.5 + 2.0) / 10)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 0] == 0 and pred.grad[0, 1] == 0
    valid = torch.ones(3, 4, dtype=torch.bool)
    valid[1, 0] = False
    assert depth_l1(pred, target, valid).item() == pytest.approx(0.5)


# gsplat (CUDA) against the torch backend on the same scene, float32. Tolerances: images
# within 1e-2 max abs (rgb, alpha; depth where alpha > 0.5, in m), and for every field the
# gradients' cosine similarity > 0.99. Opacities stay below 0.9 so the backends' different
# alpha clamps (0.99 torch, 0.999 gsplat) never act. Written against gsplat's opacity-aware
# footprint bound (<= 3.33 sigma, as here); a gsplat that cuts at 3 sigma differs by up to
# opacity x e^-4.5 ~ 0.01 at footprint edges.
@pytest.mark.skipif(not (torch.cuda.is_available() and importlib.util.find_spec("gsplat")),
                    reason="needs CUDA and gsplat")
def test_gsplat_backend_matches_torch_backend():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    n = 300
    base = {
        "means": torch.tensor([[0.0, 0.0, 1.0]]) + torch.tensor([0.3, 0.2, 0.2]) * (torch.rand(n, 3) - 0.5),
        "quats": torch.randn(n, 4),
        "log_scales": torch.log(0.005 + 0.02 * torch.rand(n, 3)),
        "opacity_logits": torch.empty(n).uniform_(-2.0, 2.0),
        "colors": torch.rand(n, 3),
    }
    cam = camera(width=160, height=120, f=140.0, deg=5.0, dtype=torch.float32)
    cam = Camera(cam.K.to(dev), cam.world_to_cam.to(dev), cam.width, cam.height)
    weights = torch.rand(3, cam.height, cam.width, device=dev)
    with torch.no_grad():  # one depth mask for both, so both losses are the same function
        weights[2] *= render(Gaussians(**{k: v.to(dev) for k, v in base.items()}), cam, backend="torch").alpha > 0.5
    results = {}
    for backend in ("torch", "gsplat"):
        f = {k: v.to(dev).requires_grad_() for k, v in base.items()}
        out = render(Gaussians(**f), cam, backend=backend, background=(0.1, 0.2, 0.3))
        ((out.rgb.sum(-1) * weights[0]).sum() + (out.alpha * weights[1]).sum()
         + (out.depth * weights[2]).sum()).backward()
        results[backend] = (out, {k: v.grad for k, v in f.items()})
    (a, ga), (b, gb) = results["torch"], results["gsplat"]
    assert (a.rgb - b.rgb).abs().max() < 1e-2
    assert (a.alpha - b.alpha).abs().max() < 1e-2
    solid = (a.alpha > 0.5) & (b.alpha > 0.5)
    assert (a.depth - b.depth)[solid].abs().max() < 1e-2
    for name in base:
        cos = torch.nn.functional.cosine_similarity(ga[name].flatten(), gb[name].flatten(), dim=0)
        assert cos > 0.99, f"{name}: gradient cosine similarity {cos:.4f}"
