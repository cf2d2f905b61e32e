"""Rotation augmentation: vector norms kept, accelerometer and gyroscope turned alike, absent
sensors left at zero, reproducible, and used by the one training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedhar.exceptions import ConfigError
from fedhar.training.augment import RotationAugment, build_augment, random_rotations, rotate, rotation_groups
from fedhar.training.config import AugmentConfig, TrainConfig

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


def windows(n: int = 8, T: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 6, T)).astype(np.float32))


def test_groups_are_axis_triads_in_xyz_order():
    assert rotation_groups(CHANNELS) == [[0, 1, 2], [3, 4, 5]]
    assert rotation_groups(("acc_z", "acc_x", "acc_y", "temp")) == [[1, 2, 0]]
    assert rotation_groups(("acc_x", "acc_y")) == []  # no full triad: nothing to rotate


def test_rotation_preserves_norms_and_turns_acc_and_gyro_alike():
    x = windows()
    aug = RotationAugment(AugmentConfig(rotation=True), CHANNELS, seed=3)
    y = aug(x)
    assert not torch.allclose(x, y)
    for sl in (slice(0, 3), slice(3, 6)):
        assert torch.allclose(x[:, sl].norm(dim=1), y[:, sl].norm(dim=1), atol=1e-5)
    # The same matrix for both triads: solve R from acc, apply it to gyro.
    for b in range(len(x)):
        acc, acc_r = x[b, :3].double(), y[b, :3].double()
        R = acc_r @ torch.linalg.pinv(acc)
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-4)
        assert torch.allclose(R @ x[b, 3:].double(), y[b, 3:].double(), atol=1e-4)


def test_absent_sensor_stays_zero_and_draws_are_reproducible():
    x = windows()
    x[:, 3:] = 0
    a = RotationAugment(AugmentConfig(rotation=True), CHANNELS, seed=1)(x)
    b = RotationAugment(AugmentConfig(rotation=True), CHANNELS, seed=1)(x)
    assert torch.equal(a, b) and torch.count_nonzero(a[:, 3:]) == 0


def test_max_degrees_bounds_the_angle_and_probability_zero_is_identity():
    R = random_rotations(200, 10.0, np.random.default_rng(0))
    angles = np.degrees(np.arccos(np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 10.0 + 1e-6 and angles.mean() > 2.0
    x = windows()
    assert torch.allclose(RotationAugment(AugmentConfig(rotation=True, probability=0.0), CHANNELS)(x), x)


def test_off_or_without_triads_builds_nothing_and_bad_values_name_the_key():
    assert build_augment(AugmentConfig(), CHANNELS) is None
    assert build_augment(AugmentConfig(rotation=True), ("token",)) is None
    with pytest.raises(ConfigError, match="train.augment.max_degrees"):
        AugmentConfig(max_degrees=0)
    with pytest.raises(ConfigError, match="train.augment.probability"):
        AugmentConfig(probability=2)


def test_training_loop_rotates_batches_and_skips_the_feature_cache():
    from fedhar.data.dataset import WindowDataset
    from fedhar.models.config import BackboneConfig, ModelConfig
    from fedhar.models.factory import build_model
    from fedhar.training.loop import fit

    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 6, 40)).astype(np.float32)
    y = np.arange(32) % 2
    ds = WindowDataset(X=X, y=y, subject=np.zeros(32, dtype=np.int64), channels=CHANNELS, units=("g",) * 3 + ("rad/s",) * 3,
                       classes=("a", "b"), rate_hz=20.0)
    seen = []

    def run(rotation: bool) -> list[dict]:
        model = build_model(ModelConfig(backbone=BackboneConfig(name="none", d_model=16)), CHANNELS, 40, ("a", "b"), seed=0)
        original = model.forward
        model.forward = lambda x: (seen.append(x.clone()), original(x))[1]
        cfg = TrainConfig(epochs=1, batch_size=16, trainable=["head"], progress=False, precision="fp32",
                          augment=AugmentConfig(rotation=rotation))
        return fit(model, ds, cfg, seed=0)

    run(False)
    assert not seen  # head only, no augmentation: the feature cache, no forward per batch
    run(True)
    assert len(seen) == 2 and not torch.allclose(seen[0], torch.from_numpy(X[:16]))


def test_rotation_inside_bf16_autocast_keeps_the_batch_in_fp32():
    """The training loop runs the batch under bf16 autocast; the rotated batch must stay fp32 and
    match the fp32 rotation (a bf16 product could not be written back into the fp32 batch)."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((4, 6, 10)).astype(np.float32))
    rot = torch.from_numpy(random_rotations(4, 180.0, rng)).float()
    plain = rotate(x, rotation_groups(CHANNELS), rot)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = rotate(x, rotation_groups(CHANNELS), rot)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
