"""Turn a ``DataConfig`` into datasets: resolve the source, load, transform, split, budget."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from fedhar.data.config import DataConfig
from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders import detect_format, format_notes, load, loader_options
from fedhar.data.splits import (balanced_budget_k, chronological_split, label_budget, official_split, random_split, stratified_split,
                                subject_split)
from fedhar.data.harmonize import channel_map_hint, is_channel_name, rename_channels, warn_channel_names
from fedhar.data.vocab import canonical_name, map_labels, to_canonical
from fedhar.exceptions import ConfigError, DataError

log = logging.getLogger(__name__)

ENV_ROOT = "FEDHAR_DATA_DIR"
KNOWN_SOURCES: dict[str, tuple[str, ...]] = {
    "uci_har": ("uci_har.npz", "UCI HAR Dataset", "UCI HAR Dataset.zip"),
    "hapt": ("hapt_raw.npz", "RawData", "HAPT Data Set"),
    "wisdm": ("wisdm.npz", "WISDM_ar_v1.1_raw.txt", "WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt"),
    "hhar": ("hhar_sa_part.npz",),
    "limu_uci": ("limu_uci",),
    "smarthome": ("smarthome",),
    "motionsense": ("motionsense/A_DeviceMotion_data.zip", "motionsense/A_DeviceMotion_data", "A_DeviceMotion_data.zip",
                    "A_DeviceMotion_data"),
    "usc_had": ("usc_had/USC-HAD.zip", "usc_had/USC-HAD", "USC-HAD.zip", "USC-HAD"),
}
"""Known source names -> candidate files/folders inside the data root, first found wins."""
SOURCE_FORMATS: dict[str, str] = {
    "uci_har": "official `UCI HAR Dataset` folder or zip (Inertial Signals), or uci_har.npz",
    "hapt": "HAPT RawData/ (acc_expXX_userYY.txt, gyro_..., labels.txt) or hapt_raw.npz",
    "wisdm": "WISDM v1.1 raw text WISDM_ar_v1.1_raw.txt, or wisdm.npz; 20 Hz, acc only",
    "hhar": "hhar_sa_part.npz; accelerometer only",
    "limu_uci": "LIMU-BERT data_20_120.npy + label_20_120.npy; 20 Hz, 120-sample windows",
    "smarthome": "smart-home event logs (ordonez/, kasteren2008/, kasteren2010/) as text",
    "motionsense": "MotionSense A_DeviceMotion_data.zip or folder (<act>_<trial>/sub_<n>.csv)",
    "usc_had": "USC-HAD.zip or folder, Subject<n>/a<act>t<trial>.mat; 100 Hz, gyro to rad/s",
    "synthetic": "generated signals, for tests and the no-data demo only (labelled as such)",
}
"""What each source name reads, in one line (``fedhar data list``; README's Data table)."""
_STREAM_OPTIONS = {"hapt": ("window", "step", "rate_hz"), "wisdm_raw": ("window", "step", "rate_hz"),
                   "motionsense": ("window", "step", "rate_hz"), "usc_had": ("window", "step", "rate_hz"),
                   "synthetic": ("window", "rate_hz")}
"""Formats that cut windows themselves: these config fields go to the loader, not to transforms."""


def data_root(root: str | None = None) -> Path | None:
    """The data folder: ``root`` if given, else ``$FEDHAR_DATA_DIR``; None when neither names one."""
    value = root if root is not None else os.environ.get(ENV_ROOT)
    return Path(value).expanduser() if value else None


def resolve_source(source: str, root: str | None = None) -> str:
    """Path of ``source`` (or ``"synthetic"``): a known name inside the root, or a file/folder path."""
    if source == "synthetic":
        return source
    base = data_root(root)
    if source in KNOWN_SOURCES:
        if base is None:
            raise ConfigError(
                f"`data.source: {source}` is looked up in the data folder, but neither `data.root` nor the "
                f"environment variable {ENV_ROOT} is set. Set one of them (e.g. {ENV_ROOT}=../shared/data)."
            )
        tried = [base / name for name in KNOWN_SOURCES[source]]
        if found := next((c for c in tried if c.exists()), None):
            return str(found)
        raise DataError(
            f"data source `{source}` not found in {base}; looked for: {', '.join(str(t) for t in tried)}."
        )
    path = Path(source).expanduser()
    tried = [path] if path.is_absolute() else ([base / path] if base is not None else []) + [Path.cwd() / path]
    if found := next((c for c in tried if c.exists()), None):
        return str(found)
    raise DataError(
        f"`data.source: {source}` is neither a known dataset ({', '.join([*KNOWN_SOURCES, 'synthetic'])}) "
        f"nor an existing path; tried: {', '.join(str(t) for t in tried)}."
    )


def list_sources(root: str | None = None) -> list[dict]:
    """Every known source name, what it reads, and whether :func:`resolve_source` finds it.

    Each row: ``name``, ``reads`` (one line), ``found`` (bool), ``path`` (what loading would read,
    or None) and ``problem`` (why it was not found, or None). ``root`` as in :func:`resolve_source`.
    """
    rows = []
    for name in [*KNOWN_SOURCES, "synthetic"]:
        try:
            path, problem = resolve_source(name, root), None
        except (ConfigError, DataError) as exc:
            path, problem = None, exc.reason
        rows.append({"name": name, "reads": SOURCE_FORMATS.get(name, ""), "found": path is not None, "path": path,
                     "problem": problem})
    return rows


def cap_windows(ds: WindowDataset, max_windows: int, seed: int = 0) -> WindowDataset:
    """Stratified subsample of at most ``max_windows`` windows (row order kept)."""
    if len(ds) <= max_windows:
        return ds
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds))
    try:
        keep, _ = train_test_split(idx, train_size=max_windows, stratify=ds.y, random_state=seed)
    except ValueError:
        warnings.warn(f"dataset `{ds.name}`: cannot stratify {max_windows} windows; sampling uniformly.", stacklevel=2)
        keep = np.random.default_rng(seed).choice(idx, size=max_windows, replace=False)
    return ds.subset(np.sort(keep))


def load_source(cfg: DataConfig, seed: int = 0, where: str = "data") -> WindowDataset:
    """Resolve and load ``cfg.source``, then apply channels, rate, window, labels and the cap.

    Parameters
    ----------
    cfg : DataConfig
        The ``data:`` section.
    seed : int
        Seed of the ``max_windows`` subsample.
    where : str
        Config key of the section, named in errors and warnings (e.g. ``lodo.datasets[gym]``).
    """
    path = resolve_source(cfg.source, cfg.root)
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    options = dict(cfg.options)
    accepted = loader_options(fmt)
    if "nan_policy" in accepted:
        options.setdefault("nan_policy", cfg.nan_policy)
    for key in _STREAM_OPTIONS.get(fmt, ()):
        value = getattr(cfg, key)
        if value is None:
            continue
        if key in options and options[key] != value:
            raise ConfigError(f"`data.{key}` ({value}) and `data.options.{key}` ({options[key]}) disagree; keep one.")
        options[key] = value
    ds = load(path, fmt, **options)
    log.info("loaded %s (%s, format %s): %d windows", ds.name, path, fmt, len(ds))
    if isinstance(cfg.channels, dict):
        ds = rename_channels(ds, cfg.channels, f"{where}.channels")
    elif cfg.channels:
        ds = ds.select_channels(cfg.channels)
    warn_channel_names(ds, f"{where}.channels")
    if cfg.rate_hz is not None and abs(ds.rate_hz - cfg.rate_hz) > 1e-9:
        ds = ds.resample(cfg.rate_hz)
    if cfg.window is not None and cfg.window != ds.window_length:
        ds = ds.rewindow(cfg.window, cfg.step)
    if cfg.labels:
        ds = map_labels(ds, cfg.labels, f"{where}.labels")
    if cfg.canonical_labels:
        ds = to_canonical(ds, keep_unknown=True)
    if cfg.max_windows is not None:
        ds = cap_windows(ds, cfg.max_windows, seed)
    return ds


def load_splits(cfg: DataConfig, seed: int = 0) -> tuple[WindowDataset, WindowDataset]:
    """``(train, test)`` for ``cfg``; the label budget is applied to ``train`` only (the
    validation windows of a ``random`` split are set aside: fedhar trains fixed epochs)."""
    ds = load_source(cfg, seed)
    if cfg.split == "official":
        train, test = official_split(ds)
    elif cfg.split == "subject":
        train, test = subject_split(ds, cfg.test_fraction, cfg.test_subjects, seed)
    elif cfg.split == "chronological":
        train, test = chronological_split(ds, cfg.test_fraction)
    elif cfg.split == "random":
        train, _val, test = random_split(ds, cfg.val_fraction, cfg.test_fraction, seed)
    else:
        train, test = stratified_split(ds, cfg.test_fraction, seed)
    if cfg.label_budget_balanced:
        train = label_budget(train, balanced_budget_k(train, cfg.label_budget_fraction), None, seed)
    elif cfg.label_budget_k is not None or cfg.label_budget_fraction is not None:
        train = label_budget(train, cfg.label_budget_k, cfg.label_budget_fraction, seed)
    if len(train) == 0 or len(test) == 0:
        raise DataError(
            f"dataset `{ds.name}`: the {cfg.split} split left {len(train)} train and {len(test)} test windows."
        )
    return train, test


def describe(source: str, root: str | None = None) -> str:
    """Text summary of a source for ``fedhar data info SOURCE``."""
    cfg = DataConfig(source=source, root=root)
    path = resolve_source(source, root)
    with warnings.catch_warnings():  # odd channel names are reported below, in the summary itself
        warnings.filterwarnings("ignore", message=r"dataset `.*`: channel\(s\) .* are not named")
        ds = load_source(cfg)
    s = ds.summary()
    width = max(len(c) for c in ds.classes) if ds.classes else 0
    count_width = max((len(str(n)) for n in s["classes"].values()), default=0)
    sensors = not np.issubdtype(ds.X.dtype, np.integer)  # text windows (smart homes) have their own vocabulary
    lines = [
        f"{ds.name}: {path} (format {detect_format(path)})",
        f"windows: {s['windows']}   subjects: {s['subjects']}   rate: {ds.rate_hz:g} Hz   "
        f"window: {ds.window_length} samples ({ds.window_length / ds.rate_hz:.2f} s)",
        f"channels ({ds.num_channels}): " + ", ".join(f"{c} [{u}]" for c, u in zip(ds.channels, ds.units)),
        f"classes ({ds.num_classes}):",
        *(f"  {c:<{width}}  {n:<{count_width}}{_canonical_note(c) if sensors else ''}".rstrip()
          for c, n in s["classes"].items()),
    ]
    odd = [c for c in ds.channels if not is_channel_name(c)] if sensors else []
    if odd:
        lines.insert(3, f"  not named <sensor>_<axis>: {', '.join(odd)}; rename them with a `channels:` mapping, "
                        f"e.g. {channel_map_hint(odd)}")
    if sensors and any(canonical_name(c) is None for c in ds.classes):
        lines.append("classes marked * have no canonical name: in cross-dataset studies they stay classes of their "
                     "own unless mapped with `labels:`")
    if "official_test" in ds.extras:
        n_test = int(np.asarray(ds.extras["official_test"]).sum())
        lines.append(f"official split: {len(ds) - n_test} train / {n_test} test")
    lines += format_notes(path, detect_format(path))
    return "\n".join(lines)


def _canonical_note(name: str) -> str:
    """`data info` note on a class: its canonical name where that differs, ``*`` where it has none."""
    canon = canonical_name(name)
    if canon is None:
        return "  *"
    return "" if canon == name else f"  -> {canon}"
