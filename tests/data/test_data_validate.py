"""check_arrays and the npz loader on bad input: every error names the file and the problem."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fedhar.data import check_arrays, load
from fedhar.exceptions import ConfigError, DataError


def _arrays(n=6, c=3, t=16):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, c, t)).astype(np.float32), np.arange(n) % 3, np.arange(n) // 3


def test_check_arrays_ok_and_casts():
    X, y, s = _arrays()
    X2, y2, s2, dropped = check_arrays(X, y.astype(float), source="f.npz", classes=("a", "b", "c"), subject=s)
    assert dropped == 0 and y2.dtype == np.int64 and s2.dtype == np.int64 and X2.shape == X.shape


def test_wrong_rank():
    X, y, _ = _arrays()
    with pytest.raises(DataError, match=r"f\.npz: windows `X` must have rank 3 .*got shape \(6, 48\)"):
        check_arrays(X.reshape(6, -1), y, source="f.npz")


def test_mismatched_lengths():
    X, y, s = _arrays()
    with pytest.raises(DataError, match=r"f\.npz: `X` has 6 windows but `y` has 5 labels"):
        check_arrays(X, y[:5], source="f.npz")
    with pytest.raises(DataError, match=r"f\.npz: `X` has 6 windows but `subject` has shape \(4,\)"):
        check_arrays(X, y, source="f.npz", subject=s[:4])


def test_labels_out_of_range():
    X, y, _ = _arrays()
    y[4] = 7
    with pytest.raises(DataError, match=r"f\.npz: 1 labels are outside the class list: values \[7\], first at index 4"):
        check_arrays(X, y, source="f.npz", classes=("a", "b", "c"))
    y[4] = -1
    with pytest.raises(DataError, match="outside the class list"):
        check_arrays(X, y, source="f.npz")


def test_non_integer_labels():
    X, y, _ = _arrays()
    with pytest.raises(DataError, match="`y` must hold integers"):
        check_arrays(X, y + 0.5, source="f.npz")


def test_nan_error_and_drop():
    X, y, s = _arrays()
    X[2, 0, 3] = np.nan
    X[5, 1, 0] = np.inf
    with pytest.raises(DataError, match=r"f\.npz: 2 of 6 windows contain NaN/Inf values \(first at index 2\).*nan_policy"):
        check_arrays(X, y, source="f.npz")
    X2, y2, s2, dropped = check_arrays(X, y, source="f.npz", subject=s, nan_policy="drop")
    assert dropped == 2 and len(X2) == len(y2) == len(s2) == 4
    assert np.array_equal(y2, y[[0, 1, 3, 4]]) and np.isfinite(X2).all()
    with pytest.raises(DataError, match="nan_policy"):
        check_arrays(X, y, source="f.npz", nan_policy="ignore")


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.npz: no such file"):
        load(tmp_path / "nope.npz", format="npz")
    with pytest.raises(DataError, match=r"nope\.npz: no such file or folder"):
        load(tmp_path / "nope.npz")


def test_npz_missing_key_lists_keys(tmp_path):
    X, y, _ = _arrays()
    f = _write_npz(tmp_path / "d.npz", X=X, labels=y, rate_hz=50.0)
    with pytest.raises(DataError, match=r"d\.npz: missing required key `y`; keys present: X, labels, rate_hz"):
        load(f)


def test_npz_missing_rate_suggests_option(tmp_path):
    X, y, _ = _arrays()
    f = _write_npz(tmp_path / "d.npz", X=X, y=y)
    with pytest.raises(DataError, match=r"missing key `rate_hz`.*rate_hz="):
        load(f)
    ds = load(f, rate_hz=20.0)
    assert ds.rate_hz == 20.0 and ds.classes == ("class_0", "class_1", "class_2")
    assert ds.channels == ("ch0", "ch1", "ch2") and ds.units == ("unknown",) * 3 and ds.name == "d"


def test_npz_bad_content(tmp_path, caplog):
    X, y, s = _arrays()
    with pytest.raises(DataError, match=r"d1\.npz: windows `X` must have rank 3"):
        load(_write_npz(tmp_path / "d1.npz", X=X[:, 0], y=y, rate_hz=50.0))
    with pytest.raises(DataError, match=r"d2\.npz: `X` has 6 windows but `y` has 4"):
        load(_write_npz(tmp_path / "d2.npz", X=X, y=y[:4], rate_hz=50.0))
    with pytest.raises(DataError, match=r"d3\.npz: .*outside the class list"):
        load(_write_npz(tmp_path / "d3.npz", X=X, y=y + 1, classes=np.array(["a", "b", "c"]), rate_hz=50.0))
    X[1, 2, 2] = np.nan
    f = _write_npz(tmp_path / "d4.npz", X=X, y=y, subject=s, rate_hz=50.0, official_test=np.arange(6) > 3)
    with pytest.raises(DataError, match=r"d4\.npz: 1 of 6 windows contain NaN/Inf"):
        load(f)
    with caplog.at_level(logging.WARNING):
        ds = load(f, nan_policy="drop")
    assert "dropped 1 of 6 windows with NaN/Inf" in caplog.text
    assert len(ds) == 5 and ds.extras["official_test"].tolist() == [False, False, False, True, True]


def test_unknown_option_and_format(tmp_path):
    X, y, _ = _arrays()
    f = _write_npz(tmp_path / "d.npz", X=X, y=y, rate_hz=50.0)
    with pytest.raises(ConfigError, match=r"Unknown option `window` for data format `npz`.*Valid options: rate_hz"):
        load(f, window=64)
    with pytest.raises(ConfigError, match=r"Unknown data format `csv`.*Valid choices: hapt, limu, motionsense, npz"):
        load(f, format="csv")
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.md: cannot detect the data format.*format="):
        load(tmp_path / "notes.md")
