"""Loader for LIMU-BERT preprocessed pairs ``data_<sr>_<len>.npy`` + ``label_<sr>_<len>.npy``."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.validate import check_arrays
from fedhar.exceptions import DataError

_DATA_FILE = re.compile(r"^data_(\d+(?:\.\d+)?)_(\d+)\.npy$")
_SENSORS = {6: (("acc", "m/s^2"), ("gyro", "rad/s")), 9: (("acc", "m/s^2"), ("gyro", "rad/s"), ("mag", "uT"))}


def _find_pair(path: Path) -> tuple[Path, Path, str, str]:
    """-> data file, label file, ``<sr>_<len>`` suffix, sampling-rate text."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if _DATA_FILE.match(p.name))
        if not found:
            present = sorted(p.name for p in path.iterdir())[:10]
            raise DataError(
                f"{path}: no `data_<rate>_<length>.npy` file (entries present: {', '.join(present) or 'none'})."
            )
        if len(found) > 1:
            raise DataError(f"{path}: several data files ({', '.join(p.name for p in found)}); pass one of them.")
        data = found[0]
    else:
        data = path
        if path.name.startswith("label_"):
            data = path.with_name("data_" + path.name[len("label_") :])
    m = _DATA_FILE.match(data.name)
    if not m:
        raise DataError(f"{path}: expected a LIMU-BERT file named `data_<rate>_<length>.npy`.")
    label = data.with_name(f"label_{m.group(1)}_{m.group(2)}.npy")
    for f in (data, label):
        if not f.is_file():
            raise DataError(f"{f}: file is missing (LIMU-BERT data comes as a data_*.npy + label_*.npy pair).")
    return data, label, f"{m.group(1)}_{m.group(2)}", m.group(1)


def _dataset_config(folder: Path, suffix: str, dataset: str | None) -> tuple[str, dict]:
    """Entry of ``data_config.json`` for this file: key ``<dataset>_<sr>_<len>``."""
    cfg_file = folder / "data_config.json"
    name = dataset or re.sub(r"^limu[_-]?", "", folder.name.lower()) or folder.name
    if not cfg_file.is_file():
        return name, {}
    try:
        table = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{cfg_file}: not valid JSON ({exc}).") from None
    key = f"{name}_{suffix}"
    if key not in table:
        raise DataError(
            f"{cfg_file}: no entry `{key}` for {folder.name}/data_{suffix}.npy; keys present: "
            f"{', '.join(table)}. Pass the dataset name with option dataset=..."
        )
    return name, table[key]


def _mode(labels: np.ndarray) -> np.ndarray:
    """Most frequent value per row of a non-negative integer ``(N, T)`` array."""
    k = int(labels.max()) + 1 if labels.size else 1
    counts = np.zeros((labels.shape[0], k), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(labels.shape[0]), labels.shape[1]), labels.ravel()), 1)
    return counts.argmax(axis=1)


def load_limu(path: str | Path, *, dataset: str | None = None, nan_policy: str = "error") -> WindowDataset:
    """Load a LIMU-BERT benchmark file pair.

    Parameters
    ----------
    path : str or Path
        The folder holding the pair (e.g. ``limu_uci/``) or either ``.npy`` file.
    dataset : str, optional
        Key prefix in ``data_config.json`` (``uci``, ``hhar``, ``motion``, ``shoaib``); by
        default the folder name without a ``limu_`` prefix.
    nan_policy : {"error", "drop"}
        For windows holding NaN/Inf values.

    Returns
    -------
    WindowDataset
        ``(N, C, T)`` windows (transposed from LIMU's ``(N, T, C)``), label = per-window mode of
        the activity column, subject = mode of the user column; class names and rate from
        ``data_config.json`` when present.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected a LIMU-BERT folder or data_*.npy).")
    data_file, label_file, suffix, sr = _find_pair(path)
    name, entry = _dataset_config(data_file.parent, suffix, dataset)
    data = np.load(data_file, allow_pickle=False)
    labels = np.load(label_file, allow_pickle=False)
    if data.ndim != 3:
        raise DataError(f"{data_file}: expected (N, T, C) windows; got shape {data.shape}.")
    if labels.ndim != 3 or labels.shape[:2] != data.shape[:2]:
        raise DataError(f"{label_file}: expected shape ({data.shape[0]}, {data.shape[1]}, L); got {labels.shape}.")
    act_idx = int(entry.get("activity_label_index", 0))
    user_idx = int(entry.get("user_label_index", 1))
    for key, idx in (("activity_label_index", act_idx), ("user_label_index", user_idx)):
        if idx >= labels.shape[2]:
            raise DataError(f"{label_file}: `{key}` {idx} but the file has {labels.shape[2]} label columns.")
    act, user = labels[..., act_idx], labels[..., user_idx]
    if not (np.isfinite(act).all() and np.isfinite(user).all() and act.min() >= 0 and user.min() >= 0):
        raise DataError(f"{label_file}: labels must be non-negative integers.")
    y, subject = _mode(act.astype(np.int64)), _mode(user.astype(np.int64))
    if entry.get("activity_label"):
        classes = [str(c) for c in entry["activity_label"]]
    else:
        n_cls = int(entry.get("activity_label_size", y.max() + 1))
        classes = [f"class_{i}" for i in range(n_cls)]
        warnings.warn(f"{data_file}: no class names in data_config.json; using class_0..class_{n_cls - 1}.",
                      stacklevel=2)
    X = data.transpose(0, 2, 1)  # [N, T, C] -> [N, C, T]
    X, y, subject, _ = check_arrays(X, y, source=str(data_file), classes=classes, subject=subject,
                                    nan_policy=nan_policy)
    sensors = _SENSORS.get(X.shape[1])
    if sensors:
        channels = [f"{s}_{ax}" for s, _ in sensors for ax in "xyz"]
        units = [u for _, u in sensors for _ in "xyz"]
    else:
        channels, units = [f"ch{i}" for i in range(X.shape[1])], ["unknown"] * X.shape[1]
    return WindowDataset(
        X=X.astype(np.float32), y=y, subject=subject, channels=tuple(channels), units=tuple(units),
        rate_hz=float(entry.get("sr", sr)), classes=tuple(classes), name=f"limu_{name}",
    )
