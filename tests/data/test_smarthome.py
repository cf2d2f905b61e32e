"""Smart-home ambient-sensor layer: parsers on published-layout fixtures and real files, windows, splits, features."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fedhar.data.smarthome import (
    HOME_ACTIVITIES,
    HOMES,
    HomeRecording,
    SensorInfo,
    chronological_split,
    count_features,
    cross_home_split,
    event_windows,
    home_label,
    read_home,
    read_kasteren2008,
    read_kasteren2010,
    read_ordonez,
    recording_from_intervals,
)
from fedhar.data.smarthome.vocab import english_name, sensor_place, sensor_type
from fedhar.exceptions import ConfigError, DataError

T = np.datetime64


def _write(path: Path, text: str, crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    return path


def _line(path: Path, n: int) -> str:
    return re.escape(f"{path}, line {n}:")


# --------------------------------------------------------------------------- Ordóñez fixture
ORD_SENSORS = (
    "Start time          \tEnd time            \tLocation\tType\t\tPlace\n"
    "--------------------\t--------------------\t--------\t--------\t-----\n"
    "2011-11-28 02:27:59\t\t2011-11-28 10:18:11\t\tBed\t\t\tPressure\tBedroom\n"
    "2011-11-28 10:21:24\t\t2011-11-28 10:21:31\t\tCabinet\t\tMagnetic\tBathroom\n"
    "2011-11-28 10:21:44\t\t2011-11-28 10:23:31\t\tDoor\t\tPIR\t\t\tKitchen\n"
    "2011-11-28 10:21:44\t\t2011-11-28 10:21:50\t\tDoor\t\tPIR\t\t\tLiving\n"
)
ORD_ADLS = (
    "Start time          \tEnd time            \tActivity\t\n"
    "--------------------\t--------------------\t--------\n"
    "2011-11-28 02:27:59\t\t2011-11-28 10:18:59\t\tSleeping\t\t\n"
    "2011-11-28 10:21:00 \t2011-11-28 10:23:59\t\tGrooming\t\n"
    "2011-11-28 10:24:00\t\t2011-11-28 10:26:00\t \tSpare_Time/TV"  # no final newline, as published
)


def _ordonez(tmp_path: Path, sensors: str = ORD_SENSORS, adls: str = ORD_ADLS, home: str = "A") -> Path:
    _write(tmp_path / f"Ordonez{home}_Sensors.txt", sensors, crlf=True)
    _write(tmp_path / f"Ordonez{home}_ADLs.txt", adls, crlf=True)
    return tmp_path


def test_ordonez_fixture(tmp_path):
    rec = read_ordonez(_ordonez(tmp_path), "A")
    assert rec.home == "ordonez_a" and rec.source == str(tmp_path)
    assert rec.sensors["Bed_Bedroom"] == SensorInfo("Bed_Bedroom", "bed", "pressure", "bedroom")
    assert rec.sensors["Cabinet_Bathroom"] == SensorInfo("Cabinet_Bathroom", "cabinet", "magnetic", "bathroom")
    assert rec.sensors["Door_Kitchen"] == SensorInfo("Door_Kitchen", "door", "motion", "kitchen")
    assert rec.sensors["Door_Living"].place == "living room"
    assert len(rec) == 8 and rec.activations() == 4
    assert rec.time.dtype == np.dtype("datetime64[s]")
    assert rec.time.tolist() == sorted(rec.time.tolist())
    # ties keep row order: Door_Kitchen on, Door_Living on (both 10:21:44)
    assert list(zip(rec.sensor[:3], rec.state[:3])) == [("Bed_Bedroom", "on"), ("Bed_Bedroom", "off"),
                                                         ("Cabinet_Bathroom", "on")]
    i = np.flatnonzero(rec.time == T("2011-11-28T10:21:44"))
    assert rec.sensor[i].tolist() == ["Door_Kitchen", "Door_Living"] and set(rec.state[i]) == {"on"}
    assert rec.act_raw.tolist() == ["Sleeping", "Grooming", "Spare_Time/TV"]
    assert rec.act_label.tolist() == ["sleeping", "grooming", "relaxing"]
    assert rec.act_start[1] == T("2011-11-28T10:21:00") and rec.act_end[2] == T("2011-11-28T10:26:00")
    assert rec.days().tolist() == [T("2011-11-28", "D").item()] * 8


def test_ordonez_errata_only_on_published_text(tmp_path):
    bad = ORD_ADLS.replace("2011-11-28 10:23:59", "2011-11-28 09:23:59")
    with pytest.raises(DataError, match=_line(tmp_path / "OrdonezA_ADLs.txt", 4) + ".*end time is before start"):
        read_ordonez(_ordonez(tmp_path, adls=bad))


@pytest.mark.parametrize("lineno, old, new, why", [
    (4, "\t\tCabinet\t\tMagnetic", "\t\tCabinet", "expected 5 columns, found 4"),
    (5, "2011-11-28 10:21:44\t\t2011-11-28 10:23:31", "2011-11-28 10:21:44\t\t2011-13-28 10:23:31",
     "unparseable timestamp '2011-13-28 10:23:31'"),
    (3, "2011-11-28 02:27:59\t\t2011-11-28 10:18:11", "2011-11-28 02:27:59\t\t2011-11-27 10:18:11",
     "end time is before start time"),
])
def test_ordonez_malformed_sensor_line(tmp_path, lineno, old, new, why):
    path = tmp_path / "OrdonezA_Sensors.txt"
    with pytest.raises(DataError, match=_line(path, lineno) + " " + re.escape(why)):
        read_ordonez(_ordonez(tmp_path, sensors=ORD_SENSORS.replace(old, new, 1)))


def test_ordonez_unknown_label_and_extra(tmp_path):
    adls = ORD_ADLS.replace("Grooming", "Dancing")
    path = tmp_path / "OrdonezA_ADLs.txt"
    with pytest.raises(DataError, match=_line(path, 4) + ".*'Dancing'"):
        read_ordonez(_ordonez(tmp_path, adls=adls))
    rec = read_ordonez(tmp_path, labels={"dancing": "relaxing"})
    assert rec.act_label.tolist() == ["sleeping", "relaxing", "relaxing"]


def test_missing_file_names_path(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "OrdonezB_Sensors.txt"))):
        read_ordonez(tmp_path, "B")
    with pytest.raises(ConfigError, match="'A' or 'B'"):
        read_ordonez(tmp_path, "C")


# --------------------------------------------------------------------------- van Kasteren 2008 fixture
K08_SENSE = (
    "Start time: Time sensor started firing\nEnd time: Time sensor stopped firing\n"
    "ID: sensor id (see list below)\nval: value of sensor (always 1)\n\nSensor IDs are: \n"
    "    [ 1]    'Microwave'         \n    [ 5]    'Hall-Toilet door'  \n    [14]    'ToiletFlush'       \n"
    "    [24]    'Hall-Bedroom door' \n\n"
    "Start time          \tEnd time            \tID\tVal\n"
    "--------------------\t--------------------\t--\t---\n"
    "25-Feb-2008 00:20:14\t25-Feb-2008 00:22:57\t24\t1\n"      # line 14
    "25-Feb-2008 09:37:51\t25-Feb-2008 09:37:52\t14\t1\n"
    "25-Feb-2008 09:36:43\t25-Feb-2008 09:37:04\t5\t1\n"
    "Length: 3"
)
K08_ACT = (
    "Start time: start of an activity\nEnd time: end of an activity\nID: activity id (see list below)\n\n"
    "activity id list:\n1: 'leave house'\n4: 'use toilet'\n10:'go to bed'\n13:'prepare Breakfast'\n\n"
    "Start time          \tEnd time            \tID\n"
    "--------------------\t--------------------\t--\n"
    "25-Feb-2008 00:22:46\t25-Feb-2008 09:34:12\t10\n"          # line 13
    "25-Feb-2008 09:37:17\t25-Feb-2008 09:38:02\t4\n"
    "Length: 2"
)


def _k08(tmp_path: Path, sense: str = K08_SENSE, act: str = K08_ACT) -> Path:
    _write(tmp_path / "kasterenSenseData.txt", sense, crlf=True)
    _write(tmp_path / "kasterenActData.txt", act, crlf=True)
    return tmp_path


def test_kasteren2008_fixture(tmp_path):
    rec = read_kasteren2008(_k08(tmp_path))
    assert rec.home == "kasteren2008"
    assert rec.sensors["1"] == SensorInfo("1", "microwave", "appliance", "kitchen")
    assert rec.sensors["5"] == SensorInfo("5", "hall-toilet door", "door", "hall")
    assert rec.sensors["14"] == SensorInfo("14", "toilet flush", "flush", "toilet")
    assert len(rec.sensors) == 4 and rec.activations() == 3
    assert rec.time[0] == T("2008-02-25T00:20:14") and rec.sensor[0] == "24" and rec.state[0] == "on"
    assert rec.time[1] == T("2008-02-25T00:22:57") and rec.state[1] == "off"
    assert rec.sensor[2:].tolist() == ["5", "5", "14", "14"]  # sorted by time, not by row
    assert rec.act_raw.tolist() == ["go to bed", "use toilet"]
    assert rec.act_label.tolist() == ["sleeping", "toileting"]
    assert rec.act_end.tolist() == [T("2008-02-25T09:34:12").item(), T("2008-02-25T09:38:02").item()]


@pytest.mark.parametrize("which, lineno, old, new, match", [
    ("sense", 15, "\t14\t1", "\t99\t1", "unknown sensor id '99'"),
    ("sense", 16, "25-Feb-2008 09:36:43", "25-Fob-2008 09:36:43", "unparseable timestamp '25-Fob-2008 09:36:43'"),
    ("sense", 14, "\t24\t1", "\t24", "expected 4 columns, found 3"),
    ("act", 14, "09:38:02\t4", "09:38:02\t7", "unknown activity id '7'"),
    ("act", 13, "25-Feb-2008 09:34:12", "24-Feb-2008 09:34:12", "end time is before start time"),
])
def test_kasteren2008_malformed(tmp_path, which, lineno, old, new, match):
    sense, act = K08_SENSE, K08_ACT
    if which == "sense":
        sense, name = sense.replace(old, new, 1), "kasterenSenseData.txt"
    else:
        act, name = act.replace(old, new, 1), "kasterenActData.txt"
    with pytest.raises(DataError, match=_line(tmp_path / name, lineno) + " " + re.escape(match)):
        read_kasteren2008(_k08(tmp_path, sense, act))


def test_kasteren2008_footer_and_header_checks(tmp_path):
    with pytest.raises(DataError, match="Length: 4"):
        read_kasteren2008(_k08(tmp_path, sense=K08_SENSE.replace("Length: 3", "Length: 4")))
    no_ids = re.sub(r"    \[.*\n", "", K08_SENSE)
    with pytest.raises(DataError, match="header lists no sensor ids"):
        read_kasteren2008(_k08(tmp_path, sense=no_ids))


# --------------------------------------------------------------------------- van Kasteren 2010 fixture
K10 = {
    "houseB-ss.txt": "21-Jul-2009 13:30:12\t21-Jul-2009 13:30:13\t1\t\n"
                     "21-Jul-2009 13:37:54\t21-Jul-2009 13:37:58\t27\t\n"
                     "21-Jul-2009 13:38:00\t21-Jul-2009 13:38:09\t20\t\n"
                     "21-Jul-2009 13:39:00\t21-Jul-2009 13:39:09\t99\t\n",
    "houseB-as.txt": "21-Jul-2009 13:30:00\t21-Jul-2009 13:31:00\t4\n21-Jul-2009 13:37:00\t21-Jul-2009 13:40:00\t17\n",
    "sensorMapB-ids.txt": "1,toilet door,BathroomDoor\n27,magnetron,KitchHeat\t\n16,PIR slaapkamer,Sleep\n\n",
    "sensorMapB-ids_supplement_pyadlml.txt": "# comment, with a comma\n20,pressure mat office chair [Drukmat]\n"
                                             "23,UNKNOWN (no label in original)\n",
    "actionMapB.txt": "1,leave-house\n4,use-toilet\n17,get-drink",
}


def _k10(tmp_path: Path, **override: str) -> Path:
    for name, text in {**K10, **override}.items():
        _write(tmp_path / name, text)
    return tmp_path


def test_kasteren2010_fixture(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        rec = read_kasteren2010(_k10(tmp_path), "B")
    assert rec.home == "kasteren2010_b"
    assert rec.sensors["1"] == SensorInfo("1", "toilet door", "door", "toilet")
    assert rec.sensors["27"] == SensorInfo("27", "microwave", "appliance", "kitchen")
    assert rec.sensors["16"] == SensorInfo("16", "pir bedroom", "motion", "bedroom")
    assert rec.sensors["20"].name == "pressure mat office chair" and rec.sensors["20"].type == "pressure"
    assert rec.sensors["99"] == SensorInfo("99", "sensor 99", "unknown", "unknown")
    assert "23" not in rec.sensors  # named UNKNOWN and never fires here
    assert "99" in caplog.text and "sensor map" in caplog.text
    assert rec.activations() == 4 and rec.sensor[::2].tolist() == ["1", "27", "20", "99"]
    assert rec.act_raw.tolist() == ["use-toilet", "get-drink"]
    assert rec.act_label.tolist() == ["toileting", "snack_or_drink"]


def test_kasteren2010_malformed(tmp_path):
    ss = K10["houseB-ss.txt"].replace("13:37:58\t27", "13:37:58\tx27")
    with pytest.raises(DataError, match=_line(tmp_path / "houseB-ss.txt", 2) + " sensor id 'x27'"):
        read_kasteren2010(_k10(tmp_path, **{"houseB-ss.txt": ss}), "B")
    as_ = K10["houseB-as.txt"] + "21-Jul-2009 14:00:00\t21-Jul-2009 14:01:00\t6\n"
    with pytest.raises(DataError, match=_line(tmp_path / "houseB-as.txt", 3) + " unknown activity id '6'"):
        read_kasteren2010(_k10(tmp_path, **{"houseB-ss.txt": K10["houseB-ss.txt"], "houseB-as.txt": as_}), "B")
    with pytest.raises(DataError, match=_line(tmp_path / "sensorMapB-ids.txt", 2)):
        read_kasteren2010(_k10(tmp_path, **{"houseB-as.txt": K10["houseB-as.txt"],
                                            "sensorMapB-ids.txt": "1,toilet door,X\nbroken\n"}), "B")


def test_read_home_names(tmp_path):
    with pytest.raises(ConfigError, match="ordonez_a, ordonez_b, kasteren2008"):
        read_home(tmp_path, "casas_aruba")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "kasteren2010" / "sensorMapC-ids.txt"))):
        read_home(tmp_path, "kasteren2010_c")


# --------------------------------------------------------------------------- vocabulary and sensor tables
def test_vocab():
    for raw in ("leave house", "leave-house", "Leave_House", " LEAVE  HOUSE "):
        assert home_label(raw) == "leaving"
    assert home_label("brush-teeth") == "grooming" and home_label("Spare_Time/TV") == "relaxing"
    assert home_label("prep-breakfast") == home_label("Breakfast") == "preparing_breakfast"
    assert {home_label(a) for a in HOME_ACTIVITIES} == set(HOME_ACTIVITIES)
    with pytest.raises(DataError, match=r"myfile\.txt.*'juggling'"):
        home_label("juggling", "myfile.txt")
    assert home_label("Juggling", extra={"juggling": "relaxing"}) == "relaxing"


def test_sensor_tables():
    assert english_name("kwik stove lid") == "mercury switch stove lid"
    assert english_name("gootsteen float") == "sink float"
    assert (sensor_type("pir bathroom"), sensor_place("pir bathroom")) == ("motion", "bathroom")
    assert (sensor_type("something odd"), sensor_place("something odd")) == ("unknown", "unknown")


# --------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def homes(real_data) -> dict[str, HomeRecording]:
    return {name: read_home(real_data / "smarthome", name) for name in HOMES}


# name, sensors, activations, instances, first event, last event, activations starting inside an activity
REAL_STATS = [
    # A: PROVENANCE's 382 treats the 3 reversed ADL rows as empty; repaired, they hold 7 more activations
    ("ordonez_a", 12, 409, 248, "2011-11-28T02:27", "2011-12-12T07:22", 389),
    ("ordonez_b", 12, 2334, 493, "2012-11-11T21:14", "2012-12-03T01:03", 1491),
    ("kasteren2008", 14, 1319, 245, "2008-02-25T00:20", "2008-03-23T19:04", 1053),
    ("kasteren2010_a", 14, 1229, 259, "2008-02-25", "2008-03-23", 978),
    ("kasteren2010_b", 23, 19075, 112, "2009-07-21", "2009-08-17", 10899),
    ("kasteren2010_c", 21, 22700, 234, "2008-11-19", "2008-12-08", 20745),
]


@pytest.mark.parametrize("name, n_sensors, n_on, n_act, first, last, inside", REAL_STATS)
def test_real_statistics(homes, name, n_sensors, n_on, n_act, first, last, inside):
    rec = homes[name]
    assert rec.home == name
    assert len(rec.sensors) == n_sensors
    assert rec.activations() == n_on and len(rec) == 2 * n_on
    assert len(rec.act_start) == n_act
    unit = "m" if "T" in first else "D"
    assert rec.time[0].astype(f"datetime64[{unit}]") == T(first)
    assert rec.time[-1].astype(f"datetime64[{unit}]") == T(last)
    on = rec.state == "on"
    assert (rec.activity_at(rec.time[on]) != "").sum() == inside
    assert set(rec.act_label) <= set(HOME_ACTIVITIES)


REAL_CLASSES = {
    "ordonez_a": {"Spare_Time/TV": 77, "Grooming": 51, "Toileting": 44, "Sleeping": 14, "Showering": 14,
                  "Breakfast": 14, "Leaving": 14, "Snack": 11, "Lunch": 9},
    "ordonez_b": {"Spare_Time/TV": 116, "Grooming": 113, "Toileting": 93, "Snack": 47, "Leaving": 38,
                  "Sleeping": 29, "Breakfast": 22, "Lunch": 13, "Showering": 11, "Dinner": 11},
    "kasteren2008": {"use toilet": 114, "leave house": 34, "go to bed": 24, "take shower": 23,
                     "prepare Breakfast": 20, "get drink": 20, "prepare Dinner": 10},
    "kasteren2010_a": {"use-toilet": 114, "leave-house": 33, "go-to-bed": 24, "take-shower": 23,
                       "prep-breakfast": 20, "get-drink": 20, "brush-teeth": 16, "prep-dinner": 9},
    "kasteren2010_b": {"use-toilet": 27, "leave-house": 24, "go-to-bed": 14, "brush-teeth": 13, "take-shower": 11,
                       "prep-breakfast": 9, "get-drink": 8, "prep-dinner": 6},
    "kasteren2010_c": {"use-toilet": 89, "leave-house": 47, "brush-teeth": 26, "go-to-bed": 19,
                       "prep-breakfast": 18, "take-shower": 14, "prep-dinner": 11, "get-drink": 10},
}


@pytest.mark.parametrize("name", sorted(REAL_CLASSES))
def test_real_class_counts(homes, name):
    assert dict(Counter(homes[name].act_raw.tolist())) == REAL_CLASSES[name]


def test_real_sensor_counts(homes):
    b = Counter(homes["ordonez_b"].sensor[homes["ordonez_b"].state == "on"].tolist())
    assert (b["Door_Living"], b["Door_Kitchen"], b["Door_Bedroom"], b["Shower_Bathroom"]) == (814, 558, 362, 12)
    k = homes["kasteren2008"]
    by_name = Counter(k.sensors[s].name for s in k.sensor[k.state == "on"].tolist())
    assert by_name["hall-bathroom door"] == 260 and by_name["washing machine"] == 17 and by_name["fridge"] == 144
    kb, kc = homes["kasteren2010_b"], homes["kasteren2010_c"]
    assert (kb.sensor == "28").sum() // 2 == 7138 and kb.sensors["28"].name == "pir kitchen"
    assert (kc.sensor == "5").sum() // 2 == 18717 and kc.sensors["5"].place == "bedroom"


def test_real_windows_and_split(homes):
    w = event_windows(homes["ordonez_a"], 10)
    train, test = chronological_split(w, 0.3)
    days = np.unique(w.day())
    assert len(np.unique(w.day()[test])) == int(np.ceil(0.3 * len(days)))
    assert w.day()[train].max() < w.day()[test].min()
    X = count_features(w, sorted(homes["ordonez_a"].sensors))
    assert X.shape == (len(w), 14) and (X[:, :12].sum(axis=1) <= 10).all()


# --------------------------------------------------------------------------- hand-built recording
def _toy() -> HomeRecording:
    """Events: 0 a-on 10:00:00, 1 a-off :05, 2 b-on :10, 3 b-off :20, 4 a-on 10:01:00, 5 a-off :01,
    6 c-on 10:05:00, 7 c-off 10:06:00. Toileting 10:00:00-10:00:30, Breakfast 10:00:50-10:01:00 and
    Sleeping 10:00:55-10:02:00 (overlap: the later start wins)."""
    d = "2020-01-01T"
    return recording_from_intervals(
        "toy", ["a", "b", "c"],
        [d + "10:00:00", d + "10:00:10", d + "10:01:00", d + "10:05:00"],
        [d + "10:00:05", d + "10:00:20", d + "10:01:01", d + "10:06:00"],
        ["a", "b", "a", "c"],
        [d + "10:00:00", d + "10:00:55", d + "10:00:50"], [d + "10:00:30", d + "10:02:00", d + "10:01:00"],
        ["Toileting", "Sleeping", "Breakfast"],
    )


def test_toy_recording_and_activity_at():
    rec = _toy()
    assert rec.sensor.tolist() == ["a", "a", "b", "b", "a", "a", "c", "c"]
    assert rec.state.tolist() == ["on", "off"] * 4
    assert rec.act_raw.tolist() == ["Toileting", "Breakfast", "Sleeping"]  # sorted by start
    times = np.array(["2020-01-01T10:00:30", "2020-01-01T10:00:31", "2020-01-01T10:00:52",
                      "2020-01-01T10:01:00", "2020-01-01T09:00:00"], dtype="datetime64[s]")
    assert rec.activity_at(times).tolist() == ["toileting", "", "preparing_breakfast", "sleeping", ""]
    assert rec.activity_at(rec.time).tolist() == ["toileting"] * 4 + ["sleeping"] * 2 + ["", ""]


def test_recording_validation():
    rec = _toy()
    with pytest.raises(DataError, match="same length"):
        HomeRecording("x", rec.sensors, rec.time, rec.sensor[:-1], rec.state, rec.act_start, rec.act_end,
                      rec.act_label, rec.act_raw)
    with pytest.raises(DataError, match="sorted"):
        HomeRecording("x", rec.sensors, rec.time[::-1], rec.sensor, rec.state, rec.act_start, rec.act_end,
                      rec.act_label, rec.act_raw)
    with pytest.raises(DataError, match="'on' or 'off'"):
        HomeRecording("x", rec.sensors, rec.time, rec.sensor, np.full(8, "1"), rec.act_start, rec.act_end,
                      rec.act_label, rec.act_raw)
    with pytest.raises(DataError, match=r"missing from `sensors`.*'zz'"):
        HomeRecording("x", rec.sensors, rec.time, np.full(8, "zz"), rec.state, rec.act_start, rec.act_end,
                      rec.act_label, rec.act_raw)
    with pytest.raises(DataError, match="ends .* before it starts"):
        recording_from_intervals("x", ["a"], ["2020-01-01T10:00:05"], ["2020-01-01T10:00:00"], ["a"], [], [], [])
    with pytest.raises(DataError, match="must hold datetimes"):
        recording_from_intervals("x", ["a"], ["not a time"], ["2020-01-01T10:00:00"], ["a"], [], [], [])


def test_k_event_windows():
    rec = _toy()
    w = event_windows(rec, 3)
    assert w.start.tolist() == [0, 1, 2, 3] and w.end.tolist() == [3, 4, 5, 6]
    assert w.label.tolist() == ["toileting", "toileting", "sleeping", "sleeping"]
    assert (w.time == rec.time[w.end - 1]).all() and (w.sizes() == 3).all()
    other = event_windows(rec, 3, unlabelled="other")
    assert len(other) == 6 and other.label.tolist()[-2:] == ["other", "other"]
    strided = event_windows(rec, 3, stride=2, unlabelled="other")
    assert strided.end.tolist() == [3, 5, 7] and strided.label.tolist() == ["toileting", "sleeping", "other"]
    assert len(event_windows(rec, 9)) == 0
    sub = w.subset(np.array([3, 0]))
    assert sub.start.tolist() == [3, 0] and sub.recording is rec and sub.day().dtype == np.dtype("datetime64[D]")


def test_span_windows():
    rec = _toy()
    w = event_windows(rec, span_seconds=10, unlabelled="other")
    assert w.start.tolist() == [0, 0, 0, 2, 4, 4, 6, 7] and w.end.tolist() == list(range(1, 9))
    capped = event_windows(rec, span_seconds=10, max_events=2, unlabelled="other")
    assert capped.start.tolist() == [0, 0, 1, 2, 4, 4, 6, 7]
    assert event_windows(rec, span_seconds=10).end.tolist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("kwargs, arg", [
    ({"k": 0}, "`k`"), ({"k": True}, "`k`"), ({"k": 2.5}, "`k`"), ({"stride": 0}, "`stride`"),
    ({"span_seconds": -1.0}, "`span_seconds`"), ({"span_seconds": float("nan")}, "`span_seconds`"),
    ({"span_seconds": 5, "max_events": 0}, "`max_events`"), ({"unlabelled": "keep"}, "`unlabelled`"),
])
def test_window_config_errors(kwargs, arg):
    with pytest.raises(ConfigError, match=arg):
        event_windows(_toy(), **kwargs)


# --------------------------------------------------------------------------- splits and features
def _days(n_days: int, per_day: int = 3) -> HomeRecording:
    starts = [np.datetime64("2020-03-01T08:00:00") + np.timedelta64(d, "D") + np.timedelta64(60 * i, "s")
              for d in range(n_days) for i in range(per_day)]
    s0 = np.array(starts, dtype="datetime64[s]")
    return recording_from_intervals("days", ["a"], s0, s0 + np.timedelta64(5, "s"), ["a"] * len(s0),
                                    [s0[0]], [s0[-1] + np.timedelta64(10, "s")], ["Leaving"])


@pytest.mark.parametrize("fraction, n_test", [(0.3, 3), (0.05, 1), (0.99, 9), (0.5, 5)])
def test_chronological_split(fraction, n_test):
    w = event_windows(_days(10), 1)
    train, test = chronological_split(w, fraction)
    day = w.day()
    assert len(np.unique(day[test])) == n_test and len(np.unique(day[train])) == 10 - n_test
    assert day[train].max() < day[test].min()
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(w)))


def test_chronological_split_errors():
    with pytest.raises(DataError, match="at least 2 days"):
        chronological_split(event_windows(_days(1), 1))
    with pytest.raises(ConfigError, match="test_fraction"):
        chronological_split(event_windows(_days(3), 1), 1.0)


def test_cross_home_split():
    a, b = _toy(), _days(2)
    train, test = cross_home_split([a, b], ["days"])
    assert train == [a] and test == [b]
    wa = event_windows(a, 2)
    assert cross_home_split([wa, event_windows(b, 1)], "toy")[1] == [wa]
    with pytest.raises(ConfigError, match="unknown test home.*'nowhere'"):
        cross_home_split([a, b], ["nowhere"])
    with pytest.raises(ConfigError, match="at least one training"):
        cross_home_split([a, b], ["toy", "days"])


def test_count_features():
    rec = _toy()
    w = event_windows(rec, 3)  # windows [0,3) [1,4) [2,5) [3,6)
    X = count_features(w, ["a", "b", "zzz"])
    assert X.shape == (4, 5)
    assert X[:, :3].tolist() == [[1, 1, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]]
    hour = np.array([10 + 10 / 3600, 10 + 20 / 3600, 10 + 60 / 3600, 10 + 61 / 3600])
    np.testing.assert_allclose(X[:, 3], np.sin(2 * np.pi * hour / 24))
    np.testing.assert_allclose(X[:, 4], np.cos(2 * np.pi * hour / 24))
    assert count_features(w.subset(np.array([], dtype=int)), ["a"]).shape == (0, 3)
    with pytest.raises(ConfigError, match="unique"):
        count_features(w, ["a", "a"])
