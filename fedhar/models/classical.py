"""Classical baseline: statistical window features + a scikit-learn random forest.

Every fedhar comparison includes it, because with all labels it is a strong, cheap reference.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def window_features(X: np.ndarray) -> np.ndarray:
    """Per-channel and per-sensor-magnitude statistics: ``(N, C, T) -> (N, F)``."""
    X = np.asarray(X, dtype=np.float32)
    n, c, _ = X.shape
    mags = [np.linalg.norm(X[:, i : i + 3], axis=1, keepdims=True) for i in range(0, c - c % 3, 3)]
    S = np.concatenate([X, *mags], axis=1) if mags else X
    d = np.diff(S, axis=2)
    spec = np.abs(np.fft.rfft(S, axis=2))[:, :, 1:]
    feats = [
        S.mean(2), S.std(2), S.min(2), S.max(2),
        *np.percentile(S, [10, 25, 50, 75, 90], axis=2),
        np.abs(d).mean(2), d.std(2),
        (S**2).mean(2),
        spec.argmax(2).astype(np.float32), spec.max(2), (spec * np.arange(spec.shape[2])).sum(2) / (spec.sum(2) + 1e-8),
    ]
    iu = np.triu_indices(c, 1)
    Z = (X - X.mean(2, keepdims=True)) / (X.std(2, keepdims=True) + 1e-8)
    corr = np.einsum("nit,njt->nij", Z, Z) / X.shape[2]
    feats.append(corr[:, iu[0], iu[1]])
    return np.concatenate(feats, axis=1).astype(np.float32)


class ClassicalModel:
    """Random forest over :func:`window_features`; same fit/predict role as the neural models."""

    def __init__(self, trees: int = 300, seed: int = 0, n_jobs: int = -1) -> None:
        self.forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=n_jobs)
        self.backbone_name = "classical"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "ClassicalModel":
        self.forest.fit(window_features(X), y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.forest.predict(window_features(X))

    def scores(self, X: np.ndarray, num_classes: int) -> np.ndarray:
        """``(N, num_classes)`` class probabilities (zero for classes the forest never saw), so
        label masks apply to the forest as they do to the networks."""
        out = np.zeros((len(X), num_classes), dtype=np.float32)
        out[:, self.forest.classes_] = self.forest.predict_proba(window_features(X))
        return out

    def param_counts(self) -> dict[str, int]:
        nodes = sum(t.tree_.node_count for t in self.forest.estimators_) if hasattr(self.forest, "estimators_") else 0
        return {"total_params": int(nodes), "trainable_params": int(nodes), "backbone_params": 0}


FOREST_FILE, CLASSICAL_META = "forest.joblib", "classical.json"


def save_classical(model: ClassicalModel, folder, classes, channels, window_length: int) -> None:
    """Write a fitted forest (joblib, scikit-learn's own persistence) and what it was fitted on,
    so the run can be exported (``fedhar export``). Load only files you trust: joblib unpickles."""
    import json
    from pathlib import Path

    import joblib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.forest, folder / FOREST_FILE)
    (folder / CLASSICAL_META).write_text(json.dumps({"classes": list(classes), "channels": list(channels),
                                                     "window_length": int(window_length)}, indent=2))


def load_classical(folder) -> tuple[RandomForestClassifier, dict]:
    """The forest and metadata :func:`save_classical` wrote."""
    import json
    from pathlib import Path

    import joblib

    folder = Path(folder)
    return joblib.load(folder / FOREST_FILE), json.loads((folder / CLASSICAL_META).read_text())
