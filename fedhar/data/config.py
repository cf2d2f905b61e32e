"""``DataConfig``: the ``data:`` section of an experiment file, validated on construction."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from fedhar.exceptions import ConfigError

Format = Literal["auto", "uci_har", "hapt", "wisdm_raw", "limu", "npz", "synthetic", "smarthome", "motionsense",
                 "usc_had"]
"""``auto`` or a name in :data:`fedhar.data.loaders.FORMATS` (a test keeps the two in step)."""


@dataclass
class DataConfig:
    """Where the data comes from and how it is transformed, split and budgeted."""

    source: str = field(
        default="uci_har",
        metadata={"help": "Known name resolved inside `root` (uci_har, hapt, wisdm, hhar, limu_uci, synthetic) "
                          "or a file/folder path (relative paths: against root, then the working directory)."},
    )
    root: str | None = field(
        default=None,
        metadata={"help": "Folder holding the datasets; default: environment variable FEDHAR_DATA_DIR."},
    )
    format: Format = field(
        default="auto",
        metadata={"help": "Loader format (auto, uci_har, hapt, wisdm_raw, limu, npz, synthetic, smarthome, motionsense, usc_had); auto detects it."},
    )
    split: Literal["official", "subject", "stratified", "random", "chronological"] = field(
        default="official",
        metadata={"help": "Train/test split: official (published partition), subject (disjoint subjects), "
                          "stratified (random windows, class proportions kept) or random (LIMU-BERT's protocol: "
                          "shuffled windows, int(N*train) / int(N*val) / the rest for test) or chronological (event data: "
                          "per subject or home, its last days are test days)."},
    )
    test_fraction: float = field(
        default=0.3, metadata={"help": "Share of subjects (subject split) or windows (stratified) for testing."}
    )
    val_fraction: float = field(
        default=0.0, metadata={"help": "random split: share of windows set aside for validation (not trained on, not tested)."}
    )
    test_subjects: list[int] | None = field(
        default=None, metadata={"help": "Explicit test subjects for the subject split (overrides test_fraction)."}
    )
    channels: list[str] | dict[str, str | None] | None = field(
        default=None,
        metadata={"help": "Two forms. A list selects channels or whole sensors to keep, in order (e.g. [acc, gyro]). "
                          "A mapping renames the dataset's channels (names as `fedhar data info` prints them) to "
                          "`<sensor>_<axis>` names, e.g. {ax: acc_x, ay: acc_y, az: acc_z, gx: gyro_x, gy: gyro_y, "
                          "gz: gyro_z}; unmapped channels keep their names, a null value drops a channel. Channels "
                          "not named `<sensor>_<axis>` are warned about: each would be a one-axis sensor of its own, "
                          "which the cross-dataset pool cannot use."},
    )
    rate_hz: float | None = field(default=None, metadata={"help": "Resample to this rate (Hz)."})
    window: int | None = field(
        default=None, metadata={"help": "Window length in samples (cut from streams, or sub-windows of windows)."}
    )
    step: int | None = field(default=None, metadata={"help": "Hop between windows in samples; needs `window`."})
    label_budget_k: int | None = field(
        default=None, metadata={"help": "Labelled training windows per class (exact k-shot)."}
    )
    label_budget_fraction: float | None = field(
        default=None, metadata={"help": "Share of training windows kept labelled, stratified by class."}
    )
    label_budget_balanced: bool = field(
        default=False, metadata={"help": "With label_budget_fraction: the same number of windows per class, "
                                         "int(train windows * fraction / classes) (LIMU-BERT's balanced label rate)."}
    )
    labels: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Rename the dataset's classes: {its class name: canonical name}, e.g. {Laying: lying, "
                          "jog: jogging} (keys case-insensitive, each must be a class of the dataset). Classes "
                          "renamed to one name are merged; the others keep their names. A name outside the "
                          "canonical vocabulary stays a class of its own."},
    )
    canonical_labels: bool = field(
        default=False, metadata={"help": "Rename classes to the canonical activity vocabulary (after `labels`); classes "
                                         "with no canonical name stay classes of their own, in lower case."}
    )
    nan_policy: Literal["error", "drop"] = field(
        default="error", metadata={"help": "Windows with NaN/Inf: error (stop) or drop (remove and log the count)."}
    )
    max_windows: int | None = field(
        default=None, metadata={"help": "Cap on windows, stratified subsample (for smoke tests)."}
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Loader options, e.g. {n_per_class: 20} for synthetic, {strict: false} for wisdm_raw."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError(f"`data.source` must be a dataset name or path; got {self.source!r}.")
        if self.root is not None and not str(self.root).strip():
            raise ConfigError("`data.root` is empty; remove it to use FEDHAR_DATA_DIR, or give a folder.")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"`data.test_fraction` must be in (0, 1); got {self.test_fraction}.")
        if self.test_subjects is not None:
            if not self.test_subjects:
                raise ConfigError("`data.test_subjects` is empty; remove it or list subject ids.")
            if self.split != "subject":
                warnings.warn(f"`data.test_subjects` is ignored with `data.split: {self.split}`.", stacklevel=2)
        if self.channels is not None and not self.channels:
            raise ConfigError("`data.channels` is empty; remove it to keep all channels, or list some.")
        if isinstance(self.channels, dict):
            from fedhar.data.harmonize import check_channel_map

            self.channels = check_channel_map(self.channels, "data.channels")
        from fedhar.data.vocab import check_label_map

        self.labels = check_label_map(self.labels, "data.labels")
        for name in ("rate_hz", "window", "step", "label_budget_k", "max_windows"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"`data.{name}` must be positive; got {value}.")
        if self.step is not None and self.window is None:
            raise ConfigError("`data.step` needs `data.window` (the window length in samples).")
        if self.label_budget_k is not None and self.label_budget_fraction is not None:
            raise ConfigError("Set only one of `data.label_budget_k` and `data.label_budget_fraction`.")
        if self.label_budget_fraction is not None and not 0.0 < self.label_budget_fraction <= 1.0:
            raise ConfigError(f"`data.label_budget_fraction` must be in (0, 1]; got {self.label_budget_fraction}.")
        if not 0.0 <= self.val_fraction < 1.0 or self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(f"`data.val_fraction` must be in [0, 1) and leave training windows beside "
                              f"`data.test_fraction` ({self.test_fraction}); got {self.val_fraction}.")
        if self.val_fraction and self.split != "random":
            raise ConfigError(f"`data.val_fraction` is used by `data.split: random` only; got split {self.split!r}.")
        if self.label_budget_balanced and self.label_budget_fraction is None:
            raise ConfigError("`data.label_budget_balanced` needs `data.label_budget_fraction`.")
        if not isinstance(self.options, dict):
            raise ConfigError(f"`data.options` must be a mapping of loader options; got {self.options!r}.")
