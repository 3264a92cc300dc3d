"""The depth foreground mask (robot_dyn.perception.foreground) against MuJoCo's segmentation.

The rope scene is rendered in process at 96x72 with the pusher's tip resting on the rope and,
second, beside it at push height, so the arm and the pusher are in the box above the table and
must be left out. Measured with the node's defaults (padding 1 cm, components >= 5 px): IoU
0.94-0.97 per camera on top, 0.965-0.99 beside, no false positive; the pixels lost are rope
within the 1 cm padding of the tip (1-6 of ~100 a camera; with no padding the IoU was 1.0, the
sim's arm being the URDF's shapes). Without leaving out the arm the IoU is 0.30-0.82. The bound
0.9 allows about 10 lost pixels a camera, room for another renderer's rasterisation."""
import numpy as np
import pinocchio as pin
import pytest

from robot_dyn.bringup import schema
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.perception.foreground import (ArmSpheres, ForegroundError, ForegroundRegion, clean_mask,
                                             depth_mask_from_parameters, foreground_mask, hsv_mask, shape_spheres)
from robot_dyn.robots import load_robot

IOU_BOUND = 0.9
ROPE_HSV = ((170, 150, 20), (15, 255, 255))  # the rope's red-orange (rendered H 3-5, S 192-230); wraps around 180


def pusher_tip_at(robot, tip: np.ndarray, length: float) -> np.ndarray:
    """Joint positions putting the pusher tip at `tip` (world m), pointing down as at home (DLS IK)."""
    kin = RigidBody(robot)
    R_down = kin.ee_pose(robot.home)[1]
    flange = tip - R_down[:, 2] * length
    q = np.array(robot.home, float)
    for _ in range(100):
        p, R = kin.ee_pose(q)
        error = np.concatenate([flange - p, pin.log3(R_down @ R.T)])
        if np.linalg.norm(error) < 1e-9:
            break
        J = kin.ee_jacobian(q)
        q = q + J.T @ np.linalg.solve(J @ J.T + 1e-6 * np.eye(6), error)
    assert np.linalg.norm(kin.ee_pose(q)[0] - flange) < 1e-6
    return q


@pytest.fixture(scope="module")
def scene():
    """Two rendered sets of the rope scene (96x72): the tip on the rope, then beside it."""
    from robot_dyn.perception.episodes import RopePushSim, load_config
    from robot_dyn.perception.live import SimCameraCapture
    from robot_dyn.sim.deformables import random_rope_shape, set_flex_vertices

    config = load_config().with_images(96, 72, shadow_size=0)
    rope_sim = RopePushSim(config, render=False)  # the arm, the rope scene and the rig
    robot, rig, sim = rope_sim.robot, rope_sim.rig, rope_sim.backend
    rope = random_rope_shape(np.random.default_rng(5), config.rope, config.table)
    i = len(rope) // 2
    tangent = rope[i + 1] - rope[i - 1]
    normal = np.array([-tangent[1], tangent[0], 0.0]) / np.linalg.norm(tangent[:2])
    touch = config.rope.radius + config.pusher.tip_radius
    tips = {"on top": rope[i] + [0, 0, touch + 0.001],  # resting on the rope (1 mm gap)
            "beside": np.array([*(rope[i, :2] + normal[:2] * (touch + 0.001)),  # touching its side, 3 mm above the table
                                config.table.height + 0.003 + config.pusher.tip_radius])}
    shots = {}
    for name, tip in tips.items():
        q = pusher_tip_at(robot, tip, config.pusher.length)
        sim.reset(q)
        set_flex_vertices(sim.model, sim.data, rope)
        capture = SimCameraCapture(sim.model, rig)
        shots[name] = (capture.capture(sim.data), q)
        capture.close()
    params = {**schema.defaults(schema.PERCEPTION), "mask_source": "depth", "tool_offset": config.pusher.length}
    region, arm = depth_mask_from_parameters(params, robot)
    return {"shots": shots, "calibrations": capture.calibrations, "region": region, "arm": arm, "robot": robot,
            "config": config}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("pose", ["on top", "beside"])
def test_depth_mask_matches_segmentation_with_the_pusher_at_the_rope(scene, pose):
    shot, q = scene["shots"][pose]
    spheres = scene["arm"].at(q)
    ious, without_arm = [], []
    for frame, cal in zip(shot.frames, scene["calibrations"]):
        mask = foreground_mask(frame.depth, cal.K, cal.world_to_cam, scene["region"], frame.rgb, spheres)
        assert mask.shape == frame.mask.shape and mask.dtype == bool
        assert frame.mask.sum() > 50, f"{cal.name}: the rope should be in view"
        ious.append(iou(mask, frame.mask))
        assert (mask & ~frame.mask).sum() <= 0.02 * frame.mask.sum(), f"{cal.name}: arm or table taken for the rope"
        without_arm.append(iou(foreground_mask(frame.depth, cal.K, cal.world_to_cam, scene["region"]), frame.mask))
    assert min(ious) > IOU_BOUND, f"{pose}: IoU per camera {np.round(ious, 3)}"
    # the arm is in the box: without leaving it out the mask is far off in most cameras
    assert sorted(without_arm)[2] < 0.6, f"{pose}: IoU without arm exclusion {np.round(without_arm, 3)}"


def test_colour_test_keeps_the_rope_and_refuses_other_colours(scene):
    shot, q = scene["shots"]["on top"]
    spheres = scene["arm"].at(q)
    base = scene["region"]
    rope = ForegroundRegion(base.box_min, base.box_max, base.table_clearance, *ROPE_HSV, 0, base.min_component_px)
    blue = ForegroundRegion(base.box_min, base.box_max, base.table_clearance, (100, 50, 20), (130, 255, 255))
    for frame, cal in zip(shot.frames, scene["calibrations"]):
        plain = foreground_mask(frame.depth, cal.K, cal.world_to_cam, base, frame.rgb, spheres)
        coloured = foreground_mask(frame.depth, cal.K, cal.world_to_cam, rope, frame.rgb, spheres)
        assert (coloured & ~plain).sum() == 0 and coloured.sum() >= 0.95 * plain.sum()
        assert not foreground_mask(frame.depth, cal.K, cal.world_to_cam, blue, frame.rgb, spheres).any()
        # colour alone (no geometry) finds the rope too: the range is right
        assert iou(hsv_mask(frame.rgb, *ROPE_HSV), frame.mask) > 0.85
    with pytest.raises(ValueError, match="rgb: the region's colour test"):
        foreground_mask(shot.frames[0].depth, cal.K, cal.world_to_cam, rope)


def test_no_depth_return_gives_an_empty_mask(scene):
    cal, region = scene["calibrations"][0], scene["region"]
    for fill in (np.nan, 0.0, np.inf, -1.0):
        depth = np.full((cal.height, cal.width), fill, np.float32)
        mask = foreground_mask(depth, cal.K, cal.world_to_cam, region)
        assert mask.shape == depth.shape and not mask.any()
    # NaN pixels among valid ones are simply unused
    frame = scene["shots"]["on top"][0].frames[0]
    depth = frame.depth.copy()
    depth[:, : cal.width // 2] = np.nan
    mask = foreground_mask(depth, cal.K, cal.world_to_cam, region)
    assert not mask[:, : cal.width // 2].any()


def test_tool_and_collision_shapes_are_covered():
    import coal

    rng = np.random.default_rng(0)
    for shape in (coal.Cylinder(0.04, 0.14), coal.Capsule(0.03, 0.2), coal.Sphere(0.05), coal.Box(0.1, 0.2, 0.05)):
        centres, radii = shape_spheres(shape)
        if isinstance(shape, coal.Box):
            points = (rng.random((500, 3)) - 0.5) * np.asarray(shape.halfSide) * 2
        else:  # points on the side (the rims are the farthest from the spheres), or the sphere
            r, h = shape.radius, getattr(shape, "halfLength", 0.0)
            a = rng.uniform(0, 2 * np.pi, 500)
            points = np.column_stack([r * np.cos(a), r * np.sin(a), rng.uniform(-h, h, 500)]) * 0.999
        d = np.linalg.norm(points[:, None] - centres[None], axis=2)
        assert np.all(np.any(d <= radii[None] + 1e-12, axis=1)), type(shape).__name__
        assert radii.max() <= 1.12 * getattr(shape, "radius", np.inf) or isinstance(shape, coal.Box)

    robot = load_robot("panda")
    arm = ArmSpheres(robot, tool_length=0.10, tool_radius=0.012, padding=0.0)
    centres, radii = arm.at(robot.home)
    p, R = RigidBody(robot).ee_pose(robot.home)
    a, z = rng.uniform(0, 2 * np.pi, 300), rng.uniform(0, 0.10, 300)
    rod = p + (0.008 * np.cos(a))[:, None] * R[:, 0] + (0.008 * np.sin(a))[:, None] * R[:, 1] + z[:, None] * R[:, 2]
    u = rng.normal(size=(300, 3))
    tip = p + 0.10 * R[:, 2] + 0.012 * u / np.linalg.norm(u, axis=1, keepdims=True)
    for points in (rod, tip):  # the pusher: rod (radius 8 mm) and tip sphere (12 mm)
        assert np.all(np.min(np.linalg.norm(points[:, None] - centres[None], axis=2) - radii[None], axis=1) <= 1e-12)
    assert np.all(ArmSpheres(robot, 0.10, 0.012, padding=0.02).at(robot.home)[1] == radii + 0.02)


def test_clean_mask_opening_and_small_components():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True  # a 100 px blob
    mask[30, 30] = mask[30, 31] = True  # a 2 px speck
    mask[20, :] = True  # a 1 px line
    assert clean_mask(mask).sum() == mask.sum()
    assert np.array_equal(clean_mask(mask, open_px=3), np.pad(np.ones((10, 10), bool), ((5, 25), (5, 25))))
    kept = clean_mask(mask, min_component_px=5)
    assert kept[5:15, 5:15].all() and kept[20].all() and not kept[30, 30:32].any()


def _params(**changes):
    return {**schema.defaults(schema.PERCEPTION), "mask_source": "depth", **changes}


@pytest.mark.parametrize("changes, message", [
    ({"mask_box_min": [0.2, -0.4]}, "parameter 'mask_box_min' must be 3 finite numbers"),
    ({"mask_box_min": [0.2, -0.4, float("nan")]}, "parameter 'mask_box_min' must be 3 finite numbers"),
    ({"mask_box_max": [0.8, 0.4, 0.05]}, "parameter 'mask_box_min' must be below the upper corner on every axis"),
    ({"mask_table_clearance": -0.001}, "parameter 'mask_table_clearance' must be a finite number >= 0"),
    ({"mask_table_clearance": 0.5}, "parameter 'mask_table_clearance' .* leaves nothing of the box's height"),
    ({"mask_hsv_min": [0.0, 100.0, 50.0]}, "parameter 'mask_hsv_max' must be given with the other HSV bound"),
    ({"mask_hsv_min": [0.0, 0.0, 0.0], "mask_hsv_max": [180.0, 255.0, 255.0]},
     "parameter 'mask_hsv_max' hue must lie in \\[0, 179\\]"),
    ({"mask_hsv_min": [0.0, 0.0, 0.0], "mask_hsv_max": [10.0, 256.0, 255.0]},
     "parameter 'mask_hsv_max' must lie in \\[0, 255\\]"),
    ({"mask_hsv_min": [0.0, 200.0, 0.0], "mask_hsv_max": [10.0, 100.0, 255.0]},
     "parameter 'mask_hsv_min' saturation 200"),
    ({"mask_open_px": 2}, "parameter 'mask_open_px' must be 0, 1 or odd"),
    ({"mask_open_px": -1}, "parameter 'mask_open_px' must be an integer >= 0"),
    ({"mask_min_component_px": -3}, "parameter 'mask_min_component_px' must be an integer >= 0"),
    ({"mask_link_padding": -0.01}, "parameter 'mask_link_padding' must be a finite number >= 0"),
    ({"mask_tool_radius": float("inf")}, "parameter 'mask_tool_radius' must be a finite number >= 0"),
])
def test_bad_parameters_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        depth_mask_from_parameters(_params(**changes), load_robot("panda"))


def test_defaults_and_no_arm():
    region, arm = depth_mask_from_parameters(_params(), load_robot("panda"))
    assert region.box_min == (0.2, -0.4, 0.10) and region.hsv_min is None and arm is not None
    assert depth_mask_from_parameters(_params(mask_exclude_arm=False), load_robot("panda"))[1] is None
    with pytest.raises(ForegroundError, match="foreground region: 'box_max' must be 3 finite numbers") as info:
        ForegroundRegion((0, 0, 0), (1, 1))
    assert info.value.field == "box_max"
    with pytest.raises(ValueError, match="exclude_spheres: centres and radii must be finite and radii >= 0"):
        foreground_mask(np.ones((4, 4), np.float32), np.eye(3), np.eye(4), region, exclude_spheres=([[0, 0, 0]], [-1.0]))
    with pytest.raises(ValueError, match="depth: expected \\(H, W\\)"):
        foreground_mask(np.ones(4, np.float32), np.eye(3), np.eye(4), region)
