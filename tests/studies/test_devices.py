"""The devices study end to end on a tiny config: three fleets (homogeneous, a mixed fleet of two
tiers under shared_a, and the same with the small tier never online), one seed, real federated runs on the Simulation Engine (tiny-llama,
synthetic data); and its config errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fedhar.config import build_config
from fedhar.exceptions import ConfigError

BIG = {"base": "flagship", "rank": 4, "blocks": 2}
SMALL = {"base": "watch", "rank": 2, "blocks": 1}
SETUPS = [{"label": "homogeneous", "set": {"federated.tiers": [BIG]}},
          {"label": "mixed shared_a", "set": {"federated.tiers": [BIG, SMALL], "federated.lora_aggregation": "shared_a"}},
          {"label": "capable", "set": {"federated.tiers": [BIG, {**SMALL, "availability": "never"}],
                                       "federated.lora_aggregation": "shared_a"}}]
RUN = """
import sys
from fedhar.config import derive, load_config
from fedhar.studies import run_study

setups = %r
cfg = derive(load_config("configs/smoke.yaml"), {"name": "dev", "seeds": [0], "federated.tiers": setups[0]["set"]["federated.tiers"],
             "devices.setups": setups, "devices.homogeneous": "homogeneous", "devices.mixed": ["mixed shared_a"],
             "devices.capable": "capable", "devices.weak_tiers": ["watch_custom"]})
run_study("devices", cfg, sys.argv[1])
""" % (SETUPS,)


@pytest.fixture(scope="module")
def study(tmp_path_factory, run_python) -> Path:
    out = tmp_path_factory.mktemp("devices") / "run"
    run_python(RUN, str(out))
    return out


def test_the_study_writes_rows_with_per_tier_columns(study):
    res = json.loads((study / "results.json").read_text())
    assert res["complete"] and [r["setup"] for r in res["rows"]] == ["homogeneous", "mixed shared_a", "capable"]
    homo, mixed, capable = res["rows"]
    for row, tiers in ((homo, ["flagship_custom"]), (mixed, ["flagship_custom", "watch_custom"])):
        assert row["folder"].startswith("points/seed_0/") and (study / row["folder"] / "results.json").exists()
        for col in ["macro_f1", "simulated_seconds", *[f"f1_{t}" for t in tiers], *[f"bytes_up_{t}" for t in tiers]]:
            assert math.isfinite(row[col]), col
    assert mixed["bytes_up_flagship_custom"] > mixed["bytes_up_watch_custom"] > 0
    # availability: never -- the watches never train (nothing sent) but are still evaluated
    assert capable["bytes_up_watch_custom"] == 0 and math.isfinite(capable["f1_watch_custom"])
    assert capable["bytes_up_flagship_custom"] > 0
    assert res["verdicts"]["best_mixed"]["setup"] == "mixed shared_a" and "vs_homogeneous" in res["verdicts"]
    assert "f1_watch_custom" in (study / "metrics.csv").read_text().splitlines()[0]


def test_the_report_has_the_table_and_the_verdict(study):
    report = (study / "report.md").read_text()
    assert "| setup | global macro-F1 | F1 flagship_custom | F1 watch_custom |" in report
    assert "| mixed shared_a | " in report and "x homogeneous" in report
    assert "on the watch_custom clients' data" in report and "p=n/a (too few seeds)" in report  # paired over 1 seed
    assert (study / "devices.png").exists()


def tiny(**devices) -> dict:
    return {"name": "dev", "data": {"source": "synthetic"}, "devices": {"setups": SETUPS, **devices}}


def test_bad_sections_name_the_key():
    with pytest.raises(ConfigError, match=r"devices.setups\[1\].*unknown key `sett`"):
        build_config(tiny(setups=[SETUPS[0], {"label": "x", "sett": {}}]))
    with pytest.raises(ConfigError, match="devices.setups.*distinct labels"):
        build_config(tiny(setups=[SETUPS[0], SETUPS[0]]))
    with pytest.raises(ConfigError, match="`devices.capable` is `nope`"):
        build_config(tiny(capable="nope"))
    with pytest.raises(ConfigError, match="`devices.mixed` lists `x`"):
        build_config(tiny(mixed=["x"]))
