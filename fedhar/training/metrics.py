"""Classification metrics from scikit-learn, in the one dict shape every report uses."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, labels: Sequence[int] | None = None
) -> dict:
    """Accuracy, macro-F1 and confusion matrix.

    ``labels`` restricts macro-F1 to a class subset (label masks: a dataset is never scored on
    classes it does not have); by default all classes present in truth or prediction count.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if labels is None:
        labels = sorted(set(np.unique(y_true)) | set(np.unique(y_pred)))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(labels), average="macro", zero_division=0)),
        "confusion": confusion_matrix(y_true, y_pred, labels=list(range(num_classes))).tolist(),
    }


def per_class_f1(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> dict[str, float | None]:
    """F1 of each class from a confusion matrix (rows true, columns predicted), keyed by class name;
    None for a class neither present nor predicted (its F1 is undefined, not 0)."""
    m = np.asarray(confusion, dtype=np.int64)
    out: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        tp, fp, fn = m[k, k], m[:, k].sum() - m[k, k], m[k].sum() - m[k, k]
        out[str(name)] = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else None
    return out
