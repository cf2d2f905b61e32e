"""``fedhar export`` on tiny trained runs of every backbone kind: the file is one graph from raw
windows to probabilities, reproduces PyTorch on the test windows, carries its metadata, refuses
a wrong graph, and exports a client's personalised model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from fedhar.config import derive, load_config
from fedhar.exceptions import ConfigError, ExportError
from fedhar.export.parity import DEFAULT_MIN_AGREEMENT, measure_parity, require, run_batched
from fedhar.export.run import ExportOptions, export_run
from fedhar.export.runners import file_metadata, load_runner
from fedhar.models.mae import MAEConfig, MaskedAutoencoder
from fedhar.studies import run_study

REPO = Path(__file__).resolve().parents[2]
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
KINDS = ("tiny-llama", "none", "transformer", "mae")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny central run per backbone kind (2 epochs on generated signals)."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    mae = root / "mae_backbone"
    MaskedAutoencoder(MAEConfig(patch=8, width=32, depth=2, heads=4, mlp_ratio=2, decoder_width=16, decoder_depth=1),
                      CHANNELS, 128).save(mae, extra={"mean": [0.0] * 6, "std": [1.0] * 6})
    base = load_config(REPO / "configs" / "smoke.yaml")
    changes = {"tiny-llama": {}, "none": {"model.backbone.name": "none"},
               "transformer": {"model.backbone.name": "transformer"},
               "mae": {"model.backbone.name": str(mae), "model.backbone.lora": {"r": 2, "alpha": 4}}}
    out = {}
    for kind in KINDS:
        run_study("train", derive(base, {"name": f"export-{kind}", **changes[kind]}), str(root / kind))
        out[kind] = root / kind
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_backbone_kind_exports_to_onnx_with_parity(runs, tmp_path, kind):
    out = tmp_path / f"{kind}.onnx"
    report = export_run(runs[kind], out, ExportOptions())
    onnx.checker.check_model(str(out))
    p = report["parity"]
    assert p["passed"] and p["agreement"] >= 0.995 and p["max_abs_logit_diff"] < 1e-3
    assert p["macro_f1"] == pytest.approx(p["macro_f1_torch"]) and p["windows"] > 10
    assert json.loads(Path(f"{out}.json").read_text())["parity"] == p
    if kind in ("tiny-llama", "mae"):
        assert report["lora_layers_merged"] > 0
    # one graph from raw windows: any batch size, probabilities that sum to one
    probs, logits = load_runner(out, "onnx")(np.random.default_rng(0).normal(size=(3, 6, 128)).astype(np.float32))
    assert probs.shape == logits.shape == (3, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_metadata_round_trip(runs, tmp_path):
    out = tmp_path / "m.onnx"
    export_run(runs["tiny-llama"], out)
    meta = file_metadata(out, "onnx")
    assert json.loads(meta["fedhar.channels"]) == list(CHANNELS)
    assert json.loads(meta["fedhar.classes"]) == ["walking", "walking_upstairs", "walking_downstairs", "sitting",
                                                  "standing", "lying"]
    assert meta["fedhar.window_length"] == "128" and meta["fedhar.backbone"] == "tiny-llama"
    assert meta["fedhar.blocks"] == "2" and meta["fedhar.quantize"] == "none"


def test_int8_keeps_the_predictions_and_shrinks_the_file(runs, tmp_path):
    fp32 = export_run(runs["tiny-llama"], tmp_path / "fp32.onnx")
    int8 = export_run(runs["tiny-llama"], tmp_path / "int8.onnx", ExportOptions(quantize="int8"))
    assert int8["parity"]["passed"] and int8["parity"]["min_agreement"] == 0.99
    assert int8["file_bytes"] < fp32["file_bytes"]
    assert any(n.op_type in ("DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul")
               for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node)
    assert file_metadata(tmp_path / "int8.onnx", "onnx")["fedhar.quantize"] == "int8"


def test_a_wrong_graph_fails_the_parity_check(runs, tmp_path):
    out = tmp_path / "m.onnx"
    report = export_run(runs["tiny-llama"], out)
    model = onnx.load(str(out))
    head_bias = next(i for i in model.graph.initializer if i.name.endswith("head.fc.bias") or
                     (len(i.dims) == 1 and i.dims[0] == 6 and "head" in i.name))
    bias = onnx.numpy_helper.to_array(head_bias).copy()
    bias[0] += 1e4  # every window becomes "walking"
    head_bias.CopyFrom(onnx.numpy_helper.from_array(bias, head_bias.name))
    onnx.save(model, str(tmp_path / "wrong.onnx"))
    test = _test_split(runs["tiny-llama"])
    right = run_batched(load_runner(out, "onnx"), test.X)
    wrong = run_batched(load_runner(tmp_path / "wrong.onnx", "onnx"), test.X)
    y = test.y
    ok = measure_parity(right, right, y, 6, DEFAULT_MIN_AGREEMENT["none"])
    bad = measure_parity(right, wrong, y, 6, DEFAULT_MIN_AGREEMENT["none"])
    assert ok.passed and not bad.passed and bad.agreement < 0.5
    require(ok, "right")
    with pytest.raises(ExportError, match=r"argmax agreement with PyTorch is .* below the required 99.50%"):
        require(bad, "wrong.onnx")
    assert report["parity"]["passed"]


def test_export_rejects_a_graph_that_does_not_match(runs, tmp_path, monkeypatch):
    """Through export_run: a graph that swaps the classes is written, checked, and rejected."""
    import fedhar.export.run as run_mod

    class Swapped(run_mod.ExportGraph):
        def forward(self, window):
            probs, logits = super().forward(window)
            return probs.flip(-1), logits.flip(-1)

    monkeypatch.setattr(run_mod, "ExportGraph", Swapped)
    out = tmp_path / "swapped.onnx"
    with pytest.raises(ExportError, match="the export is rejected"):
        export_run(runs["none"], out)
    assert not out.exists()  # never left behind to be shipped
    assert json.loads(Path(f"{out}.json").read_text())["parity"]["passed"] is False


def test_a_clients_personalised_model_exports(runs, tmp_path):
    """A client's personal state goes on top of the global model, and the file reproduces it."""
    run = runs["tiny-llama"]
    state = load_file(str(run / "model" / "trainable_state.safetensors"))
    head = {k: v for k, v in state.items() if k.startswith("head.")}
    personal = {k: v + torch.randn_like(v) * 2 for k, v in head.items()}  # a client with its own head
    client = run / "clients" / "client_0001"
    client.mkdir(parents=True)
    save_file(personal, str(client / "finetune.safetensors"))
    glob = export_run(run, tmp_path / "global.onnx")
    mine = export_run(run, tmp_path / "client1.onnx", ExportOptions(client=1, min_agreement=0.995))
    assert mine["parity"]["passed"] and mine["client"] == 1
    assert mine["source"].endswith("client_0001/finetune.safetensors")
    assert mine["parity"]["windows"] != glob["parity"]["windows"]  # the client's own local test windows
    x = np.random.default_rng(1).normal(size=(8, 6, 128)).astype(np.float32)
    assert not np.allclose(load_runner(tmp_path / "client1.onnx", "onnx")(x)[1],
                           load_runner(tmp_path / "global.onnx", "onnx")(x)[1])
    with pytest.raises(ConfigError, match=r"--client 7: .*client_0007 does not exist; this run has personal states "
                                          r"for client_0001"):
        export_run(run, tmp_path / "x.onnx", ExportOptions(client=7))
    with pytest.raises(ConfigError, match=r"--personal fedper: .* this client has: finetune"):
        export_run(run, tmp_path / "x.onnx", ExportOptions(client=1, personal="fedper"))


def test_bad_requests_are_refused_clearly(runs, tmp_path):
    with pytest.raises(ConfigError, match=r"--quantize 'int3': expected one of none, int8, int4"):
        ExportOptions(quantize="int3")
    with pytest.raises(ConfigError, match=r"--format 'tflite'"):
        ExportOptions(format="tflite")
    with pytest.raises(ExportError, match=r"should end in \.onnx"):
        export_run(runs["none"], tmp_path / "m.pte")


def test_the_classical_model_exports_as_one_graph(tmp_path):
    """Window features (torch) + random forest (skl2onnx) from raw windows, with the forest's probabilities."""
    classical = tmp_path / "classical"
    run_study("train", derive(load_config(REPO / "configs" / "smoke.yaml"),
                              {"name": "cls", "model.backbone.name": "classical", "model.backbone.trees": 20}),
              str(classical))
    out = tmp_path / "c.onnx"
    report = export_run(classical, out)
    p = report["parity"]
    assert p["passed"] and p["agreement"] >= 0.995 and p["max_abs_logit_diff"] < 1e-4
    assert p["macro_f1"] == pytest.approx(json.loads((classical / "results.json").read_text())["final"]["macro_f1"])
    assert file_metadata(out, "onnx")["fedhar.backbone"] == "classical"
    probs, _ = load_runner(out, "onnx")(np.random.default_rng(0).normal(size=(4, 6, 128)).astype(np.float32))
    assert probs.shape == (4, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
    with pytest.raises(ExportError, match="a classical run exports to --format onnx without --quantize"):
        export_run(classical, tmp_path / "c8.onnx", ExportOptions(quantize="int8"))
    for f in (classical / "model").iterdir():  # a run from before forests were saved
        f.unlink()
    with pytest.raises(ExportError, match="this classical run saved no forest"):
        export_run(classical, out)


def test_bench_reports_size_memory_latency_and_throughput(runs, tmp_path):
    report = export_run(runs["none"], tmp_path / "m.onnx", ExportOptions(bench=True))
    b = report["bench"]
    assert b["threads"] == 1 and b["file_bytes"] == (tmp_path / "m.onnx").stat().st_size
    assert b["latency"]["windows"] == 200 and 0 < b["latency"]["p50_ms"] <= b["latency"]["p95_ms"]
    assert b["throughput"]["batch"] == 32 and b["throughput"]["windows_per_s"] > 0
    assert b["memory"]["model_peak_mb"] > 0 and b["memory"]["torch_imported"] is False


def test_cli_prints_parity_and_writes_the_report(runs, tmp_path, capsys):
    from fedhar.cli import main

    assert main(["export", str(runs["none"]), "--out", str(tmp_path / "m.onnx")]) == 0
    text = capsys.readouterr().out
    assert "argmax agreement 100.00%" in text and f"report: {tmp_path / 'm.onnx'}.json" in text


def _test_split(run: Path):
    from fedhar.data.sources import load_splits

    return load_splits(load_config(run / "config.yaml").data, 0)[1]


def test_executorch_is_an_extra_with_a_clear_error_when_missing(runs, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "executorch", None)  # as if not installed
    with pytest.raises(ExportError, match=r"--format executorch needs the `executorch` package, an optional extra"):
        export_run(runs["none"], tmp_path / "m.pte", ExportOptions(format="executorch"))
    with pytest.raises(ExportError, match=r"quantised ExecuTorch export is not supported"):
        export_run(runs["none"], tmp_path / "m.pte", ExportOptions(format="executorch", quantize="int8"))


def test_executorch_export_runs_with_parity(runs, tmp_path):
    pytest.importorskip("executorch", reason="executorch is an optional extra: pip install -e '.[executorch]'")
    out = tmp_path / "m.pte"
    report = export_run(runs["tiny-llama"], out, ExportOptions(format="executorch"))
    assert report["parity"]["passed"] and report["parity"]["max_abs_logit_diff"] < 1e-3
    assert json.loads(file_metadata(out, "executorch")["fedhar.channels"]) == list(CHANNELS)
    probs, _ = load_runner(out, "executorch")(np.zeros((70, 6, 128), np.float32))  # above the program's batch bound
    assert probs.shape == (70, 6)
