"""A tiny mixed fleet end to end on the Simulation Engine: two tiers of different LoRA ranks and
depths (each depth with its own frontend and head) train for two rounds; each tier uploads its own
slice, and the simulated time is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = """
import sys
from fedhar.config import derive, load_config
from fedhar.studies import run_study

tiers = [{"base": "flagship", "rank": 4, "blocks": 2, "clients": [0, 1]},
         {"base": "watch", "rank": 2, "blocks": 1, "clients": [2, 3]}]
cfg = derive(load_config("configs/smoke.yaml"), {"federated.tiers": tiers, "federated.round_deadline_s": 3600.0,
                                               "federated.tier_parts": "per_depth"})
run_study("simulate", cfg, sys.argv[1])
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, run_python) -> dict:
    out = tmp_path_factory.mktemp("fleet") / "run"
    run_python(RUN, str(out))
    return json.loads((out / "results.json").read_text()) | {"folder": str(out)}


def test_the_mixed_fleet_finishes_with_its_model(run):
    assert run["complete"] and [r["round"] for r in run["rounds"]] == [1, 2]
    assert all(r["clients"] == 4 and r["failures"] == 0 for r in run["rounds"])
    assert (Path(run["folder"]) / "model" / "trainable_state.safetensors").exists()
    assert (Path(run["folder"]) / "model" / "tier_parts.safetensors").exists()  # the watches' own frontend and head


def test_each_tier_uploads_its_own_slice(run):
    dev = run["devices"]
    assert dev["lora_aggregation"] == "shared_a" and dev["global_rank"] == 4
    flagship, watch = dev["tiers"]["flagship_custom"], dev["tiers"]["watch_custom"]
    assert (flagship["clients"], watch["clients"]) == ([0, 1], [2, 3])
    assert flagship["bytes_up"] > watch["bytes_up"] > 0
    assert flagship["bytes_up"] + watch["bytes_up"] == run["communication"]["bytes_up"]
    assert all(0 <= t["fed_macro_f1"] <= 1 for t in (flagship, watch))


def test_simulated_time_is_recorded(run):
    rounds = run["rounds"]
    assert all(r["simulated_seconds"] > 0 and r["stragglers"] == [] for r in rounds)
    assert rounds[1]["simulated_end_s"] == pytest.approx(rounds[0]["simulated_seconds"] + rounds[1]["simulated_seconds"])
    dev = run["devices"]
    assert dev["simulated_seconds"] == pytest.approx(rounds[1]["simulated_end_s"]) and dev["target_macro_f1"] == 0.85
    assert dev["time_to_reach_s"] is None or dev["time_to_reach_s"] in [r["simulated_end_s"] for r in rounds]
    assert "simulated_seconds" in run["metrics_explained"]


@pytest.mark.deployment
def test_mixed_ranks_on_the_deployment_engine(tmp_path):
    """One SuperNode per tier (ranks 4 and 2, depths 2 and 1), two rounds, real Flower processes."""
    tiers = ("federated.tiers=[{base: flagship, rank: 4, blocks: 2, clients: [0]}, "
             "{base: watch, rank: 2, blocks: 1, clients: [1]}]")
    args = [sys.executable, "-m", "fedhar.cli", "simulate", "configs/smoke.yaml", "--out", str(tmp_path),
            "--engine", "deployment", "--supernodes", "2", "--set", tiers]
    res = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["complete"] and r["num_clients"] == 2 and all(x["clients"] == 2 for x in r["rounds"])
    dev = r["devices"]
    assert dev["lora_aggregation"] == "shared_a"
    assert dev["tiers"]["flagship_custom"]["bytes_up"] > dev["tiers"]["watch_custom"]["bytes_up"] > 0
    assert all(x["simulated_seconds"] > 0 for x in r["rounds"])
