"""Synthetic, learnable inertial windows for smoke tests and demos (not a published dataset)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fedhar.data.dataset import WindowDataset, sensor_of
from fedhar.exceptions import DataError
from fedhar.registry import check_options

DEFAULT_CLASSES = ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying")
DEFAULT_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
_UNITS = {"acc": "g", "gyro": "rad/s", "mag": "uT"}


def _class_params(k: int) -> dict:
    """Deterministic signature of class ``k``: periodic or static, with its own gravity direction."""
    rng = np.random.default_rng(10_000 + k)
    dynamic = k % 2 == 0 if k >= 3 else True  # 0,1,2 move; then alternate static/moving
    g = rng.normal(size=3)
    g[2] += 2.0 * (1 if k % 3 else -1)
    return {
        "freq": 0.9 + 0.45 * k if dynamic else 0.0,
        "amp": (0.25 + 0.12 * (k % 4)) if dynamic else 0.02,
        "gravity": g / np.linalg.norm(g),
        "phase": rng.uniform(0, 2 * np.pi, size=3),
        "axis_gain": rng.uniform(0.4, 1.0, size=3),
    }


def make_synthetic(
    n_per_class: int = 40,
    classes: Sequence[str] = DEFAULT_CLASSES,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    window: int = 128,
    rate_hz: float = 50.0,
    subjects: int = 6,
    seed: int = 0,
    noise: float = 0.15,
) -> WindowDataset:
    """Class-dependent accelerometer/gyroscope-like windows a small model can learn.

    Each class has its own movement frequency and amplitude (static classes barely move) and its
    own gravity orientation on the accelerometer; each subject scales frequency and amplitude and
    tilts the device slightly, so subject splits are harder than random splits.

    Parameters
    ----------
    n_per_class : int
        Windows per class (spread over the subjects).
    classes : sequence of str
        Class names; any number of classes.
    channels : sequence of str
        ``<sensor>_<axis>`` names; ``acc`` channels get gravity (g), the others rotation-like
        signals (rad/s for ``gyro``).
    window : int
        Samples per window.
    rate_hz : float
        Sampling rate.
    subjects : int
        Number of subjects (ids ``1..subjects``).
    seed : int
        Seed of the noise, phases and subject variation.
    noise : float
        Standard deviation of the additive Gaussian noise.

    Returns
    -------
    WindowDataset
        Named ``synthetic``.
    """
    if n_per_class < 1 or window < 2 or subjects < 1 or rate_hz <= 0 or not classes or not channels:
        raise DataError(
            "make_synthetic: need n_per_class >= 1, window >= 2, subjects >= 1, rate_hz > 0 and non-empty "
            f"classes/channels; got n_per_class={n_per_class}, window={window}, subjects={subjects}, "
            f"rate_hz={rate_hz}."
        )
    rng = np.random.default_rng(seed)
    subj_freq = 1.0 + 0.08 * rng.standard_normal(subjects)
    subj_amp = 1.0 + 0.15 * rng.standard_normal(subjects)
    subj_tilt = 0.15 * rng.standard_normal((subjects, 3))
    t = np.arange(window) / rate_hz
    axes = {"x": 0, "y": 1, "z": 2}
    n = n_per_class * len(classes)
    X = np.empty((n, len(channels), window), dtype=np.float32)
    y = np.repeat(np.arange(len(classes)), n_per_class)
    subject = np.concatenate([rng.permutation(np.arange(n_per_class) % subjects) for _ in classes])
    for i in range(n):
        p, s = _class_params(int(y[i])), int(subject[i])
        f = p["freq"] * subj_freq[s]
        phi = rng.uniform(0, 2 * np.pi)
        g = p["gravity"] + subj_tilt[s]
        g = g / np.linalg.norm(g)
        for c, ch in enumerate(channels):
            sensor, ax = sensor_of(ch), axes.get(ch[-1], c % 3)
            wave = np.sin(2 * np.pi * f * t + phi + p["phase"][ax]) + 0.3 * np.sin(4 * np.pi * f * t + phi)
            amp = p["amp"] * p["axis_gain"][ax] * subj_amp[s]
            base = g[ax] if sensor.endswith("acc") else 0.0
            scale = 1.0 if sensor.endswith("acc") else 2.0
            X[i, c] = base + scale * amp * wave + noise * rng.standard_normal(window)
    return WindowDataset(
        X=X, y=y, subject=subject + 1, channels=tuple(channels),
        units=tuple(_UNITS.get(sensor_of(ch).rsplit("_", 1)[-1], "unknown") for ch in channels),
        rate_hz=rate_hz, classes=tuple(classes), name="synthetic",
    )


def load_synthetic(path: str = "synthetic", *, nan_policy: str = "error", **options) -> WindowDataset:
    """Loader-registry entry: ``path`` is ignored; ``options`` go to :func:`make_synthetic`."""
    import inspect

    check_options(options, list(inspect.signature(make_synthetic).parameters), "data format `synthetic`")
    return make_synthetic(**options)  # generated data is always finite: nan_policy has nothing to do
