"""Canonical activity vocabulary and the mapping from each dataset's label names onto it."""

from __future__ import annotations

import difflib
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import ConfigError, DataError

CANONICAL = (
    "walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying", "jogging", "biking",
    "stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand",
    "running", "jumping", "elevator_up", "elevator_down",
)
"""Every canonical class, in the order canonical class lists use. ``running`` (USC-HAD's running
forward) is kept apart from ``jogging`` (WISDM, MotionSense); pool them with ``labels: {running: jogging}``."""

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
    "motionsense": {  # trial-folder codes
        "dws": "walking_downstairs", "ups": "walking_upstairs", "wlk": "walking", "jog": "jogging", "sit": "sitting",
        "std": "standing",
    },
    "usc_had": {  # the loader merges walking forward/left/right into `walking` unless walking_directions is set;
        # walking_left/walking_right have no canonical name on purpose, so that they stay classes of their own
        "walking": "walking", "walking_forward": "walking", "walking_upstairs": "walking_upstairs",
        "walking_downstairs": "walking_downstairs", "running_forward": "running", "jumping_up": "jumping",
        "sitting": "sitting", "standing": "standing", "sleeping": "lying", "elevator_up": "elevator_up",
        "elevator_down": "elevator_down",
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
    ds: WindowDataset, label_space: Sequence[str] | None = None, extra: Mapping[str, str] | None = None,
    keep_unknown: bool = False,
) -> WindowDataset:
    """Rename ``ds`` classes to the canonical vocabulary and re-index ``y``.

    Parameters
    ----------
    ds : WindowDataset
        Any dataset whose class names appear in :data:`DATASET_LABELS` (case-insensitive).
    label_space : sequence of str, optional
        Target class list (canonical names). By default the canonical classes of ``ds``, in
        :data:`CANONICAL` order, then any classes of its own. Classes mapped to the same name are merged.
    extra : mapping, optional
        Additional ``name -> canonical`` entries, checked first.
    keep_unknown : bool
        Classes with no canonical name stay classes of their own, named in lower case (as the
        canonical names are), instead of raising.

    Raises
    ------
    DataError
        Unknown class names (all listed; unless ``keep_unknown``), or classes outside ``label_space``.
    """
    mapped = [canonical_name(c, extra) or (own_name(c) if keep_unknown else None) for c in ds.classes]
    unknown = [c for c, m in zip(ds.classes, mapped) if m is None]
    if unknown:
        raise DataError(
            f"dataset `{ds.name}`: class name(s) {', '.join(map(repr, unknown))} have no canonical activity. "
            f"Known: {', '.join(CANONICAL)}; map them with `labels:` (`data.labels`, or `labels` of a "
            "`lodo.datasets` entry), e.g. {" + ", ".join(f"{c}: <canonical name>" for c in unknown[:2]) + "}."
        )
    if label_space is None:
        order = {c: i for i, c in enumerate(CANONICAL)}
        target = sorted(dict.fromkeys(mapped), key=lambda c: order.get(c, len(order)))  # own classes: first seen
    else:
        target = [canonical_name(c, extra) or (own_name(c) if keep_unknown else c) for c in label_space]
        outside = sorted(set(mapped) - set(target))
        if outside:
            raise DataError(
                f"dataset `{ds.name}`: classes {', '.join(outside)} are not in the label space "
                f"({', '.join(target)})."
            )
    index = np.array([target.index(m) for m in mapped], dtype=np.int64)
    return ds.replace(y=index[ds.y] if len(ds) else ds.y, classes=tuple(target))


def own_name(name: str) -> str:
    """Name of a class outside the canonical vocabulary: stripped, lower case (``Bench_Press`` -> ``bench_press``)."""
    return name.strip().lower()


def check_label_map(labels: Mapping[str, str], where: str = "data.labels") -> dict[str, str]:
    """Check a ``labels:`` mapping (a dataset's class names -> canonical names) before any data is read.

    Values should be canonical names (or names that map to one, e.g. ``laying``); any other name
    becomes a class of its own, shared with datasets that have or map to the same name. A value
    close to a canonical name is probably a typo and is warned about.

    Raises
    ------
    ConfigError
        Not a mapping, an empty key or value, or a class named twice (names are case-insensitive).
    """
    if not isinstance(labels, Mapping):
        raise ConfigError(f"`{where}` must be a mapping {{class name: canonical name}}; got {labels!r}.")
    seen: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"`{where}` has an empty class name (mapped to {value!r}); keys are the dataset's class names.")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"`{where}.{key}` must be a class name (canonical, e.g. walking); got {value!r}.")
        low = key.strip().lower()
        if low in seen:
            raise ConfigError(f"`{where}` names the class `{key}` twice (also as `{seen[low]}`; names are case-insensitive).")
        seen[low] = key
        if canonical_name(value) is None:
            close = difflib.get_close_matches(own_name(value), CANONICAL, n=1, cutoff=0.8)
            if close:
                warnings.warn(f"`{where}.{key}: {value}`: `{value}` is not a canonical activity (did you mean "
                              f"`{close[0]}`?); as written it is a class of its own.", stacklevel=3)
    return dict(labels)


def map_labels(ds: WindowDataset, labels: Mapping[str, str], where: str = "data.labels") -> WindowDataset:
    """``ds`` with its classes renamed by ``labels`` (keys matched case-insensitively; values that
    name a canonical class, directly or through an alias, become that canonical name). Classes
    renamed to one name are merged; the others keep their names.

    Raises
    ------
    ConfigError
        A key that is not a class of ``ds`` (naming the key and its value).
    """
    have = {own_name(c) for c in ds.classes}
    for key, value in labels.items():
        if own_name(key) not in have:
            raise ConfigError(
                f"`{where}` maps `{key}` to `{value}`, but `{key}` is not a class of dataset `{ds.name}` "
                f"(its classes: {', '.join(ds.classes)})."
            )
    table = {own_name(k): canonical_name(v) or v.strip() for k, v in labels.items()}
    names = [table.get(own_name(c), c) for c in ds.classes]
    target = list(dict.fromkeys(names))
    index = np.array([target.index(n) for n in names], dtype=np.int64)
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
    have = {canonical_name(c) or own_name(c) for c in ds_classes}
    return np.array([(canonical_name(c) or own_name(c)) in have for c in label_space], dtype=bool)
