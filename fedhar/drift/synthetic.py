"""Generated HAPT-like streams, for tests and for trying a scenario without the real data.

Never the default source: simulations read the real HAPT recordings (``data.source: hapt``).
Each recording is blocks of standing, walking, sitting and lying with gravity along a
posture-dependent axis, a 2 Hz walking bounce, and sensor noise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fedhar.data.loaders.hapt import CLASSES, HaptStreams, SensorStream

RATE = 50.0
# (HAPT class index, seconds) blocks of one recording; -1 is unlabelled
BLOCKS = ((-1, 2), (4, 12), (0, 12), (3, 12), (5, 12), (-1, 2))


def _recording(experiment: int, subject: int, rng: np.random.Generator) -> SensorStream:
    accs, gyros, labels = [], [], []
    for lab, sec in BLOCKS:
        n = int(sec * RATE)
        t = np.arange(n) / RATE
        g = {5: [0.0, 0.0, 1.0], 3: [0.8, 0.0, 0.6]}.get(lab, [1.0, 0.0, 0.0])
        acc = np.tile(g, (n, 1)) + 0.005 * rng.standard_normal((n, 3))
        gyro = 0.01 * rng.standard_normal((n, 3))
        if lab == 0:  # walking: 2 Hz bounce and sway
            acc[:, 0] += 0.3 * np.sin(2 * np.pi * 2 * t)
            gyro[:, 1] += 0.5 * np.sin(2 * np.pi * 1 * t)
        accs.append(acc)
        gyros.append(gyro)
        labels.append(np.full(n, lab))
    return SensorStream(
        experiment, subject, np.concatenate(accs).astype(np.float32), np.concatenate(gyros).astype(np.float32),
        np.concatenate(labels).astype(np.int64),
    )


def synthetic_streams(subjects: Sequence[int] = (1, 2), recordings: int = 2, seed: int = 0) -> HaptStreams:
    """``recordings`` of 52 s per subject, experiments numbered in time order."""
    rng = np.random.default_rng(seed)
    streams, exp = [], 1
    for s in subjects:
        for _ in range(recordings):
            streams.append(_recording(exp, int(s), rng))
            exp += 1
    return HaptStreams(streams, CLASSES, RATE, "generated")
