"""Placements: where on the body the device sits, simulated as a change of orientation.

Physics. An accelerometer measures specific force (acceleration minus gravity, so +1 g "up" at
rest) and a gyroscope angular velocity, both as vectors in the device's own frame. Carrying the
same motion to a device in another orientation is a change of basis: with ``R`` the rotation
from the waist reference frame to the device frame, ``f_dev = R f_ref`` and ``w_dev = R w_ref``
(angular velocity is a pseudovector, which transforms like a vector under proper rotations).
``R`` is a proper rotation (orthogonal, det +1), so vector norms are preserved exactly: at rest
the accelerometer still reads 1 g, only its direction across the axes changes.

Each placement has a fixed orientation (intrinsic ``xyz`` Euler angles of the device frame in
the waist frame of the HAPT phone: x up, y sideways, z out of the belly when standing) and an
optional random mounting: an extra rotation of random axis and normally distributed angle
(std ``mounting_deg``), drawn once per mounting, as when a phone goes back into a pocket.

Limits. This models orientation only. A real change of body location also changes the motion
itself, which a rotation of the waist signal cannot produce: lever-arm (centripetal and
tangential) accelerations of a limb, the pendulum swing of a wrist or thigh and the orientation
changes it causes within every stride, the damping and rattling of a loose pocket or bag, and
the hand's own movements. Orientation is also held constant within a mounting (no slippage).
The simulated shift is therefore the gravity-direction and axis-mixing part of a placement
change, its first-order effect on orientation-sensitive models, not the full shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from fedhar.exceptions import ConfigError, DataError
from fedhar.registry import Registry
from fedhar.schema import named_or_mapping


@dataclass
class Placement:
    """A body location as a device orientation relative to the waist reference."""

    name: str
    rotation_deg: list[float]
    """Intrinsic ``xyz`` Euler angles (degrees) of the device frame in the waist frame."""
    mounting_deg: float = 0.0
    """Std (degrees) of an extra random rotation drawn per mounting."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"placement: `name` must be a non-empty string; got {self.name!r}.")
        angles = list(self.rotation_deg) if isinstance(self.rotation_deg, (list, tuple)) else None
        if angles is None or len(angles) != 3 or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in angles
        ):
            raise ConfigError(
                f"placement `{self.name}`: `rotation_deg` must be three finite angles (intrinsic x, y, z "
                f"Euler, degrees); got {self.rotation_deg!r}."
            )
        self.rotation_deg = [float(a) for a in angles]
        m = self.mounting_deg
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
            raise ConfigError(f"placement `{self.name}`: `mounting_deg` must be a number >= 0; got {m!r}.")


PLACEMENTS: Registry[Placement] = Registry("placement")
"""Built-in placements: plausible typical orientations, not measured ones."""

for _p in (
    Placement("waist", [0.0, 0.0, 0.0]),  # HAPT: phone upright on a belt, screen out
    # front trouser pocket: upside down (top towards the knee), screen out, tilted 15 deg with the thigh
    Placement("trouser_pocket", [0.0, -15.0, 180.0], mounting_deg=10.0),
    # watch on the wrist, arm hanging: 12 o'clock (y) towards the hand, screen (z) facing sideways
    Placement("wrist", [-90.0, 90.0, 0.0], mounting_deg=15.0),
    # lying flat in a bag, screen (z) up; bags shift a lot
    Placement("bag", [0.0, 90.0, 0.0], mounting_deg=30.0),
    # held in front of the chest for reading: top (y) up and 40 deg forward, screen towards the face
    Placement("hand", [140.0, 0.0, 90.0], mounting_deg=10.0),
):
    PLACEMENTS.register(_p.name, _p)


def placement(spec: str | Mapping[str, Any] | Placement, where: str = "placement") -> Placement:
    """A placement from a registry name, a mapping of fields (optionally ``base: <name>`` plus
    overrides; the name then defaults to ``<base>_custom``) or a placement (returned as is)."""
    return named_or_mapping(spec, PLACEMENTS, Placement, "placement", where)


def rotation_matrix(place: Placement, rng: np.random.Generator | None = None) -> np.ndarray:
    """``R`` (3x3, det +1) with ``x_device = R @ x_waist``, including a random mounting drawn
    from ``rng`` when the placement has ``mounting_deg > 0``."""
    orient = Rotation.from_euler("xyz", place.rotation_deg, degrees=True)
    if place.mounting_deg > 0:
        if rng is None:
            raise ConfigError(f"placement `{place.name}` has a random mounting: rotation_matrix needs an rng.")
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        angle = math.radians(place.mounting_deg) * rng.standard_normal()
        orient = orient * Rotation.from_rotvec(angle * axis)  # perturbation in the device frame
    # columns of orient.as_matrix() are the device axes in waist coordinates -> transpose
    return orient.as_matrix().T


def rotate(acc: np.ndarray, gyro: np.ndarray | None, R: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the same rotation ``R`` to ``(T, 3)`` accelerometer and gyroscope rows."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise DataError(f"rotate: `R` must be a 3x3 matrix; got shape {R.shape}.")
    acc = np.asarray(acc, dtype=np.float64)
    if acc.ndim != 2 or acc.shape[1] != 3:
        raise DataError(f"rotate: `acc` must have shape (T, 3); got {acc.shape}.")
    if gyro is None:
        return acc @ R.T, None
    gyro = np.asarray(gyro, dtype=np.float64)
    if gyro.shape != acc.shape:
        raise DataError(f"rotate: `gyro` must have shape {acc.shape} like `acc`; got {gyro.shape}.")
    return acc @ R.T, gyro @ R.T
