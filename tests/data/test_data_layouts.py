"""Each loader on a small fixture written in the dataset's published layout."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fedhar.data import detect_format, load, make_synthetic, read_hapt_streams
from fedhar.data.loaders.hapt import CLASSES as HAPT_CLASSES
from fedhar.exceptions import ConfigError, DataError

UCI_CLASSES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
UCI_CHANNELS = [f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz"]


# --------------------------------------------------------------------------- UCI-HAR
def _uci_files(n_train=5, n_test=3, T=128) -> dict[str, str]:
    """Relative path -> text, as in the published `UCI HAR Dataset` folder."""
    files = {"activity_labels.txt": "".join(f"{i + 1} {c}\n" for i, c in enumerate(UCI_CLASSES))}
    for split, n, subj in (("train", n_train, 1), ("test", n_test, 2)):
        files[f"{split}/y_{split}.txt"] = "".join(f"{i % 6 + 1}\n" for i in range(n))
        files[f"{split}/subject_{split}.txt"] = "".join(f"{subj + i % 2}\n" for i in range(n))
        for c, ch in enumerate(UCI_CHANNELS):
            rows = [(100 * c + i + np.arange(T) / 1000.0) * (1 if split == "train" else -1) for i in range(n)]
            files[f"{split}/Inertial Signals/{ch}_{split}.txt"] = "".join(
                " " + " ".join(f" {v:.7e}" for v in row) + "\n" for row in rows
            )
    return files


def _write_uci_folder(root: Path) -> Path:
    top = root / "UCI HAR Dataset"
    for rel, text in _uci_files().items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    return top


def _check_uci(ds):
    assert ds.X.shape == (8, 9, 128) and ds.channels == tuple(UCI_CHANNELS)
    assert ds.units == ("g",) * 3 + ("rad/s",) * 3 + ("g",) * 3 and ds.rate_hz == 50.0
    assert ds.classes == tuple(UCI_CLASSES) and ds.name == "uci_har"
    assert ds.y.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert ds.subject.tolist() == [1, 2, 1, 2, 1, 2, 3, 2]
    assert ds.extras["official_test"].tolist() == [False] * 5 + [True] * 3
    # channel 7 (total_acc_y), train window 2: 100*7 + 2 + t/1000
    assert np.allclose(ds.X[2, 7, :3], [702.0, 702.001, 702.002])
    assert np.allclose(ds.X[5, 0, 1], -0.001) and np.allclose(ds.X[6, 0, 1], -1.001)


def test_uci_folder(tmp_path):
    top = _write_uci_folder(tmp_path)
    assert detect_format(top) == "uci_har" and detect_format(tmp_path) == "uci_har"
    _check_uci(load(top))
    _check_uci(load(tmp_path))  # the folder holding `UCI HAR Dataset`


def test_uci_zip(tmp_path):
    zpath = tmp_path / "UCI HAR Dataset.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("__MACOSX/UCI HAR Dataset/._activity_labels.txt", "junk")
        for rel, text in _uci_files().items():
            z.writestr(f"UCI HAR Dataset/{rel}", text)
    assert detect_format(zpath) == "uci_har"
    _check_uci(load(zpath))
    test_only = load(zpath, splits=("test",))
    assert len(test_only) == 3 and test_only.extras["official_test"].all()


def test_uci_missing_file_and_bad_label(tmp_path):
    top = _write_uci_folder(tmp_path)
    (top / "test" / "Inertial Signals" / "body_gyro_y_test.txt").unlink()
    with pytest.raises(DataError, match=r"body_gyro_y_test\.txt: file is missing \(files in its folder: body_acc_x_test"):
        load(top)
    (top / "train" / "y_train.txt").write_text("1\n2\n9\n1\n1\n")
    with pytest.raises(DataError, match=r"y_train\.txt: activity ids \[9\] are not in activity_labels\.txt"):
        load(top)
    (top / "activity_labels.txt").unlink()
    with pytest.raises(DataError, match=r"activity_labels\.txt: file is missing"):
        load(top, format="uci_har")


def test_uci_zip_missing_member(tmp_path):
    zpath = tmp_path / "uci.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for rel, text in _uci_files().items():
            if not rel.endswith("total_acc_z_train.txt"):
                z.writestr(f"UCI HAR Dataset/{rel}", text)
    with pytest.raises(DataError, match=r"uci\.zip: member `UCI HAR Dataset/train/Inertial Signals/total_acc_z_train\.txt` is missing"):
        load(zpath)


# --------------------------------------------------------------------------- HAPT RawData
def _write_hapt(root: Path, labels: str | None = None) -> Path:
    raw = root / "RawData"
    raw.mkdir(parents=True)
    for exp, user, n in ((1, 1, 600), (2, 1, 400), (3, 2, 300)):
        idx = np.arange(n, dtype=float)
        acc = np.stack([idx, np.full(n, exp), np.zeros(n)], axis=1)  # acc_x = 0-based sample index
        np.savetxt(raw / f"acc_exp{exp:02d}_user{user:02d}.txt", acc, fmt="%.8e", delimiter=" ")
        np.savetxt(raw / f"gyro_exp{exp:02d}_user{user:02d}.txt", -acc, fmt="%.8e", delimiter=" ")
    default = (
        "1 1 5 1 250\n1 1 7 251 300\n1 1 4 301 600\n"  # standing, stand_to_sit, sitting
        "2 1 1 1 128\n2 1 2 129 256\n"  # walking then upstairs, then unlabelled (1-based, inclusive)
        "3 2 6 1 300\n"
    )
    (raw / "labels.txt").write_text(labels or default)
    return raw


def test_hapt_rawdata_windows(tmp_path):
    raw = _write_hapt(tmp_path)
    assert detect_format(raw) == "hapt" and detect_format(tmp_path) == "hapt"
    streams = read_hapt_streams(tmp_path)
    assert [s.experiment for s in streams.streams] == [1, 2, 3] and streams.subjects == [1, 2]
    assert [s.experiment for s in streams.for_subject(1)] == [1, 2]
    assert streams.streams[1].label[[0, 127, 128, 255, 256]].tolist() == [0, 0, 1, 1, -1]
    ds = load(raw)
    assert ds.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert ds.units == ("g",) * 3 + ("rad/s",) * 3 and ds.classes == HAPT_CLASSES[:6]
    exp = ds.extras["experiment"]
    # exp 1: standing [0,128) [64,192); the transition at samples 250..299 drops windows up to start 256
    e1 = exp == 1
    assert np.allclose(ds.extras["t_start"][e1], np.array([0, 64, 320, 384, 448]) / 50.0)
    assert [ds.classes[i] for i in ds.y[e1]] == ["STANDING"] * 2 + ["SITTING"] * 3
    # exp 2: exactly [0,128) walking and [128,256) upstairs (1-based inclusive label bounds)
    e2 = exp == 2
    assert ds.y[e2].tolist() == [0, 1] and ds.X[e2][:, 0, 0].tolist() == [0.0, 128.0]
    assert np.array_equal(ds.X[e2][1, 0], np.arange(128, 256)) and np.array_equal(ds.X[e2][1, 3], -np.arange(128, 256))
    assert ds.subject[exp == 3].tolist() == [2, 2, 2]


def test_hapt_transitions_coverage_and_rate(tmp_path):
    raw = _write_hapt(tmp_path)
    ds = load(raw, window=32, step=16, keep_transitions=True)
    assert len(ds.classes) == 12 and "STAND_TO_SIT" in [ds.classes[i] for i in ds.y]
    loose = load(raw, min_coverage=0.5)
    assert len(loose) > len(load(raw))
    slow = load(raw, rate_hz=25.0, window=64, step=32)
    assert slow.rate_hz == 25.0 and slow.window_length == 64
    assert np.allclose(slow.extras["t_start"][:2], [0.0, 1.28])


def test_hapt_bad_labels(tmp_path):
    raw = _write_hapt(tmp_path, labels="1 1 5 1 250\n2 1 1 300 500\n")
    with pytest.raises(DataError, match=r"labels\.txt: line 2: samples 300\.\.500 are outside 1\.\.400"):
        load(raw)


def test_hapt_missing_files(tmp_path):
    raw = _write_hapt(tmp_path)
    (raw / "gyro_exp02_user01.txt").unlink()
    with pytest.raises(DataError, match=r"`gyro_exp02_user01\.txt` is missing for experiment 2"):
        load(raw)
    (raw / "labels.txt").unlink()
    with pytest.raises(DataError, match=r"labels\.txt: file is missing"):
        load(raw, format="hapt")


def test_hapt_npz_layout(tmp_path):
    n = 500
    label = np.full(n, -1, np.int16)
    label[:400] = 1
    f = tmp_path / "hapt_raw.npz"
    np.savez(f, acc=np.ones((n, 3), np.float32), gyro=np.zeros((n, 3), np.float32), label=label,
             subject=np.full(n, 3, np.int16), experiment=np.r_[np.full(250, 5), np.full(250, 6)].astype(np.int16),
             classes=np.array(HAPT_CLASSES), rate_hz=np.float64(50.0))
    assert detect_format(f) == "hapt"
    ds = load(f, window=100, step=50)
    assert ds.extras["experiment"].tolist() == [5, 5, 5, 5, 6, 6] and (ds.y == 0).all()
    with pytest.raises(DataError, match="HAPT raw-stream archive: load it with format='hapt'"):
        load(f, format="npz")


# --------------------------------------------------------------------------- WISDM raw
WISDM_LINES = [
    "33,Jogging,49105962326000,-0.6946377,12.680544,0.50395286;",
    *[f"33,Jogging,{49106062271000 + i},{i}.0,1.5,2.5;" for i in range(1, 150)],
    "",
    "33,Walking,49106112167000,0.1,0.2,0.3;33,Walking,49106112167001,0.1,0.2,0.3;",
    *[f"33,Walking,{49106112168000 + i},0.5,0.5,{i};" for i in range(140)],
    ";",
    *[f"7,Sitting,{i},9.0,0.0,0.5;" for i in range(130)],
]


def test_wisdm_raw(tmp_path):
    f = tmp_path / "WISDM_ar_v1.1_raw.txt"
    f.write_text("\n".join(WISDM_LINES) + "\n")
    assert detect_format(f) == "wisdm_raw"
    ds = load(f, window=64, step=32)
    assert ds.channels == ("acc_x", "acc_y", "acc_z") and ds.units == ("m/s^2",) * 3 and ds.rate_hz == 20.0
    assert ds.classes == ("Jogging", "Sitting", "Walking")
    # segments: jogging 150 samples -> 3 windows, walking 142 -> 3, sitting 130 -> 3
    assert ds.y.tolist() == [0] * 3 + [2] * 3 + [1] * 3 and ds.subject.tolist() == [33] * 6 + [7] * 3
    assert np.isclose(ds.X[0, 1, 0], 12.680544) and ds.X[1, 0, 0] == 32.0
    assert np.allclose(ds.extras["t_start"][:4], [0.0, 1.6, 3.2, 150 / 20])
    assert len(load(f)) == 3  # default 128/64: one window per segment


def test_wisdm_malformed_line(tmp_path, caplog):
    lines = list(WISDM_LINES)
    lines.insert(5, "33,Jogging,49106062271999,1.0,,;")
    f = tmp_path / "wisdm_raw.txt"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"wisdm_raw\.txt: line 6: malformed record .*strict=False"):
        load(f)
    with caplog.at_level(logging.WARNING):
        ds = load(f, strict=False, window=64, step=32)
    assert "skipped malformed records on 1 line(s), first at line 6" in caplog.text
    assert len(ds) == 9


# --------------------------------------------------------------------------- LIMU-BERT
def _write_limu(folder: Path, n=10, with_config=True) -> np.ndarray:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n, 120, 6))
    labels = np.zeros((n, 120, 2))
    labels[..., 0] = (np.arange(n) % 6)[:, None]
    labels[0, :10, 0] = 5  # minority label inside window 0: mode stays 0
    labels[..., 1] = (np.arange(n) % 3)[:, None]
    np.save(folder / "data_20_120.npy", data)
    np.save(folder / "label_20_120.npy", labels)
    if with_config:
        cfg = {"uci_20_120": {"sr": 20, "seq_len": 120, "activity_label_index": 0, "user_label_index": 1,
                              "activity_label": ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"]}}
        (folder / "data_config.json").write_text(json.dumps(cfg))
    return data


def test_limu(tmp_path):
    folder = tmp_path / "limu_uci"
    data = _write_limu(folder)
    assert detect_format(folder) == "limu" and detect_format(folder / "label_20_120.npy") == "limu"
    for p in (folder, folder / "data_20_120.npy"):
        ds = load(p)
        assert ds.X.shape == (10, 6, 120) and np.allclose(ds.X[3, 4], data[3, :, 4])
        assert ds.y.tolist() == [i % 6 for i in range(10)] and ds.subject.tolist() == [i % 3 for i in range(10)]
        assert ds.classes[1] == "upstairs" and ds.rate_hz == 20.0 and ds.name == "limu_uci"
        assert ds.units == ("m/s^2",) * 3 + ("rad/s",) * 3


def test_limu_config_key_and_missing_label(tmp_path):
    folder = tmp_path / "limu_motion"
    _write_limu(folder)
    with pytest.raises(DataError, match=r"data_config\.json: no entry `motion_20_120`.*keys present: uci_20_120.*dataset="):
        load(folder)
    assert load(folder, dataset="uci").classes[0] == "walking"
    (folder / "label_20_120.npy").unlink()
    with pytest.raises(DataError, match=r"label_20_120\.npy: file is missing"):
        load(folder, dataset="uci")


def test_limu_without_config_warns(tmp_path):
    folder = tmp_path / "other"
    _write_limu(folder, with_config=False)
    with pytest.warns(UserWarning, match="no class names"):
        ds = load(folder)
    assert ds.classes == tuple(f"class_{i}" for i in range(6)) and ds.rate_hz == 20.0


# --------------------------------------------------------------------------- synthetic
def test_synthetic():
    ds = load("synthetic", n_per_class=8, window=64, subjects=4, seed=1)
    assert ds.name == "synthetic" and ds.X.shape == (48, 6, 64) and set(ds.subject.tolist()) == {1, 2, 3, 4}
    again = make_synthetic(n_per_class=8, window=64, subjects=4, seed=1)
    assert np.array_equal(ds.X, again.X)
    acc = make_synthetic(n_per_class=4, channels=("acc_x", "acc_y", "acc_z"), classes=("p", "q"))
    assert acc.units == ("g",) * 3 and acc.classes == ("p", "q")
    with pytest.raises(ConfigError, match="Unknown option `windows` for data format `synthetic`"):
        load("synthetic", windows=3)


def test_synthetic_is_learnable():
    from sklearn.linear_model import LogisticRegression

    ds = make_synthetic(n_per_class=30)
    feats = np.concatenate([ds.X.mean(axis=2), ds.X.std(axis=2)], axis=1)
    train = ds.subject <= 4
    clf = LogisticRegression(max_iter=1000).fit(feats[train], ds.y[train])
    assert clf.score(feats[~train], ds.y[~train]) > 0.8
