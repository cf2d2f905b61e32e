"""The federated results' table, per-class F1 and plots, on hand-made rounds (no federation)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from fedhar.federated.plots import bytes_png, cumulative_mb, rounds_png
from fedhar.federated.results import METRICS_EXPLAINED, format_table
from fedhar.training.metrics import per_class_f1

ROWS = [{"round": 0, "accuracy": 0.2, "macro_f1": 0.1},
        {"round": 1, "accuracy": 0.5, "macro_f1": 0.4, "fed_macro_f1": 0.45, "train_loss": 1.2, "bytes_up": 2_000_000,
         "bytes_down": 3_000_000, "messages_up": 4, "messages_down": 8, "clients": 4, "failures": 0, "seconds": 2.0},
        {"round": 2, "accuracy": 0.7, "macro_f1": 0.6, "fed_macro_f1": 0.65, "train_loss": 0.9, "bytes_up": 2_000_000,
         "bytes_down": 3_000_000, "messages_up": 4, "messages_down": 8, "clients": 4, "failures": 0, "seconds": 2.0}]


def test_table_names_its_scores_and_explains_them():
    comm = {"total_bytes": 10_000_000, "messages": 24, "ratio_to_full_model": 0.01,
            "full_model_bytes_equivalent": 10**9, "update_bytes": 500_000}
    keys = ("accuracy", "macro_f1", "fed_macro_f1", "clients", "failures", "bytes_up", "bytes_down", "seconds")
    text = format_table({"rounds": [{k: r.get(k) for k in ("round", *keys)} for r in ROWS[1:]],
                         "communication": comm, "warnings": ["`federated.min_train_clients` is 6 ..."]})
    head, *_ = text.splitlines()
    assert "heldout F1" in head and "clients' F1" in head and "fedF1" not in head and "macroF1" not in head
    assert "central held-out test split" in text and "local test windows" in text
    assert "warning: `federated.min_train_clients` is 6 ..." in text
    assert {"accuracy", "macro_f1", "fed_macro_f1", "per_class_f1"} <= set(METRICS_EXPLAINED)


def test_per_class_f1_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 3, 200)  # class 3 never predicted
    matrix = [[int(((y == i) & (p == j)).sum()) for j in range(4)] for i in range(4)]
    got = per_class_f1(matrix, ["a", "b", "c", "d"])
    want = f1_score(y, p, labels=[0, 1, 2, 3], average=None, zero_division=0)
    assert list(got) == ["a", "b", "c", "d"] and np.allclose(list(got.values()), want) and got["d"] == 0.0


def test_cumulative_bytes_start_at_zero_beside_full_model_fl():
    xs, sent, full = cumulative_mb(ROWS[1:], full_model_bytes=1_000_000)
    assert xs == [0, 1, 2] and sent == [0.0, 5.0, 10.0] and full == [0.0, 12.0, 24.0]


def test_plots_are_written(tmp_path):
    rounds_png(tmp_path / "rounds.png", ROWS, "demo")
    bytes_png(tmp_path / "bytes.png", ROWS[1:], 1_000_000, "demo")
    assert (tmp_path / "rounds.png").stat().st_size > 1000 and (tmp_path / "bytes.png").stat().st_size > 1000
