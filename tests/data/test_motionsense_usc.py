"""MotionSense and USC-HAD read as published: small fixtures written in each layout, then the real files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from fedhar.data import DataConfig, describe, detect_format, load, resolve_source, to_canonical
from fedhar.data.loaders import format_notes, read_motionsense, read_usc_had
from fedhar.data.sources import list_sources, load_source
from fedhar.exceptions import DataError

MS_HEADER = (",attitude.roll,attitude.pitch,attitude.yaw,gravity.x,gravity.y,gravity.z,rotationRate.x,rotationRate.y,"
             "rotationRate.z,userAcceleration.x,userAcceleration.y,userAcceleration.z")
# (activity, trial, subject) -> rows; recording id r = position + 1 is written into the signals
MS_FILES = {("dws", 1, 1): 300, ("dws", 1, 2): 260, ("jog", 9, 1): 200, ("jog", 9, 2): 140}
MS_SUBJECTS = "\ufeffcode,weight,height,age,gender\n1,102,188,46,1\n2,72,180,28,0\n"
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


def _n_windows(lengths, window: int, step: int) -> int:
    return sum((n - window) // step + 1 for n in lengths if n >= window)


# ------------------------------------------------------------------------------------ MotionSense
def _ms_csv(rows: int, rec: int) -> str:
    """gravity (0, 0, -1) g; userAcceleration (rec/10, i/1000, 0.25) g; rotationRate (0.5, rec, -0.5) rad/s."""
    lines = [MS_HEADER] + [f"{i},0.1,0.2,0.3,0.0,0.0,-1.0,0.5,{rec},-0.5,{rec / 10},{i / 1000},0.25" for i in range(rows)]
    return "\n".join(lines) + "\n"


def _ms_members() -> dict[str, str]:
    return {f"A_DeviceMotion_data/{a}_{t}/sub_{s}.csv": _ms_csv(n, rec)
            for rec, ((a, t, s), n) in enumerate(MS_FILES.items(), start=1)}


def _ms_zip(folder: Path, subjects_file: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "A_DeviceMotion_data.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in _ms_members().items():
            z.writestr(name, text)
        z.writestr("__MACOSX/A_DeviceMotion_data/dws_1/._sub_1.csv", b"\x00\x05junk")  # resource fork: skipped
    if subjects_file:
        (folder / "data_subjects_info.csv").write_text(MS_SUBJECTS, encoding="utf-8")
    return path


def _ms_folder(folder: Path) -> Path:
    for name, text in _ms_members().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder / "A_DeviceMotion_data"


def test_motionsense_zip_channels_labels_subjects(tmp_path):
    path = _ms_zip(tmp_path / "motionsense")
    assert detect_format(path) == "motionsense" and detect_format(path.parent) == "motionsense"
    ds = load(path, window=32, step=16)
    assert ds.channels == CHANNELS and ds.units == ("g",) * 3 + ("rad/s",) * 3 and ds.rate_hz == 50.0
    assert ds.classes == ("dws", "jog") and sorted(set(ds.subject.tolist())) == [1, 2]
    assert len(ds) == _n_windows(MS_FILES.values(), 32, 16) == 17 + 15 + 11 + 7
    rec = ds.extras["recording"]
    # raw acceleration = gravity + userAcceleration; gyro rotationRate unchanged (rad/s)
    assert np.allclose(ds.X[:, 2], -0.75) and np.allclose(ds.X[:, 3], 0.5) and np.allclose(ds.X[:, 5], -0.5)
    assert len(np.unique(rec)) == 4
    for r in np.unique(rec):  # every window holds one recording's rows only, in time order
        w = rec == r
        file_id = ds.X[w, 0, 0][0] * 10  # written into userAcceleration.x and rotationRate.y
        assert np.allclose(ds.X[w, 0], file_id / 10) and np.allclose(ds.X[w, 4], file_id)
        assert np.allclose(ds.X[w, 1, 0], ds.extras["t_start"][w] * 50 / 1000)
        assert len(set(ds.subject[w])) == 1 and len(set(ds.y[w])) == 1 and len(set(ds.extras["trial"][w])) == 1
    jog_sub2 = (ds.y == 1) & (ds.subject == 2)
    assert jog_sub2.sum() == 7 and ds.extras["trial"][jog_sub2].tolist() == [9] * 7
    assert ds.extras["age"][ds.subject == 1][0] == 46 and ds.extras["height_cm"][ds.subject == 2][0] == 180
    assert ds.extras["weight_kg"][ds.subject == 1][0] == 102
    assert ds.extras["gender"][ds.subject == 2].tolist() == [0] * int((ds.subject == 2).sum())
    assert to_canonical(ds).classes == ("walking_downstairs", "jogging")


def test_motionsense_folder_acceleration_variants(tmp_path):
    folder = _ms_folder(tmp_path)
    assert detect_format(folder) == "motionsense" and detect_format(tmp_path) == "motionsense"
    total = load(folder, window=32, step=16)
    zipped = load(_ms_zip(tmp_path / "z", subjects_file=False), window=32, step=16)
    assert np.array_equal(total.X, zipped.X) and "age" not in total.extras  # no data_subjects_info.csv
    body = load(folder, window=32, step=16, acceleration="body")
    assert body.channels[:3] == ("body_acc_x", "body_acc_y", "body_acc_z") and np.allclose(body.X[:, 2], 0.25)
    both = load(folder, window=32, step=16, acceleration="both")
    assert both.channels == tuple(f"{s}_{a}" for s in ("total_acc", "body_acc", "gyro") for a in "xyz")
    assert np.allclose(both.X[:, 2], -0.75) and np.allclose(both.X[:, 5], 0.25) and both.units[6:] == ("rad/s",) * 3
    with pytest.raises(DataError, match="`acceleration` must be one of total, body, both; got 'raw'"):
        load(folder, acceleration="raw")


def test_motionsense_rate_and_default_window(tmp_path):
    path = _ms_zip(tmp_path)
    ds = load(path, window=16, step=8, rate_hz=25.0)
    assert ds.rate_hz == 25.0 and ds.window_length == 16
    assert len(ds) == _n_windows([n // 2 for n in MS_FILES.values()], 16, 8) == 17 + 15 + 11 + 7
    assert np.allclose(ds.extras["t_start"][:3], [0.0, 0.32, 0.64])
    half_hop = load(path, window=40)  # hop: half a window by default
    assert len(half_hop) == _n_windows(MS_FILES.values(), 40, 20) == 14 + 12 + 9 + 6
    default = load(path)  # 2.56 s at the output rate
    assert default.window_length == 128 and len(default) == _n_windows(MS_FILES.values(), 128, 64) == 9
    assert load(path, rate_hz=25.0).window_length == 64
    with pytest.raises(DataError, match="no recording is at least 400 samples long at 50 Hz"):
        load(path, window=400)


def test_motionsense_through_the_config(tmp_path):
    _ms_zip(tmp_path / "motionsense")
    assert resolve_source("motionsense", str(tmp_path)) == str(tmp_path / "motionsense" / "A_DeviceMotion_data.zip")
    ds = load_source(DataConfig(source="motionsense", root=str(tmp_path), window=40, step=10))
    assert ds.window_length == 40 and len(ds) == _n_windows(MS_FILES.values(), 40, 10)
    assert "recording" in ds.extras  # cut by the loader, not sub-windows of default windows
    text = describe("motionsense", str(tmp_path))
    assert "rows per activity: dws 560 | jog 340" in text and "2 subjects" in text


def test_motionsense_malformed(tmp_path):
    folder = _ms_folder(tmp_path)
    bad = folder / "jog_9" / "sub_2.csv"
    bad.write_text(MS_HEADER.replace(",userAcceleration.z", "") + "\n0,1,2,3,4,5,6,7,8,9,10,11\n")
    with pytest.raises(DataError, match=r"jog_9/sub_2\.csv: missing column\(s\) userAcceleration\.z"):
        load(folder)
    bad.write_text(_ms_csv(5, 1).replace("0.25\n", "oops\n", 1))
    with pytest.raises(DataError, match=r"jog_9/sub_2\.csv: not a table of numbers"):
        load(folder)
    (tmp_path / "data_subjects_info.csv").write_text("code,weight,age\n1,2,3\n")
    bad.write_text(_ms_csv(40, 1))
    with pytest.raises(DataError, match=r"data_subjects_info\.csv: missing column\(s\) height, gender"):
        load(folder)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(DataError, match=r"empty\.zip: no file in the layout of MotionSense"):
        read_motionsense(empty)


# --------------------------------------------------------------------------------------- USC-HAD
# (subject, activity, trial) -> rows; meta overrides what the .mat metadata says
USC_FILES = {(1, 1, 1): 300, (1, 3, 2): 260, (1, 10, 1): 200, (2, 2, 1): 250, (2, 4, 5): 180}


def _usc_mat(path: Path, rows: int, rec: int, subject: int, act: int, trial: int, **meta) -> None:
    """acc (rec, 1, 0) g, gyro (180, 0, -90) deg/s."""
    readings = np.tile([rec, 1.0, 0.0, 180.0, 0.0, -90.0], (rows, 1))
    fields = {"title": "USC Human Motion Dataset", "subject": str(subject), "activity_number": str(act),
              "trial": str(trial), "height": "164cm", "sensor_readings": readings}
    fields.update(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {k: v for k, v in fields.items() if v is not None})


def _usc_folder(root: Path) -> Path:
    top = root / "USC-HAD"
    for rec, ((s, a, t), n) in enumerate(USC_FILES.items(), start=1):
        meta = {}
        if (s, a, t) == (1, 3, 2):
            meta = {"activity_number": "2"}  # disagrees with the name a3
        if (s, a, t) == (2, 4, 5):
            meta = {"activity_number": None, "activity_numbr": "4"}  # the release's typo, agreeing
        _usc_mat(top / f"Subject{s}" / f"a{a}t{t}.mat", n, rec, s, a, t, **meta)
    (top / "Readme.txt").write_text("USC-HAD\n")
    return top


def _zip_folder(top: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(top.rglob("*")):
            z.write(f, f.relative_to(top.parent).as_posix())
    return path


def test_usc_had_zip_and_folder(tmp_path):
    top = _usc_folder(tmp_path / "unpacked")
    path = _zip_folder(top, tmp_path / "USC-HAD.zip")
    for p in (path, top, top.parent):
        assert detect_format(p) == "usc_had"
    ds = load(path, window=50, step=25)
    assert np.array_equal(ds.X, load(top, window=50, step=25).X)
    assert ds.channels == CHANNELS and ds.units == ("g",) * 3 + ("rad/s",) * 3 and ds.rate_hz == 100.0
    assert np.allclose(ds.X[:, 3], np.pi) and np.allclose(ds.X[:, 5], -np.pi / 2) and np.allclose(ds.X[:, 1], 1.0)
    assert ds.classes == ("walking", "walking_upstairs", "sleeping")  # a1, a2, a3 (name, not metadata) merged
    assert len(ds) == _n_windows(USC_FILES.values(), 50, 25) == 11 + 9 + 7 + 9 + 6
    rec = ds.extras["recording"]
    for r, ((s, a, t), n) in enumerate(USC_FILES.items()):
        w = rec == r
        assert w.sum() == _n_windows([n], 50, 25) and np.allclose(ds.X[w, 0], r + 1)  # one file per window
        assert set(ds.subject[w]) == {s} and set(ds.extras["trial"][w]) == {t}
    assert [ds.classes[i] for i in ds.y[ds.extras["trial"] == 5]] == ["walking_upstairs"] * 6
    assert to_canonical(ds).classes == ("walking", "walking_upstairs", "lying")


def test_usc_had_walking_directions(tmp_path):
    top = _usc_folder(tmp_path)
    ds = load(top, window=50, step=25, walking_directions=True)
    assert ds.classes == ("walking_forward", "walking_left", "walking_right", "walking_upstairs", "sleeping")
    assert [ds.classes[i] for i in ds.y[ds.extras["recording"] == 1]] == ["walking_right"] * 9  # a3t2 by its name
    canon = to_canonical(ds, keep_unknown=True)
    assert canon.classes == ("walking", "walking_upstairs", "lying", "walking_left", "walking_right")


def test_usc_had_metadata_and_range_report(tmp_path):
    top = _usc_folder(tmp_path)
    _usc_mat(top / "Subject2" / "a8t3.mat", 120, 2, 2, 8, 3, activity_number=None, activity_numbr="9")
    high = np.tile([1.0, 0.0, 0.0, 0.0, 0.0, 0.0], (120, 1))
    high[5, 0], high[7, 3], high[8, 4:6] = 7.0, -600.0, 501.0  # 1 acc sample, 2 gyro samples out of range
    _usc_mat(top / "Subject2" / "a9t1.mat", 120, 0, 2, 9, 1, sensor_readings=high)
    recs = read_usc_had(top)
    assert recs.disagreements == [
        "Subject1/a3t2.mat: `activity_number` is 2 but its path says 3",
        "Subject2/a8t3.mat: `activity_numbr` is 9 but its path says 8",
    ]
    assert recs.out_of_range == {"acc": 1, "gyro": 2} and recs.max_abs == {"acc": 7.0, "gyro": 600.0}
    ds = recs.windows(window=100, step=100)
    assert np.isclose(ds.X[ds.extras["recording"] == len(recs.recordings) - 1][0, 3, 7], np.deg2rad(-600.0))  # kept
    notes = "\n".join(format_notes(top, "usc_had"))
    assert "kept: 1 acc and 2 gyro samples of 1430" in notes and "walking_right 260" in notes
    assert "metadata disagreeing with the file name (labels come from the name): 2" in notes


@pytest.mark.parametrize("case, match", [
    ("no_readings", r"Subject1/a1t1\.mat: no `sensor_readings` variable"),
    ("five_columns", r"Subject1/a1t1\.mat: `sensor_readings` must be a numeric N x 6 array .* shape \(300, 5\)"),
    ("not_mat", r"Subject1/a1t1\.mat: not a readable MATLAB \.mat file"),
    ("activity_13", r"Subject1/a13t1\.mat: activity 13 in the file name is outside 1\.\.12"),
])
def test_usc_had_malformed(tmp_path, case, match):
    top = _usc_folder(tmp_path)
    target = top / "Subject1" / "a1t1.mat"
    if case == "no_readings":
        savemat(target, {"title": "x", "readings": np.zeros((300, 6))})
    elif case == "five_columns":
        savemat(target, {"sensor_readings": np.zeros((300, 5))})
    elif case == "not_mat":
        target.write_bytes(b"this is not a MATLAB file at all")
    else:
        target.rename(top / "Subject1" / "a13t1.mat")
    with pytest.raises(DataError, match=match):
        load(_zip_folder(top, tmp_path / "USC-HAD.zip") if case == "five_columns" else top)


def test_usc_had_rate_through_the_config(tmp_path):
    (tmp_path / "usc_had").mkdir()
    _zip_folder(_usc_folder(tmp_path / "x"), tmp_path / "usc_had" / "USC-HAD.zip")
    ds = load_source(DataConfig(source="usc_had", root=str(tmp_path), rate_hz=50.0, window=25, step=25))
    assert ds.rate_hz == 50.0 and ds.window_length == 25 and "recording" in ds.extras
    assert len(ds) == _n_windows([n // 2 for n in USC_FILES.values()], 25, 25)
    for r in range(len(USC_FILES)):  # each file resampled on its own: inner windows hold its value only
        inner = ds.X[ds.extras["recording"] == r][1:-1]
        assert len(inner) and np.allclose(inner[:, 0], r + 1, atol=1e-3) and np.allclose(inner[:, 3], np.pi, atol=1e-3)


# ------------------------------------------------------------------------------------- real files
MS_ROWS = {"dws": 131856, "ups": 157285, "wlk": 344288, "jog": 134231, "sit": 338778, "std": 306427}
USC_SAMPLES = [381400, 258800, 275500, 211800, 197400, 176500, 107100, 261500, 236000, 375000, 165491, 164999]


@pytest.fixture(scope="module")
def real_ms(real_data):
    return read_motionsense(real_data / "motionsense" / "A_DeviceMotion_data.zip")


@pytest.fixture(scope="module")
def real_usc(real_data):
    return read_usc_had(real_data / "usc_had" / "USC-HAD.zip", walking_directions=True)


def test_real_sources_are_found(real_data):
    rows = {r["name"]: r for r in list_sources(str(real_data))}
    assert rows["motionsense"]["path"].endswith("motionsense/A_DeviceMotion_data.zip")
    assert rows["usc_had"]["path"].endswith("usc_had/USC-HAD.zip")


def test_real_motionsense_counts(real_ms):
    assert real_ms.samples_per_class() == MS_ROWS and sum(MS_ROWS.values()) == 1412865
    assert len(real_ms.recordings) == 360 and real_ms.subjects == list(range(1, 25))
    per_subject = np.bincount([r.subject for r in real_ms.recordings], weights=[len(r) for r in real_ms.recordings])
    assert (per_subject[1:].min(), per_subject[1:].max()) == (51005, 71949)
    assert len(real_ms.subjects_info) == 24 and sum(v[3] for v in real_ms.subjects_info.values()) == 14  # 14 male
    ds = real_ms.windows()
    assert ds.window_length == 128 and ds.classes == tuple(MS_ROWS)
    sit = ds.X[ds.y == ds.classes.index("sit"), :3]
    assert 0.95 < np.linalg.norm(sit, axis=1).mean() < 1.05  # |gravity| = 1 g at rest
    assert not np.isnan(ds.extras["age"]).any() and set(ds.extras["gender"]) == {0, 1}


def test_real_usc_had_counts(real_usc):
    assert list(real_usc.samples_per_class().values()) == USC_SAMPLES and sum(USC_SAMPLES) == 2811490
    assert len(real_usc.recordings) == 840 and real_usc.subjects == list(range(1, 15))
    assert np.bincount([r.activity for r in real_usc.recordings]).tolist() == [70] * 12
    assert sorted(d.split(":")[0] for d in real_usc.disagreements) == [
        "USC-HAD/Subject14/a3t2.mat", "USC-HAD/Subject3/a8t5.mat", "USC-HAD/Subject5/a8t3.mat"]
    assert real_usc.out_of_range["gyro"] > 0 and real_usc.max_abs["gyro"] > 800  # kept, not clipped
    walk = real_usc.recordings[0]
    assert walk.subject == 1 and 0.9 < np.linalg.norm(walk.signal[:, :3], axis=1).mean() < 1.2
    peak_rad = max(float(np.abs(r.signal[:, 3:]).max()) for r in real_usc.recordings)
    assert np.isclose(peak_rad, np.deg2rad(real_usc.max_abs["gyro"]), rtol=1e-5)  # gyro held in rad/s
    ds = real_usc.windows(rate_hz=50.0)
    assert ds.window_length == 128 and ds.num_classes == 12 and ds.units[3:] == ("rad/s",) * 3
