"""Canonical activity vocabulary and the mapping from each dataset's label names onto it."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import DataError

CANONICAL = (
    "walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying", "jogging", "biking",
    "stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand",
)
"""Every canonical class, in the order canonical class lists use."""

_UCI_HAR = {"walking": "walking", "walking_upstairs": "walking_upstairs", "walking_downstairs": "walking_downstairs",
            "sitting": "sitting", "standing": "standing", "laying": "lying"}
DATASET_LABELS: dict[str, dict[str, str]] = {
    "uci_har": _UCI_HAR,
    "hapt": _UCI_HAR | {c: c for c in CANONICAL if "_to_" in c},  # and the postural transitions
    "wisdm": {
        "downstairs": "walking_downstairs", "jogging": "jogging", "sitting": "sitting", "standing": "standing",
        "upstairs": "walking_upstairs", "walking": "walking",
    },
    "hhar": {
        "bike": "biking", "sit": "sitting", "stairsdown": "walking_downstairs", "stairsup": "walking_upstairs",
        "stand": "standing", "walk": "walking",
    },
    "limu": {
        "walking": "walking", "upstairs": "walking_upstairs", "downstairs": "walking_downstairs",
        "sitting": "sitting", "standing": "standing", "lying": "lying", "jogging": "jogging", "biking": "biking",
        "bike": "biking", "sit": "sitting", "stand": "standing", "walk": "walking",
    },
}
"""Per dataset: lower-case published label name -> canonical name."""


def _aliases() -> dict[str, str]:
    merged = {c: c for c in CANONICAL}
    for table in DATASET_LABELS.values():
        for name, canon in table.items():
            if merged.setdefault(name, canon) != canon:  # pragma: no cover - guarded by tests
                raise DataError(f"label `{name}` maps to both `{merged[name]}` and `{canon}`.")
    return merged


def canonical_name(name: str, extra: Mapping[str, str] | None = None) -> str | None:
    """Canonical name of ``name`` (case-insensitive), or ``None`` when unknown."""
    key = name.strip().lower()
    if extra:
        lowered = {k.lower(): v for k, v in extra.items()}
        if key in lowered:
            return lowered[key]
    return _aliases().get(key)


def to_canonical(
    ds: WindowDataset, label_space: Sequence[str] | None = None, extra: Mapping[str, str] | None = None
) -> WindowDataset:
    """Rename ``ds`` classes to the canonical vocabulary and re-index ``y``.

    Parameters
    ----------
    ds : WindowDataset
        Any dataset whose class names appear in :data:`DATASET_LABELS` (case-insensitive).
    label_space : sequence of str, optional
        Target class list (canonical names). By default the canonical classes of ``ds``, in
        :data:`CANONICAL` order. Classes mapped to the same name are merged.
    extra : mapping, optional
        Additional ``name -> canonical`` entries, checked first.

    Raises
    ------
    DataError
        Unknown class names (all listed), or classes outside ``label_space``.
    """
    mapped = [canonical_name(c, extra) for c in ds.classes]
    unknown = [c for c, m in zip(ds.classes, mapped) if m is None]
    if unknown:
        raise DataError(
            f"dataset `{ds.name}`: class name(s) {', '.join(map(repr, unknown))} have no canonical activity. "
            f"Known: {', '.join(CANONICAL)}; add them with the `extra` mapping."
        )
    if label_space is None:
        order = {c: i for i, c in enumerate(CANONICAL)}
        target = sorted(set(mapped), key=lambda c: order.get(c, len(order)))
    else:
        target = [canonical_name(c, extra) or c for c in label_space]
        outside = sorted(set(mapped) - set(target))
        if outside:
            raise DataError(
                f"dataset `{ds.name}`: classes {', '.join(outside)} are not in the label space "
                f"({', '.join(target)})."
            )
    index = np.array([target.index(m) for m in mapped], dtype=np.int64)
    return ds.replace(y=index[ds.y] if len(ds) else ds.y, classes=tuple(target))


MASK_KEY = "label_mask"
"""``extras`` key of a per-window ``(N, K)`` bool array: the classes the window's dataset has.
Training and evaluation mask the other logits, so a dataset is never trained or scored on
classes it does not have (see :func:`with_label_mask`)."""


def with_label_mask(ds: WindowDataset, allowed: Sequence[str] | np.ndarray | None = None) -> WindowDataset:
    """``ds`` with every window restricted to ``allowed`` classes (names, or a ``(K,)`` bool mask).

    By default the classes that occur in ``ds``. Rows keep any other extras.
    """
    if allowed is None:
        mask = np.bincount(ds.y, minlength=ds.num_classes) > 0
    elif isinstance(allowed, np.ndarray) and allowed.dtype == bool:
        mask = allowed
    else:
        mask = label_mask(allowed, ds.classes)
    if mask.shape != (ds.num_classes,):
        raise DataError(f"dataset `{ds.name}`: label mask has shape {mask.shape}; expected ({ds.num_classes},).")
    if not mask.any():
        raise DataError(f"dataset `{ds.name}`: the label mask allows no class of {', '.join(ds.classes)}.")
    if len(ds) and not mask[ds.y].all():
        outside = sorted({ds.classes[c] for c in ds.y[~mask[ds.y]]})
        raise DataError(f"dataset `{ds.name}`: windows of class(es) {', '.join(outside)} are outside the label mask.")
    return ds.replace(extras={**ds.extras, MASK_KEY: np.tile(mask, (len(ds), 1))})


def label_mask(ds_classes: Iterable[str], label_space: Sequence[str]) -> np.ndarray:
    """Boolean mask over ``label_space``: True where the dataset has that class.

    Names are compared after canonical mapping, so ``LAYING`` matches ``lying``.
    """
    have = {canonical_name(c) or c.lower() for c in ds_classes}
    return np.array([(canonical_name(c) or c.lower()) in have for c in label_space], dtype=bool)
