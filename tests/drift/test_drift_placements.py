"""Placement physics: rotations are proper, keep norms, keep gravity at 1 g, treat acc and gyro alike."""

from __future__ import annotations

import numpy as np
import pytest

from fedhar.drift import PLACEMENTS, Placement, placement, rotate, rotation_matrix
from fedhar.exceptions import ConfigError

NAMES = PLACEMENTS.names()


def test_builtins_present():
    assert {"waist", "trouser_pocket", "wrist", "bag", "hand"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_rotation_is_proper_and_keeps_norms(name):
    rng = np.random.default_rng(1)
    v = rng.normal(size=(200, 3)) * 3
    for _ in range(10):  # several random mountings
        R = rotation_matrix(placement(name), rng)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
        acc, gyro = rotate(v, v[::-1], R)
        assert np.allclose(np.linalg.norm(acc, axis=1), np.linalg.norm(v, axis=1), rtol=1e-12)
        assert np.allclose(np.linalg.norm(gyro, axis=1), np.linalg.norm(v[::-1], axis=1), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gravity_stays_one_g_at_rest(name):
    rng = np.random.default_rng(2)
    for g in ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0]):
        static = np.tile(g, (50, 1))
        for _ in range(10):
            acc, _ = rotate(static, None, rotation_matrix(placement(name), rng))
            assert np.allclose(np.linalg.norm(acc, axis=1), 1.0, atol=1e-12)


def test_acc_and_gyro_rotated_consistently():
    rng = np.random.default_rng(3)
    R = rotation_matrix(placement("wrist"), rng)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    ra, rb = rotate(a, b, R)
    assert np.allclose(rotate(b, a, R)[0], rb) and np.allclose(rotate(b, a, R)[1], ra)  # same R for both
    # a proper rotation maps cross products to cross products (angular velocity stays a valid axial vector)
    assert np.allclose(np.cross(ra, rb), rotate(np.cross(a, b), None, R)[0])


def test_fixed_orientations_are_distinct_and_plausible():
    up = np.array([[1.0, 0.0, 0.0]])  # the waist phone's x axis points up when standing
    readings = {n: rotate(up, None, rotation_matrix(placement({"base": n, "mounting_deg": 0})))[0][0] for n in NAMES}
    assert np.allclose(readings["waist"], [1, 0, 0])
    assert readings["trouser_pocket"][0] < -0.9  # upside down
    assert readings["bag"][2] > 0.99  # screen up
    assert readings["wrist"][1] < -0.99  # 12 o'clock towards the hand
    assert len({tuple(np.round(r, 3)) for r in readings.values()}) == len(NAMES)


def test_mounting_is_random_per_draw_with_the_given_spread():
    place = Placement("p", [0, 0, 0], mounting_deg=10.0)
    rng = np.random.default_rng(4)
    Rs = [rotation_matrix(place, rng) for _ in range(400)]
    angles = np.degrees([np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)) for R in Rs])
    assert np.mean(angles) == pytest.approx(10.0 * np.sqrt(2 / np.pi), rel=0.15)  # mean |N(0, 10 deg)|
    assert np.allclose(rotation_matrix(Placement("q", [10, 20, 30])), rotation_matrix(Placement("q", [10, 20, 30])))
    with pytest.raises(ConfigError, match="needs an rng"):
        rotation_matrix(place)


def test_placement_specs_and_errors():
    assert placement({"base": "bag", "mounting_deg": 0}).name == "bag_custom"
    assert placement({"name": "belt", "rotation_deg": [0, 0, 90]}).rotation_deg == [0.0, 0.0, 90.0]
    with pytest.raises(ConfigError, match="rotation_deg"):
        Placement("bad", [0, 90])
    with pytest.raises(ConfigError, match="mounting_deg"):
        Placement("bad", [0, 0, 0], mounting_deg=-1)
    with pytest.raises(ConfigError, match="Valid choices: bag, hand"):
        placement("belt_clip", "phases[0].placement")
