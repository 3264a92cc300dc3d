"""The safety filter's link spheres cover the arm: the URDF collision shapes of the guarded links
(robot_dyn.safety.coverage.GUARDED_LINKS) stick out of the union of the spheres by at most 1 cm,
worst case over random postures within the joint limits.

The spheres come from configs/safety.yaml; SAFETY_COVERAGE_CONFIG=path checks another file
(e.g. a candidate `links:` section before it is applied). Surface points 4 mm apart: the true
gap exceeds the measured one by at most 3 mm (0.75 spacing)."""
import dataclasses
import os

import coal
import numpy as np
import pytest
from scipy.spatial import cKDTree

from robot_dyn.paths import config_path
from robot_dyn.robots import load_robot
from robot_dyn.robots.collision import shape_surface_points
from robot_dyn.safety.coverage import GUARDED_LINKS, random_postures, uncovered_distance
from robot_dyn.safety.sets import LinkSphere, load_safe_sets

CONFIG = os.environ.get("SAFETY_COVERAGE_CONFIG") or config_path("safety.yaml")
BOUND = 0.01  # m
SPACING = 0.004  # m


@pytest.mark.parametrize("name", ["panda", "fr3", "iiwa14"])
def test_link_spheres_cover_the_guarded_links(name):
    robot = load_robot(name)
    sets = load_safe_sets(robot, CONFIG)
    result = uncovered_distance(robot, sets, GUARDED_LINKS[name], random_postures(robot, 50, seed=7), SPACING)
    gaps = {link: f"{gap * 1000:.1f} mm" for link, gap in result["per_link"].items()}
    assert result["overall"] <= BOUND, f"{CONFIG}: {name}'s spheres leave collision shapes uncovered by {gaps}"


def test_uncovered_distance_of_a_known_case():
    """iiwa link 7 is a cylinder (radius 5 cm, z 0 to 3.5 cm in its frame): a 4 cm sphere at the
    frame's origin leaves its rim's edge, hypot(5, 3.5) = 6.10 cm away, 2.10 cm out, in any posture."""
    robot = load_robot("iiwa14")
    base = load_safe_sets(robot, CONFIG)
    sets = dataclasses.replace(base, spheres=(LinkSphere("flange", "lbr_link_7", np.zeros(3), 0.04),), end_effector=0)
    result = uncovered_distance(robot, sets, ["lbr_link_7"], random_postures(robot, 3))
    assert result["per_link"]["lbr_link_7"] == pytest.approx(np.hypot(0.05, 0.035) - 0.04, abs=1e-6)
    sets = dataclasses.replace(base, spheres=(LinkSphere("flange", "lbr_link_ee", np.zeros(3), 0.07),), end_effector=0)
    assert uncovered_distance(robot, sets, ["lbr_link_7"], random_postures(robot, 3))["overall"] == 0.0


@pytest.mark.parametrize("shape", [coal.Sphere(0.05), coal.Cylinder(0.025, 0.14), coal.Capsule(0.04, 0.12)],
                         ids=["sphere", "cylinder", "capsule"])
def test_surface_points_lie_on_the_surface_and_cover_it(shape):
    points = shape_surface_points(shape, 0.005)
    r, h = shape.radius, getattr(shape, "halfLength", 0.0)
    rho, z = np.hypot(points[:, 0], points[:, 1]), points[:, 2]
    if isinstance(shape, coal.Sphere):
        on = np.isclose(np.linalg.norm(points, axis=1), r)
    elif isinstance(shape, coal.Cylinder):
        on = (np.isclose(rho, r) & (np.abs(z) <= h + 1e-12)) | (np.isclose(np.abs(z), h) & (rho <= r + 1e-12))
    else:
        on = np.isclose(np.linalg.norm(points - np.c_[0 * z, 0 * z, np.clip(z, -h, h)], axis=1), r)
    assert on.all()
    fine = shape_surface_points(shape, 0.001)  # every surface point lies within 0.75 spacing of a sample
    assert cKDTree(points).query(fine)[0].max() < 0.75 * 0.005
