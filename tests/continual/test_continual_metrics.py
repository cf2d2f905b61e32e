"""The continual-learning metric formulas, against numbers computed by hand."""

import numpy as np
import pytest

from fedhar.continual import AccuracyMatrix, continual_metrics

R = [[0.9, 0.1, 0.2],
     [0.6, 0.8, 0.3],
     [0.5, 0.7, 0.9]]
B = [0.1, 0.2, 0.3]


def test_hand_computed_3x3():
    m = continual_metrics(R, B)
    assert m["acc"] == pytest.approx((0.5 + 0.7 + 0.9) / 3) == pytest.approx(0.7)
    assert m["bwt"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2) == pytest.approx(-0.25)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2) == pytest.approx(0.25)
    assert m["fwt"] == pytest.approx(((0.1 - 0.2) + (0.3 - 0.3)) / 2) == pytest.approx(-0.05)
    assert m["T"] == 3 and m["matrix"] == R


def test_forgetting_uses_the_best_earlier_score_not_the_diagonal():
    # Phase 0 peaks after phase 1 (0.8), phase 1 peaks on its diagonal (0.6).
    R2 = [[0.5, 0.0, 0.1],
          [0.8, 0.6, 0.2],
          [0.6, 0.4, 0.7]]
    m = continual_metrics(np.array(R2))
    assert m["acc"] == pytest.approx((0.6 + 0.4 + 0.7) / 3)
    assert m["bwt"] == pytest.approx(((0.6 - 0.5) + (0.4 - 0.6)) / 2)  # -0.05
    assert m["forgetting"] == pytest.approx(((0.8 - 0.6) + (0.6 - 0.4)) / 2)  # 0.2
    assert m["fwt"] is None  # no baseline


def test_single_phase():
    m = continual_metrics([[0.42]], [0.1])
    assert m["acc"] == pytest.approx(0.42)
    assert m["bwt"] is None and m["forgetting"] is None and m["fwt"] is None


def test_nan_entries_are_left_out_and_shown_as_none():
    m = continual_metrics([[0.9, np.nan], [0.5, 0.8]], [np.nan, 0.3])
    assert m["acc"] == pytest.approx(0.65)
    assert m["bwt"] == pytest.approx(-0.4) and m["forgetting"] == pytest.approx(0.4)
    assert m["fwt"] is None  # R[0][1] missing: no finite FWT term
    assert m["matrix"] == [[0.9, None], [0.5, 0.8]]
    m = continual_metrics([[0.9, 0.1], [np.nan, 0.8]])
    assert m["acc"] == pytest.approx(0.8) and m["bwt"] is None and m["forgetting"] is None


@pytest.mark.parametrize("bad", [[0.1, 0.2], [[0.1, 0.2]], []])
def test_bad_shapes_raise(bad):
    with pytest.raises(ValueError):
        continual_metrics(bad)
    with pytest.raises(ValueError):
        continual_metrics([[1.0, 0.0], [0.0, 1.0]], [0.1, 0.2, 0.3])


def test_accuracy_matrix_accumulates_accuracy_and_macro_f1():
    am = AccuracyMatrix(3)
    F = np.array(R) - 0.05
    for j in range(3):
        am.record_baseline(j, {"accuracy": B[j], "macro_f1": B[j] - 0.05})
        for i in range(3):
            am.record(i, j, {"accuracy": R[i][j], "macro_f1": F[i][j], "confusion": []})
    out = am.summary()
    assert out["accuracy"]["acc"] == pytest.approx(0.7) and out["accuracy"]["fwt"] == pytest.approx(-0.05)
    assert out["macro_f1"]["acc"] == pytest.approx(0.65)
    assert out["macro_f1"]["bwt"] == pytest.approx(-0.25) and out["macro_f1"]["forgetting"] == pytest.approx(0.25)
    assert out["macro_f1"]["fwt"] == pytest.approx(-0.05)
    assert AccuracyMatrix(2).summary()["accuracy"]["fwt"] is None
    with pytest.raises(IndexError):
        am.record(3, 0, {"accuracy": 1.0, "macro_f1": 1.0})
