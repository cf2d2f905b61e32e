"""build_experiences: consecutive phases, class filtering, absent gyroscope, gradual mixing,
determinism; and one run on the real HAPT streams."""

from __future__ import annotations

import numpy as np
import pytest
from drift_helpers import make_streams

from fedhar.data.loaders.hapt import read_hapt_streams
from fedhar.drift import Scenario, build_experiences, load_scenario
from fedhar.exceptions import DataError

WIN = 2.56


def scenario(*phases, **kw) -> Scenario:
    return load_scenario({"name": "t", "phases": list(phases), **kw})


def per_subject(ds, subject):
    m = ds.subject == subject
    return ds.extras["t_start"][m]


def test_phases_consume_time_consecutively(streams):
    scn = scenario(
        {"name": "a", "duration_s": 40},
        {"name": "b", "duration_s": 40, "placement": "trouser_pocket"},
        {"name": "c", "device": "watch", "placement": "wrist"},
    )
    exps = build_experiences(streams, scn)
    assert [e.name for e in exps] == ["a", "b", "c"] and [e.index for e in exps] == [0, 1, 2]
    for subj in (1, 2):
        prev_end = 0.0
        for k, e in enumerate(exps):
            lo, hi = (40.0 * k, 40.0 * (k + 1)) if k < 2 else (80.0, 104.0)
            tr, te = per_subject(e.train, subj), per_subject(e.test, subj)
            assert len(tr) and len(te) and np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)  # time order
            t = np.concatenate([tr, te])
            assert t.min() >= lo - 1e-9 and t.max() + WIN <= hi + 0.02
            assert t.min() >= prev_end - 1e-9  # no overlap with the previous phase
            prev_end = t.max() + WIN
            assert np.abs(tr[:, None] - te[None, :]).min() >= WIN - 1e-9  # no sample in both train and test
    e = exps[1]
    assert set(e.train.placement) == {"trouser_pocket"} and set(e.train.device) == {"reference"}
    assert e.info["seconds"] == pytest.approx(80.0) and e.info["placement"] == "trouser_pocket"
    for e in exps:
        assert e.train.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
        assert e.train.classes == tuple(scn.classes) and e.train.window_length == 128 and e.train.rate_hz == 50


@pytest.mark.parametrize("split", ["per_class", "time"])
def test_chronological_split(streams, split):
    (e,) = build_experiences(streams, scenario({"name": "a", "duration_s": 50}, split=split, test_fraction=0.25))
    for subj in (1, 2):
        tr, te = (d.subset(d.subject == subj) for d in (e.train, e.test))
        if split == "time":  # the last quarter of the phase is test
            assert tr.extras["t_start"].max() + WIN <= te.extras["t_start"].min() + 1e-9
            assert set(te.y) == {5}  # lying, the last activity
        else:  # the last quarter of each class is test: same classes in both, each later in test
            assert set(tr.y) == set(te.y) == {0, 3, 4, 5}
            for c in set(tr.y):
                assert tr.extras["t_start"][tr.y == c].max() < te.extras["t_start"][te.y == c].min()
        n = len(tr) + len(te)
        assert len(te) == pytest.approx(0.25 * n, abs=3)


def test_windows_never_straddle_recordings(streams):
    exps = build_experiences(streams, scenario({"name": "all"}))
    t = np.concatenate([exps[0].train.extras["t_start"], exps[0].test.extras["t_start"]])
    # each recording is 52 s long: a window starting in one must end in it
    assert np.all((t // 52.0) == ((t + WIN - 1e-6) // 52.0))


def test_class_filtering_and_shared_class_list(streams):
    scn = scenario({"name": "a", "duration_s": 50, "classes": ["walking", "standing"]}, {"name": "b"},
                   classes=["walking", "sitting", "standing", "lying"])
    a, b = build_experiences(streams, scn)
    assert a.train.classes == b.train.classes == ("walking", "sitting", "standing", "lying")
    assert set(np.unique(np.r_[a.train.y, a.test.y])) == {0, 2}
    assert set(np.unique(np.r_[b.train.y, b.test.y])) == {0, 1, 2, 3}
    assert a.info["classes"] == ["walking", "standing"]


def test_device_without_gyro_gives_exact_zero_gyro(streams):
    (e,) = build_experiences(streams, scenario({"name": "cheap", "device": "budget_phone"}))
    for ds in (e.train, e.test):
        assert np.all(ds.X[:, 3:] == 0.0) and np.abs(ds.X[:, :3]).max() <= 2.0
    assert e.info["sensors"] == ["acc"]
    (ref,) = build_experiences(streams, scenario({"name": "ref"}))
    assert np.abs(ref.train.X[:, 3:]).max() > 0.1


def test_gradual_transition_mixes_both_settings(streams):
    scn = scenario(
        {"name": "a", "duration_s": 20},
        {"name": "b", "duration_s": 60, "device": "watch", "placement": "wrist",
         "transition": "gradual", "transition_s": 40, "classes": ["walking", "sitting", "standing", "lying"]},
        test_fraction=0.0,
    )
    _, b = build_experiences(streams, scn)
    t, dev, place = b.train.extras["t_start"], b.train.device, b.train.placement
    early, late = t < 20 + 10, t >= 20 + 40
    assert set(dev[t < 60]) == {"reference", "watch"}  # both within the transition span
    assert set(dev[late]) == {"watch"} and set(place[late]) == {"wrist"}
    assert np.array_equal(dev == "reference", place == "waist")  # device and placement switch together
    assert (dev[early] == "reference").mean() > (dev[(t >= 40) & (t < 60)] == "reference").mean()


def test_deterministic_for_a_seed(streams):
    phases = ({"name": "a", "duration_s": 30, "device": "flagship_phone", "placement": "hand"},
              {"name": "b", "device": "budget_phone", "placement": "bag", "transition": "gradual", "transition_s": 10})
    one = build_experiences(streams, scenario(*phases, seed=3))
    two = build_experiences(make_streams(), scenario(*phases, seed=3))
    other = build_experiences(streams, scenario(*phases, seed=4))
    for e1, e2, e3 in zip(one, two, other):
        for split in ("train", "test"):
            d1, d2, d3 = getattr(e1, split), getattr(e2, split), getattr(e3, split)
            assert np.array_equal(d1.X, d2.X) and np.array_equal(d1.y, d2.y) and np.array_equal(d1.device, d2.device)
            assert np.array_equal(d1.extras["t_start"], d2.extras["t_start"])
            assert d1.X.shape != d3.X.shape or not np.array_equal(d1.X, d3.X)


def test_same_device_keeps_its_calibration_across_phases(streams):
    dev = {"name": "biased", "bias": 0.2}
    a, b = build_experiences(streams, scenario({"name": "a", "duration_s": 14, "device": dev},
                                               {"name": "b", "duration_s": 10, "device": dev}))
    # standing (x = 1 g) at the start of both phases: the same instance bias in both
    mean_a = a.train.X[a.train.subject == 1][:, :3].mean(axis=(0, 2))
    mean_b = b.train.X[b.train.subject == 1][:, :3].mean(axis=(0, 2))
    assert np.allclose(mean_a, mean_b, atol=0.01) and np.abs(mean_a - [1, 0, 0]).max() > 0.02


def test_errors_name_the_phase(streams):
    with pytest.raises(DataError, match=r"phase 'late' \(#2\).*used up"):
        build_experiences(streams, scenario({"name": "early", "duration_s": 500}, {"name": "late", "duration_s": 10}))
    with pytest.raises(DataError, match=r"phase 'a' \(#1\): subject\(s\) \[9\]"):
        build_experiences(streams, scenario({"name": "a", "subjects": [9]}))
    with pytest.raises(DataError, match="jogging"):
        build_experiences(streams, scenario({"name": "a"}, classes=["walking", "jogging"]))


def test_real_hapt_streams_two_phases(real_data):
    hapt = read_hapt_streams(real_data / "hapt_raw.npz")
    scn = scenario({"name": "waist", "duration_s": 60, "subjects": [1, 2]},
                   {"name": "pocket", "duration_s": 60, "subjects": [1, 2], "placement": "trouser_pocket"})
    exps = build_experiences(hapt, scn)
    static = [scn.classes.index(c) for c in ("sitting", "standing", "lying")]
    for e in exps:
        ds = e.train
        assert ds.X.shape[1:] == (6, 128) and len(ds) > 20 and len(e.test) > 5
        assert ds.classes == ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying")
        assert set(np.unique(ds.subject)) == {1, 2}
        rest = np.isin(ds.y, static)
        assert rest.sum() > 10
        g = np.linalg.norm(ds.X[rest, :3].mean(axis=2), axis=1)
        assert np.all(np.abs(g - 1.0) < 0.15), g
    standing = scn.classes.index("standing")
    waist, pocket = (e.train.X[e.train.y == standing, :3].mean(axis=(0, 2)) for e in exps)
    assert waist[0] > 0.8 and pocket[0] < -0.8  # standing: the pocket phone is upside down
