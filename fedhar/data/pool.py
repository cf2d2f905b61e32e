"""Harmonise several datasets into one pool: common sensors, rate, window length in seconds,
canonical label space with per-dataset label masks, and per-dataset normalisation.

Why per-dataset normalisation: WISDM and HHAR arrive z-scored and UCI-HAR in g, so one global
scale would leave each dataset in its own corner of input space. Each dataset is standardised
with statistics of its own *training* windows (labels are not used, so a held-out dataset may be
standardised with its unlabelled training windows too). Zero-filled sensors stay exactly zero,
so the frontend still sees them as absent.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fedhar.data.sources import cap_windows, load_source
from fedhar.data.config import DataConfig
from fedhar.data.dataset import WindowDataset, concat
from fedhar.data.harmonize import harmonize
from fedhar.data.splits import official_split, subject_split
from fedhar.data.vocab import CANONICAL, canonical_name, own_name, to_canonical, with_label_mask
from fedhar.exceptions import DataError

log = logging.getLogger(__name__)

TEST_KEY = "official_test"


@dataclass
class PreparedDataset:
    """One dataset on the common footing: its training and test sides, already standardised."""

    name: str
    train: WindowDataset
    test: WindowDataset
    sensors: tuple[str, ...]
    """Sensors the dataset really has (the others are zero-filled)."""

    @property
    def classes(self) -> list[str]:
        """Canonical classes this dataset has."""
        present = np.bincount(np.concatenate([self.train.y, self.test.y]), minlength=self.train.num_classes) > 0
        return [c for c, p in zip(self.train.classes, present) if p]


def align_sensors(ds: WindowDataset, sensors: Sequence[str]) -> tuple[WindowDataset, tuple[str, ...]]:
    """Channels ``<sensor>_x.. `` for every sensor in ``sensors``; missing ones are zero-filled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing sensor is expected here; it is reported below
        h = harmonize(ds, acc_units=None, acceleration="total", channels=tuple(sensors))
    have = tuple(s for s in sensors if s in h.sensors)
    blocks, names, units = [], [], []
    for s in sensors:
        for ax in "xyz":
            names.append(f"{s}_{ax}")
            if s in have:
                i = h.channels.index(f"{s}_{ax}")
                blocks.append(h.X[:, i])
                units.append(h.units[i])
            else:
                blocks.append(np.zeros((len(h), h.window_length), dtype=np.float32))
                units.append("absent")
    return h.replace(X=np.stack(blocks, axis=1), channels=tuple(names), units=tuple(units)), have


def standardise(train: WindowDataset, test: WindowDataset) -> tuple[WindowDataset, WindowDataset]:
    """z-score every channel with ``train``'s statistics; all-zero (absent) channels stay zero."""
    mean = train.X.mean(axis=(0, 2), dtype=np.float64)
    std = train.X.std(axis=(0, 2), dtype=np.float64)
    absent = ~(train.X != 0).any(axis=(0, 2))
    mean[absent], std[absent] = 0.0, 1.0
    std = np.maximum(std, 1e-6)

    def apply(ds: WindowDataset) -> WindowDataset:
        return ds.replace(X=((ds.X - mean[None, :, None]) / std[None, :, None]).astype(np.float32))

    return apply(train), apply(test)


def label_space(class_lists: Sequence[Sequence[str]]) -> list[str]:
    """The union of canonical class names, in :data:`~fedhar.data.vocab.CANONICAL` order, then the
    classes with no canonical name (each a class of its own, in lower case), alphabetically."""
    names = {canonical_name(c) or own_name(c) for cl in class_lists for c in cl}
    order = {c: i for i, c in enumerate(CANONICAL)}
    return sorted(names, key=lambda c: (order.get(c, len(order)), c))


def prepare(ds: WindowDataset, name: str, *, rate_hz: float, window: int, sensors: Sequence[str],
            space: Sequence[str], split: str = "auto", test_fraction: float = 0.3,
            max_windows: int | None = None, seed: int = 0) -> PreparedDataset:
    """Put one loaded dataset on the common footing and split it into train/test sides."""
    aligned, have = align_sensors(ds, sensors)
    if abs(aligned.rate_hz - rate_hz) > 1e-9:
        aligned = aligned.resample(rate_hz)
    if aligned.window_length < window:
        raise DataError(f"dataset `{name}`: its windows last {ds.window_length / ds.rate_hz:.2f} s, shorter than the "
                        f"common window of {window / rate_hz:.2f} s; lower `lodo.window_seconds`.")
    if aligned.window_length != window:
        aligned = aligned.rewindow(window, window)
    aligned = to_canonical(aligned, label_space=space, keep_unknown=True).replace(name=name)
    aligned = aligned.replace(extras={k: v for k, v in aligned.extras.items() if k == TEST_KEY})
    if max_windows is not None:
        aligned = cap_windows(aligned, max_windows, seed)
    if split == "official" or (split == "auto" and TEST_KEY in aligned.extras):
        train, test = official_split(aligned)
    else:
        train, test = subject_split(aligned, test_fraction, None, seed)
    train, test = standardise(train, test)
    classes = np.zeros(len(space), dtype=bool)
    classes[np.unique(np.concatenate([train.y, test.y]))] = True
    train, test = (with_label_mask(d.replace(extras={}), classes) for d in (train, test))
    log.info("%s: %d train / %d test windows, sensors %s, classes %s", name, len(train), len(test),
             "+".join(have), ", ".join(c for c, p in zip(space, classes) if p))
    return PreparedDataset(name, train, test, have)


def load_prepared(specs: Sequence, *, rate_hz: float, window: int, sensors: Sequence[str],
                  max_windows: int | None = None, seed: int = 0, root: str | None = None) -> dict[str, PreparedDataset]:
    """Load every dataset spec (``name``, ``source``, ``format``, ``options``, ``split``,
    ``test_fraction``, optional ``labels`` and ``channels`` mappings) and prepare it over the union
    label space. Classes with no canonical name stay classes of their own there, masked for the
    datasets that lack them."""
    loaded = {}
    for spec in specs:
        channels = dict(getattr(spec, "channels", None) or {}) or None
        with warnings.catch_warnings():  # the spec itself was checked (and warned about) under its own key
            warnings.simplefilter("ignore")
            cfg = DataConfig(source=spec.source or spec.name, root=root, format=spec.format, options=dict(spec.options),
                             channels=channels, labels=dict(getattr(spec, "labels", None) or {}), canonical_labels=True)
        loaded[spec.name] = load_source(cfg, seed, where=f"lodo.datasets[{spec.name}]")
    space = label_space([ds.classes for ds in loaded.values()])
    return {spec.name: prepare(loaded[spec.name], spec.name, rate_hz=rate_hz, window=window, sensors=sensors,
                               space=space, split=spec.split, test_fraction=spec.test_fraction,
                               max_windows=max_windows, seed=seed)
            for spec in specs}


def pool(parts: Sequence[PreparedDataset], name: str = "pool") -> WindowDataset:
    """Training and test sides of ``parts`` in one dataset; ``extras["official_test"]`` marks the
    test sides, ``extras["dataset"]`` the source and ``extras["label_mask"]`` its classes."""
    sides = []
    for p in parts:
        for ds, is_test in ((p.train, False), (p.test, True)):
            sides.append(ds.replace(extras={**ds.extras, TEST_KEY: np.full(len(ds), is_test), "dataset": np.full(len(ds), p.name)}))
    return concat(sides, name=name)


def save_npz(ds: WindowDataset, path) -> None:
    """Write ``ds`` in fedhar's generic ``.npz`` format (loadable with ``format: npz``)."""
    arrays = {"X": ds.X, "y": ds.y, "subject": ds.subject, "classes": np.array(ds.classes),
              "channels": np.array(ds.channels), "units": np.array(ds.units), "rate_hz": np.array(ds.rate_hz)}
    for key in ("device", "placement"):
        if getattr(ds, key) is not None:
            arrays[key] = getattr(ds, key)
    arrays.update({k: np.asarray(v) for k, v in ds.extras.items()})
    np.savez(path, **arrays)
