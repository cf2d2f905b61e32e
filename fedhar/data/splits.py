"""Train/test splits, labelled-budget subsets and per-channel statistics of a WindowDataset."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import DataError


def official_split(ds: WindowDataset) -> tuple[WindowDataset, WindowDataset]:
    """Split on ``extras["official_test"]`` (the published train/test partition)."""
    if "official_test" not in ds.extras:
        raise DataError(
            f"dataset `{ds.name}` has no official train/test split (no `official_test` array); "
            "use `data.split: subject` or `data.split: stratified`."
        )
    test = np.asarray(ds.extras["official_test"]).astype(bool)
    return ds.subset(~test), ds.subset(test)


def subject_split(
    ds: WindowDataset,
    test_fraction: float | None = None,
    test_subjects: Sequence[int] | None = None,
    seed: int = 0,
) -> tuple[WindowDataset, WindowDataset]:
    """Split by subject so no subject appears on both sides.

    Parameters
    ----------
    test_fraction : float, optional
        Share of subjects drawn for the test side (rounded, at least one subject each side).
    test_subjects : sequence of int, optional
        Explicit test subjects; takes precedence over ``test_fraction``.
    seed : int
        Seed of the subject draw.
    """
    subjects = np.unique(ds.subject)
    if test_subjects is not None:
        chosen = np.asarray(list(test_subjects), dtype=np.int64)
        unknown = sorted(set(chosen.tolist()) - set(subjects.tolist()))
        if unknown:
            raise DataError(
                f"dataset `{ds.name}`: test subjects {unknown} are not in the data; subjects present: "
                f"{subjects.tolist()}."
            )
        if len(np.setdiff1d(subjects, chosen)) == 0:
            raise DataError(f"dataset `{ds.name}`: every subject is a test subject; the train side would be empty.")
    else:
        if test_fraction is None or not 0.0 < test_fraction < 1.0:
            raise DataError(f"subject_split needs test_fraction in (0, 1) or test_subjects; got {test_fraction}.")
        if len(subjects) < 2:
            raise DataError(f"dataset `{ds.name}` has {len(subjects)} subject(s); a subject split needs at least 2.")
        from sklearn.model_selection import GroupShuffleSplit

        n_test = int(np.clip(round(test_fraction * len(subjects)), 1, len(subjects) - 1))
        gss = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        _, test_idx = next(gss.split(subjects, groups=subjects))
        chosen = subjects[test_idx]
    test = np.isin(ds.subject, chosen)
    return ds.subset(~test), ds.subset(test)


def stratified_split(ds: WindowDataset, test_fraction: float, seed: int = 0) -> tuple[WindowDataset, WindowDataset]:
    """Random split of windows keeping class proportions (windows of a subject may fall on both sides)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"stratified_split: test_fraction must be in (0, 1); got {test_fraction}.")
    idx = np.arange(len(ds))
    try:
        train, test = train_test_split(idx, test_size=test_fraction, stratify=ds.y, random_state=seed)
    except ValueError as exc:
        counts = {c: int(n) for c, n in zip(ds.classes, ds.class_counts()) if n}
        raise DataError(f"dataset `{ds.name}`: cannot stratify ({exc}). Class counts: {counts}.") from None
    return ds.subset(np.sort(train)), ds.subset(np.sort(test))


def random_split(ds: WindowDataset, val_fraction: float, test_fraction: float,
                 seed: int = 0) -> tuple[WindowDataset, WindowDataset, WindowDataset]:
    """LIMU-BERT's partition: shuffle the windows, then the first ``int(N * train)`` train, the next
    ``int(N * val)`` validation and the rest test (``train = 1 - val - test``).

    With N = 2088 and 80/10/10 this gives 1670 / 208 / 210 windows, as LIMU-BERT's
    ``partition_and_reshape`` does. The shuffle is seeded (numpy's ``default_rng(seed)``), so the
    split is fixed for a seed, though not the same permutation as LIMU-BERT's global-seed shuffle.
    """
    if not 0.0 <= val_fraction < 1.0 or not 0.0 < test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise DataError(f"random_split: need val_fraction + test_fraction < 1; got {val_fraction} + {test_fraction}.")
    n = len(ds)
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(n * round(1.0 - val_fraction - test_fraction, 10))
    n_val = int(n * val_fraction)
    return (ds.subset(np.sort(perm[:n_train])), ds.subset(np.sort(perm[n_train:n_train + n_val])),
            ds.subset(np.sort(perm[n_train + n_val:])))


def balanced_budget_k(ds: WindowDataset, fraction: float) -> int:
    """LIMU-BERT's balanced label rate: ``min(smallest class, int(N * fraction / classes))``, at least 1."""
    counts = ds.class_counts()
    present = counts[counts > 0]
    return max(1, min(int(present.min()), int(len(ds) * fraction / len(present))))


def label_budget(
    ds: WindowDataset, k_per_class: int | None = None, fraction: float | None = None, seed: int = 0,
    short: str = "error", where: str = "data.label_budget_k",
) -> WindowDataset:
    """Keep a labelled budget of ``ds``: exactly ``k_per_class`` windows per class, or a fraction.

    Classes without any window are skipped. Rows keep their original order; the draw depends
    only on ``seed``.

    Parameters
    ----------
    k_per_class : int, optional
        Windows per class; a present class with fewer raises :class:`DataError` naming ``where``,
        or with ``short="all"`` keeps all of its windows (a study that must run every budget on
        a capped dataset; it records the windows it got).
    fraction : float, optional
        Share of each class (rounded, at least one window per present class).
    """
    if (k_per_class is None) == (fraction is None):
        raise DataError("label_budget: give exactly one of k_per_class or fraction.")
    if k_per_class is not None and k_per_class < 1:
        raise DataError(f"label_budget: k_per_class must be >= 1; got {k_per_class}.")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise DataError(f"label_budget: fraction must be in (0, 1]; got {fraction}.")
    rng = np.random.default_rng(seed)
    keep = []
    for c, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.y == c)
        if len(idx) == 0:
            continue
        if k_per_class is not None:
            if len(idx) < k_per_class and short != "all":
                raise DataError(
                    f"dataset `{ds.name}`: class `{name}` has {len(idx)} windows, fewer than the "
                    f"{k_per_class} asked for per class; lower `{where}`."
                )
            n = min(k_per_class, len(idx))
        else:
            n = max(1, int(np.floor(fraction * len(idx) + 0.5)))  # round half up
        keep.append(rng.choice(idx, size=n, replace=False))
    return ds.subset(np.sort(np.concatenate(keep))) if keep else ds.subset(np.zeros(0, dtype=np.int64))


def fit_channel_stats(ds: WindowDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over all windows and time steps (pass the train side only).

    Returns
    -------
    mean, std
        float32 arrays of shape ``(C,)``; ``std`` floored at 1e-6.
    """
    if len(ds) == 0:
        raise DataError(f"dataset `{ds.name}` is empty; cannot fit channel statistics.")
    mean = ds.X.mean(axis=(0, 2), dtype=np.float64)
    std = np.maximum(ds.X.std(axis=(0, 2), dtype=np.float64), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def apply_channel_stats(ds: WindowDataset, mean: np.ndarray, std: np.ndarray) -> WindowDataset:
    """Standardise ``ds`` with statistics from :func:`fit_channel_stats`."""
    if np.shape(mean) != (ds.num_channels,) or np.shape(std) != (ds.num_channels,):
        raise DataError(f"channel stats have shapes {np.shape(mean)}/{np.shape(std)}; expected ({ds.num_channels},).")
    X = (ds.X - np.asarray(mean, np.float32)[None, :, None]) / np.asarray(std, np.float32)[None, :, None]
    return ds.replace(X=X.astype(np.float32))


def chronological_rows(day: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the first days (train) and of the last ``ceil(test_fraction * days)`` days (test).

    Splitting by calendar day keeps every test window after every training window, so a model
    is never tested on days before those it trained on.
    """
    day = np.asarray(day).astype(np.int64)
    days = np.unique(day)
    if len(days) < 2:
        raise DataError(f"a chronological split needs at least 2 days; the data covers {len(days)}.")
    n_test = min(len(days) - 1, max(1, int(np.ceil(test_fraction * len(days)))))
    first_test = days[len(days) - n_test]
    return np.flatnonzero(day < first_test), np.flatnonzero(day >= first_test)


def chronological_split(ds: WindowDataset, test_fraction: float) -> tuple[WindowDataset, WindowDataset]:
    """Per subject (a home, for event data): its last days are test days (``extras["day"]``)."""
    if "day" not in ds.extras:
        raise DataError(f"`data.split: chronological` needs a `day` column; dataset `{ds.name}` has none "
                        "(the smarthome format writes one).")
    day = np.asarray(ds.extras["day"]).astype(np.int64)
    train_rows, test_rows = [], []
    for s in np.unique(ds.subject):
        rows = np.flatnonzero(ds.subject == s)
        try:
            tr, te = chronological_rows(day[rows], test_fraction)
        except DataError as exc:
            raise DataError(f"dataset `{ds.name}`, subject {int(s)}: {exc.reason}") from None
        train_rows.append(rows[tr])
        test_rows.append(rows[te])
    return ds.subset(np.sort(np.concatenate(train_rows))), ds.subset(np.sort(np.concatenate(test_rows)))
