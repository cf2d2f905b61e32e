"""Datasets with label sets and channel names of their own: the `labels:` and `channels:` mappings,
the warning on channels not named `<sensor>_<axis>`, and a gym dataset through `fedhar data info`,
`fedhar train` and `fedhar simulate`."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fedhar.cli import main
from fedhar.config import build_config
from fedhar.data import DataConfig, load_source
from fedhar.data.vocab import map_labels, to_canonical
from fedhar.exceptions import ConfigError
from fedhar.schema import from_mapping

REPO = Path(__file__).resolve().parents[2]
GYM = ("squat", "bench_press", "deadlift", "walking")
ODD = ("ax", "ay", "az", "gx", "gy", "gz")
MAPPING = {"ax": "acc_x", "ay": "acc_y", "az": "acc_z", "gx": "gyro_x", "gy": "gyro_y", "gz": "gyro_z"}


def write_gym(path: Path, classes=GYM, channels=ODD, subjects: int = 4, per: int = 4, T: int = 128,
              rate_hz: float = 50.0, seed: int = 0) -> Path:
    """A generated ``.npz`` dataset: ``per`` windows of each class per subject, one sine frequency per class."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.repeat(np.arange(len(classes)), per), subjects)
    subject = np.repeat(np.arange(subjects), len(classes) * per)
    t = np.arange(T) / rate_hz
    X = 0.3 * rng.standard_normal((len(y), len(channels), T))
    X += np.sin(2 * np.pi * (1.0 + y)[:, None, None] * t)  # (N, 1, T), the same on every channel
    np.savez(path, X=X.astype(np.float32), y=y, subject=subject, rate_hz=rate_hz, classes=np.array(classes),
             channels=np.array(channels), units=np.array(["unknown"] * len(channels)))
    return path


def odd_channel_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "are not named `<sensor>_<axis>`" in str(w.message)]


def test_data_info_shows_own_classes_and_odd_channels(tmp_path, capsys):
    src = write_gym(tmp_path / "gym.npz")
    assert main(["data", "info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "channels (6): ax [unknown]" in out
    assert "not named <sensor>_<axis>: ax, ay, az, gx, gy, gz" in out and "{ax: acc_x, ay: acc_y" in out
    lines = out.splitlines()
    assert any(ln.split() == ["squat", "16", "*"] for ln in lines)
    assert any(ln.split() == ["walking", "16"] for ln in lines)  # canonical: no mark
    assert "classes marked * have no canonical name" in out


def test_channels_list_selects_and_mapping_renames(tmp_path):
    src = str(write_gym(tmp_path / "gym.npz"))
    with pytest.warns(UserWarning, match=r"channel\(s\) ax, ay, az, gx, gy, gz are not named .*`data.channels` as a "
                                         r"mapping, e\.g\. \{ax: acc_x, ay: acc_y, az: acc_z, gx: gyro_x"):
        plain = load_source(DataConfig(source=src))
    assert plain.sensors == ODD  # each a one-axis sensor of its own
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        renamed = load_source(DataConfig(source=src, channels=dict(MAPPING)))
        dropped = load_source(DataConfig(source=src, channels={**MAPPING, "gx": None, "gy": None, "gz": None}))
        cfg = from_mapping(DataConfig, {"source": src, "channels": {**MAPPING}}, "data")
    assert not odd_channel_warnings(record)
    assert renamed.channels == tuple(MAPPING.values()) and renamed.sensors == ("acc", "gyro")
    assert np.array_equal(renamed.X, plain.X)
    assert dropped.channels == ("acc_x", "acc_y", "acc_z") and np.array_equal(dropped.X, plain.X[:, :3])
    assert cfg.channels == MAPPING
    # The list form still selects (and a list of odd names is warned about).
    with pytest.warns(UserWarning, match=r"channel\(s\) gz, ax are not named"):
        assert load_source(DataConfig(source=src, channels=["gz", "ax"])).channels == ("gz", "ax")


@pytest.mark.parametrize("channels, match", [
    ({"ax": "accel"}, r"`data.channels.ax: accel`: `accel` is not a channel name of the form `<sensor>_<axis>`"),
    ({"ax": "acc_X"}, r"`data.channels.ax: acc_X`"),
    ({"ax": "acc_x", "ay": "acc_x"}, r"`data.channels` renames both `ax` and `ay` to `acc_x`"),
])
def test_bad_channel_mapping_names_key_and_value(channels, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(DataConfig, {"channels": channels}, "data")


def test_channel_mapping_checked_against_the_data(tmp_path):
    src = str(write_gym(tmp_path / "gym.npz"))
    with pytest.raises(ConfigError, match=r"`data.channels` maps `acc_x` to `gyro_x`, but dataset `gym` has no channel "
                                          r"`acc_x` \(its channels: ax, ay, az, gx, gy, gz\)"):
        load_source(DataConfig(source=src, channels={"acc_x": "gyro_x"}))
    daily = str(write_gym(tmp_path / "daily.npz", channels=tuple(MAPPING.values())))
    with pytest.raises(ConfigError, match=r"`data.channels` maps `acc_y` to `acc_x`, but channel `acc_x` of dataset "
                                          r"`daily` is also named `acc_x`"):
        load_source(DataConfig(source=daily, channels={"acc_y": "acc_x"}))


def test_canonical_channel_names_are_not_warned_about(tmp_path):
    src = str(write_gym(tmp_path / "daily.npz", classes=("walking", "sitting"), channels=tuple(MAPPING.values())))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = load_source(DataConfig(source=src))
    assert ds.channels == tuple(MAPPING.values()) and not odd_channel_warnings(record)


def test_labels_mapping_maps_merges_and_checks_keys(tmp_path):
    src = str(write_gym(tmp_path / "gym.npz", channels=tuple(MAPPING.values())))
    ds = load_source(DataConfig(source=src, labels={"Deadlift": "laying", "BENCH_PRESS": "squat"}))
    assert ds.classes == ("squat", "lying", "walking")  # bench_press merged into squat; laying is canonical `lying`
    assert ds.class_counts().tolist() == [32, 16, 16]
    # With canonical_labels, classes outside the vocabulary stay classes of their own.
    canon = load_source(DataConfig(source=src, canonical_labels=True, labels={"deadlift": "walking"}))
    assert canon.classes == ("walking", "squat", "bench_press") and canon.class_counts().tolist() == [32, 16, 16]
    with pytest.raises(ConfigError, match=r"`data.labels` maps `jumping` to `walking`, but `jumping` is not a class of "
                                          r"dataset `gym` \(its classes: squat, bench_press, deadlift, walking\)"):
        load_source(DataConfig(source=src, labels={"jumping": "walking"}))
    with pytest.raises(ConfigError, match=r"`data.labels` names the class `squat` twice"):
        DataConfig(labels={"Squat": "sitting", "squat": "standing"})
    with pytest.warns(UserWarning, match=r"`data.labels.squat: walkng`.*did you mean `walking`"):
        DataConfig(labels={"squat": "walkng"})


def test_to_canonical_keeps_unknown_classes_when_asked(toy):
    gym = toy(n=12, classes=("Squat", "walk", "Bench_Press"))
    assert to_canonical(gym, keep_unknown=True).classes == ("walking", "squat", "bench_press")
    with pytest.raises(Exception, match=r"map them with `labels:`"):
        to_canonical(gym)
    assert map_labels(gym, {"squat": "sit"}).classes == ("sitting", "walk", "Bench_Press")


def test_lodo_dataset_spec_takes_labels_and_channels():
    lodo = {"datasets": [{"name": "gym", "source": "gym.npz", "labels": {"deadlift": "walking"}, "channels": MAPPING},
                         "wisdm"]}
    spec = build_config({"lodo": lodo}).lodo.datasets[0]
    assert spec.labels == {"deadlift": "walking"} and spec.channels == MAPPING
    bad = {"datasets": [{"name": "gym", "channels": {"ax": "x"}}, "wisdm"]}
    with pytest.raises(ConfigError, match=r"`lodo.datasets\[gym\].channels.ax: x`: `x` is not a channel name"):
        build_config({"lodo": bad})
    bad = {"datasets": [{"name": "gym", "labels": {"squat": ""}}, "wisdm"]}
    with pytest.raises(ConfigError, match=r"`lodo.datasets\[gym\].labels.squat` must be a class name"):
        build_config({"lodo": bad})


GYM_SETS = ["model.backbone.name=none", "train.epochs=1", "data.split=subject", "data.test_fraction=0.25",
            "data.options={}", "data.channels={ax: acc_x, ay: acc_y, az: acc_z, gx: gyro_x, gy: gyro_y, gz: gyro_z}"]


def test_train_on_a_gym_dataset(tmp_path):
    src = write_gym(tmp_path / "gym.npz")
    args = ["train", str(REPO / "configs" / "smoke.yaml"), "--out", str(tmp_path / "run"), "--set", f"data.source={src}"]
    for s in GYM_SETS + ["data.labels={Walking: walking, Bench_Press: bench}"]:
        args += ["--set", s]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert main(args) == 0
    assert not odd_channel_warnings(record)
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["status"] == "complete" and 0 <= r["final"]["macro_f1"] <= 1
    assert r["data"]["train"]["classes"] == ["squat", "bench", "deadlift", "walking"]
    assert r["data"]["train"]["channels"] == list(MAPPING.values())
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "ax: acc_x" in saved and "Bench_Press: bench" in saved


def test_simulate_on_a_gym_dataset(tmp_path):
    """The one Flower (Ray) run of this file: a round over the subjects of the gym dataset."""
    src = write_gym(tmp_path / "gym.npz", subjects=4)
    args = [sys.executable, "-m", "fedhar.cli", "simulate", "configs/smoke.yaml", "--out", str(tmp_path / "fed"),
            "--set", f"data.source={src}", "--set", "federated.rounds=1"]
    for s in GYM_SETS:
        args += ["--set", s]
    res = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "are not named `<sensor>_<axis>`" not in res.stderr
    r = json.loads((tmp_path / "fed" / "results.json").read_text())
    assert r["complete"] and [x["round"] for x in r["rounds"]] == [1] and 0 <= r["final"]["macro_f1"] <= 1
