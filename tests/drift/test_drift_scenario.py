"""Scenario parsing: a valid YAML timeline loads; bad timelines fail naming the phase and key."""

from __future__ import annotations

import pytest
import yaml

from fedhar.drift import Phase, Scenario, load_scenario
from fedhar.exceptions import ConfigError

VALID = """
name: continual_placement
window_s: 2.56
step_s: 1.28
phases:
  - name: waist
    duration_s: 300
    device: reference
    placement: waist
    classes: [walking, sitting, standing]
  - name: pocket
    duration_s: 300
    placement: trouser_pocket
    transition: gradual
    transition_s: 60
  - name: budget_wrist
    duration_s: 300
    device: {base: budget_phone, adc_bits: 8}
    placement: wrist
    subjects: [1, 2]
  - name: back_to_waist
    like: waist
    placement: wrist
    classes: [walking, sitting, standing, LAYING]
    duration_s: null
"""


def test_valid_yaml_loads(tmp_path):
    path = tmp_path / "drift.yaml"
    path.write_text(VALID)
    scn = load_scenario(path)
    assert isinstance(scn, Scenario) and [p.name for p in scn.phases] == ["waist", "pocket", "budget_wrist", "back_to_waist"]
    assert scn.classes == ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying"]
    assert scn.phases[1].transition == "gradual" and scn.phases[1].device == "reference"
    assert scn.phases[2].device == {"base": "budget_phone", "adc_bits": 8} and scn.phases[2].subjects == [1, 2]
    back = scn.phases[3]
    assert back.device == "reference" and back.placement == "wrist"  # copied vs. written
    assert back.classes == ["walking", "sitting", "standing", "lying"] and back.duration_s is None
    assert load_scenario({"scenario": yaml.safe_load(VALID)}).phases[3].like == "waist"


def test_docstring_example_loads():
    import textwrap

    import fedhar.drift.scenario as module

    block = module.__doc__.split("::\n\n")[1].split("\n\n``device``")[0]
    scn = load_scenario(yaml.safe_load(textwrap.dedent(block)))
    assert [p.name for p in scn.phases] == ["waist", "pocket", "budget_wrist", "new_class"]
    assert scn.phases[3].device == "reference" and scn.phases[3].placement == "waist" and "lying" in scn.phases[3].classes


def test_like_copies_unspecified_settings_including_defaults_written_out():
    scn = load_scenario({"name": "s", "phases": [
        {"name": "a", "duration_s": 10, "device": "watch", "placement": "wrist", "subjects": [3]},
        {"name": "b", "duration_s": 5},
        {"name": "c", "like": "a", "placement": "waist"},
    ]})
    c = scn.phases[2]
    assert (c.device, c.placement, c.subjects, c.duration_s) == ("watch", "waist", [3], 10)


def test_scenario_in_python():
    scn = Scenario("py", [Phase("a", 10.0), Phase("b", 10.0, placement="bag")], classes=["Walking", "laying"])
    assert scn.classes == ["walking", "lying"]


def phases(*extra, first=None):
    return {"name": "s", "phases": [first or {"name": "waist", "duration_s": 30}, *extra]}


BAD = [
    ({"name": "s", "phases": []}, "phases"),
    (phases({"name": "waist", "duration_s": 10}), r"phase 'waist' \(#2\): duplicate phase name"),
    (phases({"name": "pocket", "device": "iphone"}), r"phase 'pocket' \(#2\).*device profile `iphone`.*budget_phone"),
    (phases({"name": "pocket", "placement": "belt"}), r"phase 'pocket' \(#2\).*placement `belt`.*trouser_pocket"),
    (phases({"name": "pocket", "like": "nowhere"}), r"phase 'pocket' \(#2\): `like` names no phase"),
    (phases({"name": "pocket", "like": "later"}, {"name": "later"}), r"phase 'pocket' \(#2\): `like` names a later phase"),
    (phases({"name": "pocket", "duration_s": -5}), r"scenario phase 'pocket' \(#2\): duration_s must be > 0; got -5"),
    (phases({"name": "pocket", "duration_s": 0}), r"phase 'pocket' \(#2\): duration_s must be > 0"),
    (phases({"name": "pocket", "classes": ["walking", "flying"]}), r"phase 'pocket' \(#2\).*unknown class 'flying'"),
    (phases({"name": "pocket", "classes": ["jogging"]}), r"phase 'pocket' \(#2\).*unknown class 'jogging'; valid: walking"),
    (phases({"name": "pocket", "transition": "sudden"}), r"phase 'pocket' \(#2\): `transition` must be one of"),
    (phases({"name": "pocket", "transition": "gradual"}), r"phase 'pocket' \(#2\): a gradual transition needs `transition_s` > 0"),
    (phases({"name": "pocket", "transition_s": 5}), r"phase 'pocket' \(#2\): `transition_s` applies to gradual"),
    (phases({"name": "pocket", "subjects": [1, "two"]}), r"phase 'pocket' \(#2\).*subjects\[1\]` must be an integer"),
    (phases({"name": "pocket", "subjects": [1.5]}), r"phase 'pocket' \(#2\).*must be an integer"),
    (phases({"name": "pocket", "subjects": [1, 1]}), r"phase 'pocket' \(#2\): `subjects` lists a subject twice"),
    (phases({"name": "pocket"}, first={"name": "waist"}), r"phase 'waist' \(#1\): `duration_s` is null"),
    (phases(first={"name": "waist", "transition": "gradual", "transition_s": 5}), r"phase 'waist' \(#1\): the first phase"),
    (phases({"name": "pocket", "duration_s": 10, "transition": "gradual", "transition_s": 20}), r"phase 'pocket'.*longer"),
    (phases({"name": "pocket", "colour": "red"}), r"phase 'pocket' \(#2\).*Unknown key `phases\[1\].colour`"),
    ({**phases(), "classes": ["walking", "swimming"]}, r"unknown class 'swimming'"),
    ({**phases(), "window_s": 0}, r"window_s"),
    ({**phases(), "test_fraction": 1.0}, r"test_fraction"),
]


@pytest.mark.parametrize("mapping, match", BAD)
def test_bad_timelines_raise_config_error(mapping, match):
    with pytest.raises(ConfigError, match=match):
        load_scenario(mapping)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(bad)
    no_name = tmp_path / "my_drift.yaml"
    no_name.write_text("phases: [{name: a}]")
    assert load_scenario(no_name).name == "my_drift"
