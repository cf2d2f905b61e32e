"""Rotation augmentation: one random 3-D rotation per window, applied alike to every sensor triad.

Why the same rotation for accelerometer and gyroscope: both are measured in the device's frame,
so a device worn in another orientation sees both triads turned by the same matrix. Rotations
come from :class:`scipy.spatial.transform.Rotation` (uniform over SO(3) when ``max_degrees`` is
180; otherwise a uniform axis and an angle uniform in ``[0, max_degrees]``). A zero-filled
(absent) sensor stays exactly zero, so presence detection is unaffected.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from fedhar.data.dataset import sensor_of
from fedhar.training.config import AugmentConfig

AXES = ("x", "y", "z")


def rotation_groups(channels: Sequence[str]) -> list[list[int]]:
    """Index triplets ``[x, y, z]`` of each sensor with all three axes among ``channels``."""
    groups: dict[str, dict[str, int]] = {}
    for i, ch in enumerate(channels):
        axis = ch.rsplit("_", 1)[-1] if "_" in ch else ""
        if axis in AXES:
            groups.setdefault(sensor_of(ch), {})[axis] = i
    return [[g[a] for a in AXES] for g in groups.values() if len(g) == 3]


def random_rotations(n: int, max_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3, 3)`` rotation matrices."""
    if max_degrees >= 180:
        return Rotation.random(n, random_state=rng).as_matrix()
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(0.0, max_degrees, size=(n, 1)))
    return Rotation.from_rotvec(axis * angle).as_matrix()


def rotate(x: torch.Tensor, groups: Sequence[Sequence[int]], rot: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, T]`` with each triad in ``groups`` turned by its window's matrix ``rot[b]``;
    in ``x``'s own precision even inside a bf16 autocast region (the training loop's), where the
    product would otherwise come back in bf16."""
    out = x.clone()
    with torch.autocast(x.device.type, enabled=False):
        for idx in groups:
            i = torch.as_tensor(list(idx))
            out[:, i] = torch.einsum("bij,bjt->bit", rot.to(x.dtype), x[:, i])
    return out


class RotationAugment:
    """Callable on a training batch; draws from its own generator, seeded per run, so augmented
    runs stay reproducible and the batch order is unchanged."""

    def __init__(self, cfg: AugmentConfig, channels: Sequence[str], seed: int = 0) -> None:
        self.cfg = cfg
        self.groups = rotation_groups(channels)
        self.rng = np.random.default_rng((seed, 0xA06))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.groups or x.ndim != 3:
            return x
        rot = np.broadcast_to(np.eye(3), (len(x), 3, 3)).copy()
        chosen = self.rng.random(len(x)) < self.cfg.probability
        if chosen.any():
            rot[chosen] = random_rotations(int(chosen.sum()), self.cfg.max_degrees, self.rng)
        return rotate(x, self.groups, torch.from_numpy(rot).float())


def build_augment(cfg: AugmentConfig, channels: Sequence[str] | None, seed: int = 0) -> RotationAugment | None:
    """The configured augmentation for data with ``channels``, or None when off (or no triads)."""
    if not cfg.rotation or not channels:
        return None
    aug = RotationAugment(cfg, channels, seed)
    return aug if aug.groups else None
