"""The benchmark scripts run (tiny models, seconds) and their reports hold sane, measured values.

Speed is not asserted here; `python benchmarks/run_all.py` measures it.
"""

from __future__ import annotations

import json
import sys

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(REPO / "benchmarks"))

import run_all  # noqa: E402


def test_run_all_smoke_writes_every_table(tmp_path):
    assert run_all.main(["--smoke", "--only", "throughput,head_cache,time_to_accuracy", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Throughput" in report and "feature cache" in report and "Time to macro-F1" in report
    results = json.loads((tmp_path / "results.json").read_text())["sections"]
    for row in results["throughput"]["rows"]:
        assert row["train_windows_per_s"] > 0 and row["infer_windows_per_s"] > 0
        assert 0 < row["train_ratio_to_ceiling"] < 1.5 and row["train_gflop_per_window"] > 0
    assert results["head_cache"]["fp32_max_weight_diff"] < 1e-5
    for row in results["head_cache"]["rows"]:
        assert row["max_weight_diff"] < 1e-6 and row["prediction_agreement"] == 1.0
    assert {r["variant"] for r in results["time_to_accuracy"]["rows"]} == {"tiny-llama LoRA", "no LLM"}
    assert (tmp_path / "throughput.json").exists() and (tmp_path / "head_cache.md").exists()


def test_run_all_rejects_unknown_section(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        run_all.main(["--smoke", "--only", "nonsense", "--out", str(tmp_path)])
    assert "unknown section" in capsys.readouterr().err


def test_export_benchmark_smoke_measures_every_row(tmp_path):
    assert run_all.main(["--smoke", "--only", "export", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "export.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"LLM 1 block", "LLM 2 blocks", "no LLM", "Transformer (from scratch)", "MAE"}
    assert {r["quantize"] for r in rows} == {"fp32", "int8"}
    for r in rows:
        assert r["mb"] > 0 and 0 < r["p50_ms"] <= r["p95_ms"] and r["peak_mb"] > 0 and 0 <= r["agreement"] <= 1
        if r["quantize"] == "fp32":
            assert r["agreement"] == 1.0 and r["macro_f1"] == r["macro_f1_torch"]
