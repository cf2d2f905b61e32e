"""Replay buffer: bounded in windows and bytes, uniform over the stream, persistent."""

import numpy as np
import pytest

from fedhar.continual import ReservoirBuffer
from fedhar.data import make_synthetic
from fedhar.exceptions import ConfigError, DataError

from continual_helpers import assert_state_equal


def _arrays(start, n, shape=(3, 8)):
    X = np.zeros((n, *shape), np.float32) + np.arange(start, start + n, dtype=np.float32)[:, None, None]
    idx = np.arange(start, start + n)
    return X, idx % 6, idx


def _check_consistent(buf):
    # Every stored window is intact: X, y and subject come from the same offered window.
    if len(buf):
        assert np.array_equal(buf.X[:, 0, 0].astype(np.int64), buf.subject)
        assert np.array_equal(buf.subject % 6, buf.y)
        assert len(np.unique(buf.subject)) == len(buf)


def test_never_exceeds_windows_and_bytes():
    bpw = 3 * 8 * 4 + 8 + 8  # X row float32 + y int64 + subject int64
    for cap_w, cap_b, expected in [(50, None, 50), (50, 20 * bpw + 5, 20), (10, 10**9, 10), (0, None, 0)]:
        buf = ReservoirBuffer(cap_w, cap_b, seed=1)
        rng = np.random.default_rng(0)
        start = 0
        for _ in range(12):
            n = int(rng.integers(0, 40))
            buf.add(_arrays(start, n))
            start += n
            assert buf.seen == start
            assert len(buf) == min(start, expected) <= cap_w
            assert buf.nbytes == buf.X.nbytes + buf.y.nbytes + buf.subject.nbytes == len(buf) * bpw
            if cap_b is not None:
                assert buf.nbytes <= cap_b
            _check_consistent(buf)
        assert buf.capacity == expected and buf.bytes_per_window == bpw


def test_reservoir_is_uniform_over_the_stream():
    n, cap, trials = 600, 60, 150
    counts = np.zeros(n)
    for trial in range(trials):
        buf = ReservoirBuffer(cap, seed=trial)
        rng = np.random.default_rng(1000 + trial)
        start = 0
        while start < n:  # uneven chunks, as experiences of different sizes
            k = min(int(rng.integers(1, 120)), n - start)
            buf.add(_arrays(start, k, shape=(1, 1)))
            start += k
        _check_consistent(buf)
        counts[buf.subject] += 1
    expected = trials * cap / n  # 15 per window
    assert counts.sum() == trials * cap
    blocks = counts.reshape(10, -1).sum(1)  # 10 stream segments, 900 expected each (sd ~ 28)
    assert np.all(np.abs(blocks - expected * n / 10) < 0.1 * expected * n / 10), blocks
    assert abs(counts[: n // 2].mean() - counts[n // 2 :].mean()) < 0.1 * expected


def test_state_round_trip_continues_identically():
    a = ReservoirBuffer(25, 10**6, seed=3)
    a.add(_arrays(0, 40))
    b = ReservoirBuffer(1, seed=99)
    b.load_state_dict(a.state_dict())
    assert_state_equal(a.state_dict(), b.state_dict())
    a.add(_arrays(40, 30))
    b.add(_arrays(40, 30))
    assert_state_equal(a.state_dict(), b.state_dict())
    assert a.seen == b.seen == 70


def test_dataset_in_and_out():
    ds = make_synthetic(n_per_class=4, subjects=2, window=32, seed=0)
    buf = ReservoirBuffer(10, seed=0)
    assert len(buf.as_dataset(ds)) == 0
    buf.add(ds)
    out = buf.as_dataset(ds)
    assert len(out) == 10 and out.classes == ds.classes and out.channels == ds.channels
    rows = [int(np.flatnonzero((ds.X == x).all(axis=(1, 2)))[0]) for x in out.X]
    assert np.array_equal(ds.y[rows], out.y) and np.array_equal(ds.subject[rows], out.subject)


def test_bad_input():
    with pytest.raises(ConfigError):
        ReservoirBuffer(-1)
    buf = ReservoirBuffer(5)
    buf.add(_arrays(0, 3))
    with pytest.raises(DataError):
        buf.add(_arrays(3, 3, shape=(2, 8)))
    with pytest.raises(DataError):
        buf.add(np.zeros((3, 3, 8), np.float32))
