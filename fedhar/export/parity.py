"""Does the exported file predict what the PyTorch model predicts? Measured on real windows.

The reference is the trained model in float32 eager PyTorch, before LoRA is merged, so the
check covers the merge, the export and any quantisation together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from fedhar.exceptions import ExportError
from fedhar.training.metrics import classification_metrics

DEFAULT_MIN_AGREEMENT = {"none": 0.995, "int8": 0.99, "int4": 0.95}
"""Argmax agreement an export must reach, by quantisation (``--min-agreement`` overrides)."""

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""An exported model: windows ``(N, C, T)`` to ``(probabilities, logits)``."""


@dataclass
class Parity:
    """The exported model against PyTorch on the same windows."""

    windows: int
    max_abs_logit_diff: float
    agreement: float
    """Share of windows where the exported model's argmax equals PyTorch's."""
    macro_f1: float
    """The exported model's macro-F1 against the true labels."""
    macro_f1_torch: float
    accuracy: float
    min_agreement: float
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def run_batched(runner: Runner, X: np.ndarray, batch: int = 64) -> np.ndarray:
    """The runner's logits for every window of ``X``, ``batch`` windows at a time."""
    parts = [runner(X[i : i + batch])[1] for i in range(0, len(X), batch)]
    return np.concatenate(parts).astype(np.float32)


def measure_parity(reference_logits: np.ndarray, logits: np.ndarray, y: np.ndarray, num_classes: int,
                   min_agreement: float) -> Parity:
    """Compare logits ``(N, K)`` of the exported model with PyTorch's on windows labelled ``y``."""
    if reference_logits.shape != logits.shape:
        raise ExportError(f"the exported model returns logits of shape {logits.shape}; PyTorch gives "
                          f"{reference_logits.shape}.")
    if not np.isfinite(logits).all():
        return Parity(len(y), float("inf"), 0.0, 0.0, _f1(reference_logits, y, num_classes), 0.0, min_agreement, False)
    pred, ref = logits.argmax(1), reference_logits.argmax(1)
    agreement = float((pred == ref).mean())
    m = classification_metrics(y, pred, num_classes)
    return Parity(windows=len(y), max_abs_logit_diff=float(np.abs(logits - reference_logits).max()),
                  agreement=agreement, macro_f1=float(m["macro_f1"]), macro_f1_torch=_f1(reference_logits, y, num_classes),
                  accuracy=float(m["accuracy"]), min_agreement=float(min_agreement), passed=agreement >= min_agreement)


def _f1(logits: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    return float(classification_metrics(y, logits.argmax(1), num_classes)["macro_f1"])


def require(parity: Parity, where: str) -> None:
    """Raise ExportError when ``parity`` is below its threshold."""
    if not parity.passed:
        raise ExportError(f"{where}: argmax agreement with PyTorch is {100 * parity.agreement:.2f}% on "
                          f"{parity.windows} windows, below the required {100 * parity.min_agreement:.2f}% (max |logit "
                          f"difference| {parity.max_abs_logit_diff:.3g}); the export is rejected. Lower the bar with "
                          "--min-agreement if this is expected (e.g. for int4).")
