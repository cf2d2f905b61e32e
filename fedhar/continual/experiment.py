"""A continual-adaptation study: a drift scenario on real streams, every strategy on the LLM and
on the baselines, the accuracy matrix and its metrics, written to a run folder.

Kept apart from the strategies and the protocol: this module only wires config -> scenario ->
experiences -> (model, strategy) pairs -> :func:`~fedhar.continual.protocol.run_stream` -> files.
Each finished (model, strategy) pair is a cell of the run folder, saved at once, so an interrupted
study resumes (``--resume``) without redoing finished work.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from fedhar.config import ExperimentConfig, Variant, config_to_dict
from fedhar.continual.config import strategy_label, strategy_options
from fedhar.continual.metrics import AccuracyMatrix
from fedhar.continual.protocol import run_stream
from fedhar.continual.strategies import build_detector, build_strategy
from fedhar.data.sources import resolve_source
from fedhar.data.splits import fit_channel_stats
from fedhar.drift import Experience, Scenario, build_experiences, load_scenario
from fedhar.models import ClassicalModel, build_model
from fedhar.reporting import RunFolder, matrices_png, timeline_png
from fedhar.training.labels import repeated_models
from fedhar.training.metrics import classification_metrics

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- inputs
def load_streams(cfg: ExperimentConfig):
    """The source recordings: the real HAPT streams, or generated ones when ``data.source: synthetic``."""
    if cfg.data.source == "synthetic":
        from fedhar.drift.synthetic import synthetic_streams

        opts = dict(cfg.data.options)
        return synthetic_streams(opts.get("subjects", (1, 2, 3, 4)), opts.get("recordings", 2), cfg.seed)
    from fedhar.data.loaders import read_hapt_streams

    return read_hapt_streams(resolve_source(cfg.data.source, cfg.data.root))


def scenario_of(cfg: ExperimentConfig) -> Scenario:
    """The drift scenario (its presence is a study check: :func:`fedhar.checks.continual_scenario`)."""
    return load_scenario(cfg.continual.scenario, where="continual.scenario")


def build_stream(cfg: ExperimentConfig) -> tuple[Scenario, list[Experience]]:
    scenario = scenario_of(cfg)
    experiences = build_experiences(load_streams(cfg), scenario)
    for e in experiences:
        log.info("phase %d %-14s device %-15s placement %-15s train %5d  test %5d windows", e.index, e.name,
                 e.info["device"], e.info["placement"], len(e.train), len(e.test))
    return scenario, experiences


def variant_configs(cfg: ExperimentConfig) -> list[tuple[str, ExperimentConfig, list[str] | None]]:
    """The configured model first, then each baseline variant (backbone overrides on a copy),
    with the strategy labels it runs (None: all); a baseline that builds the same model as one
    before it is left out (see :func:`fedhar.training.labels.repeated_models`)."""
    out = [(cfg.continual.model_label(cfg.model.backbone), cfg, None)]
    for v in cfg.continual.variants:
        variant = Variant(str(v["label"]), {"model.backbone": v.get("backbone", {})})
        out.append((variant.label, variant.apply(cfg), v.get("strategies")))
    repeated = repeated_models([(label, vcfg.model.backbone) for label, vcfg, _ in out])
    return [o for o in out if o[0] not in repeated]


def stream_info(experiences: list[Experience]) -> dict:
    """results.json's ``phases`` and ``phase_info``: what each phase of the stream holds."""
    return {"phases": [e.name for e in experiences],
            "phase_info": [{"name": e.name, "device": e.info["device"], "placement": e.info["placement"],
                            "sensors": e.info["sensors"], "classes": e.info["classes"],
                            "subjects": e.info["subjects"], "train": len(e.train), "test": len(e.test)}
                           for e in experiences]}


# ----------------------------------------------------------------------------- runs
def run_neural(vcfg: ExperimentConfig, spec: dict, experiences: list[Experience], detector_spec, max_post: int) -> dict:
    """One strategy on one model through the whole stream (normaliser fitted on phase 0 only:
    the model was calibrated when it was deployed, not on data it has not seen yet)."""
    first = experiences[0].train
    model = build_model(vcfg.model, first.channels, first.window_length, first.classes, vcfg.seed,
                        rate_hz=first.rate_hz, units=first.units)
    model.normalizer.set_stats(*fit_channel_stats(first))
    strategy = build_strategy(spec["name"], strategy_options(spec))

    def on_step(step: dict) -> None:
        i = step["experience"]
        log.info("    after %-14s accuracy on each phase %s (%.0f s)", experiences[i].name,
                 " ".join(f"{v:.2f}" for v in step["accuracy"]), step["seconds"])

    return run_stream(model, strategy, experiences, vcfg.train, vcfg.seed, on_step=on_step,
                      detector=build_detector(detector_spec), max_post_windows=max_post)


def run_classical(experiences: list[Experience], cumulative: bool, seed: int, trees: int = 300) -> dict:
    """Features + random forest, refitted per phase on that phase (naive) or on everything so far
    (cumulative: unbounded memory, the joint-training reference)."""
    t0 = time.perf_counter()
    T = len(experiences)
    matrix = AccuracyMatrix(T)
    labels = [sorted(int(c) for c in np.unique(e.test.y)) for e in experiences]
    k = len(experiences[0].train.classes)  # no FWT baseline: a forest has no untrained state
    for i in range(T):
        parts = experiences[: i + 1] if cumulative else [experiences[i]]
        X = np.concatenate([e.train.X for e in parts])
        y = np.concatenate([e.train.y for e in parts])
        model = ClassicalModel(trees, seed).fit(X, y)
        for j, e in enumerate(experiences):
            m = classification_metrics(e.test.y, model.predict(e.test.X), k, labels[j])
            matrix.record(i, j, m)
    summary = matrix.summary()
    memory = sum(e.train.X.nbytes for e in experiences) if cumulative else 0
    return {"strategy": "cumulative" if cumulative else "naive", "accuracy": summary["accuracy"],
            "macro_f1": summary["macro_f1"], "memory": {"buffer_windows": sum(len(e.train) for e in experiences) if cumulative else 0,
                                                        "buffer_bytes": memory, "adapter_bytes": 0, "extra_bytes": 0},
            "seconds": time.perf_counter() - t0, "train_seconds": time.perf_counter() - t0, "detection_summary": None}


def metrics_block(acc: dict, f1: dict) -> dict:
    """The ``continual.*`` keys of results.json: accuracy metrics, macro-F1 beside them."""
    return {"acc": acc["acc"], "bwt": acc["bwt"], "forgetting": acc["forgetting"], "fwt": acc["fwt"], "matrix": acc["matrix"],
            "macro_f1": {k: f1[k] for k in ("acc", "bwt", "forgetting", "fwt", "matrix")}}


def _memory_cell(mem: dict) -> str:
    """MB the strategy keeps on the device, and what it is (buffer windows, adapters, anchors)."""
    parts = []
    if mem.get("buffer_windows"):
        parts.append(f"{int(mem['buffer_windows'])} windows")
    if mem.get("adapter_bytes"):
        parts.append("adapters")
    if mem.get("extra_bytes"):
        parts.append("anchors/stats")
    mb = int(sum(mem.get(k, 0) or 0 for k in ("buffer_bytes", "adapter_bytes", "extra_bytes"))) / 1e6
    return f"{mb:.2f}" + (f" ({', '.join(parts)})" if parts else "")


# ----------------------------------------------------------------------------- outputs
def fmt(v, spec=".3f") -> str:
    """A score for reports: three decimals, ``n/a`` for a missing one."""
    return "n/a" if v is None else format(v, spec)


def report_markdown(results: dict) -> str:
    names = results["phases"]
    lines = [f"# {results['name']}: continual adaptation", "",
             "Phases: " + " -> ".join(f"**{p['name']}** ({p['device']}, {p['placement']}, {p['train']}/{p['test']} windows)"
                                     for p in results["phase_info"]), "",
             "ACC: mean accuracy over all phases after the last one. BWT: mean change on earlier phases since each was "
             "learned (negative = forgetting). Forgetting: mean drop from each earlier phase's best. FWT: accuracy on a "
             "phase before training on it, minus the untrained model's.", "",
             "| model | strategy | ACC | BWT | forgetting | FWT | F1 ACC | F1 BWT | memory kept (MB) | train s | detection delay |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        c = r["continual"]
        det = r.get("detection_summary") or {}
        delay = det.get("mean_delay")
        if det.get("mean_delay_rounds") is not None:  # federated clients detect per round
            delay_text = f"{det['mean_delay_rounds']:.2f} rounds"
        else:
            delay_text = fmt(delay, ".0f")
        detected = f"{delay_text} ({det.get('detected', 0)}/{det.get('boundaries', 0)} found)" if det else "n/a"
        lines.append(f"| {r['model']} | {r['strategy']} | {fmt(c['acc'])} | {fmt(c['bwt'])} | {fmt(c['forgetting'])} | "
                     f"{fmt(c['fwt'])} | {fmt(c['macro_f1']['acc'])} | {fmt(c['macro_f1']['bwt'])} | "
                     f"{_memory_cell(r['memory'])} | {r['train_seconds']:.0f} | {detected} |")
    best = max(results["runs"], key=lambda r: (r["continual"]["acc"] or -1))
    lines += ["", f"Highest final ACC (one seed, no test; run with `seeds:` for paired verdicts): "
              f"**{best['model']} / {best['strategy']}** ({fmt(best['continual']['acc'])}).", "",
              "Rows of R (accuracy after training on phase i, columns: " + ", ".join(names) + ") are in results.json "
              "(`runs[*].continual.matrix`) and `matrices.png`."]
    return "\n".join(lines) + "\n"


def write_outputs(folder: RunFolder) -> None:
    """metrics.csv, report.md and the plots from the folder's results (results.json is the folder's to save)."""
    results = folder.results
    rows = []
    for r in results["runs"]:
        for i, row in enumerate(r["continual"]["matrix"]):
            for j, v in enumerate(row):
                rows.append({"model": r["model"], "strategy": r["strategy"], "after_phase": results["phases"][i],
                             "on_phase": results["phases"][j], "accuracy": v,
                             "macro_f1": r["continual"]["macro_f1"]["matrix"][i][j]})
    folder.write_metrics(rows)
    folder.write_report(report_markdown(results))
    names = results["phases"]
    folder.plot("matrices.png", matrices_png, {f"{r['model']} / {r['strategy']}": r["continual"]["matrix"] for r in results["runs"]},
                names, f"{results['name']}: accuracy R[i][j]")
    series = {}
    for r in results["runs"]:
        R = r["continual"]["matrix"]
        series[f"{r['model']} / {r['strategy']}"] = [
            (i + 1, float(np.mean([v for v in R[i][: i + 1] if v is not None])) if any(v is not None for v in R[i][: i + 1]) else None)
            for i in range(len(R))]
    folder.plot("accuracy_over_time.png", timeline_png, series, [(i + 0.5, n) for i, n in enumerate(names)],
                "after training through phase (1 = first)", "mean accuracy on phases seen so far",
                f"{results['name']}: accuracy over time (dashed: phase changes)")


def run_continual(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Every (model, strategy) pair of ``cfg.continual`` on the scenario; a resume keeps finished pairs."""
    _, experiences = build_stream(cfg)
    results = folder.results
    results.update(kind="continual", config=config_to_dict(cfg), **stream_info(experiences))
    results.setdefault("runs", [])
    jobs = [(label, vcfg, spec) for label, vcfg, only in variant_configs(cfg) for spec in cfg.continual.strategies
            if only is None or strategy_label(spec) in only]
    if cfg.continual.classical:
        jobs += [("classical (features + RF)", None, {"name": "naive"}), ("classical (features + RF)", None, {"name": "cumulative"})]
    for n, (label, vcfg, spec) in enumerate(jobs, 1):
        key = (label, strategy_label(spec))
        if folder.done(*key):
            log.info("[%d/%d] %s / %s: done in a previous run, kept", n, len(jobs), *key)
            continue
        log.info("[%d/%d] %s / %s ...", n, len(jobs), *key)
        if vcfg is None:
            res = run_classical(experiences, spec["name"] == "cumulative", cfg.seed, cfg.model.backbone.trees)
        else:
            res = run_neural(vcfg, spec, experiences, cfg.continual.detector, cfg.continual.max_post_windows)
        run = {"model": label, "strategy": key[1], "continual": metrics_block(res["accuracy"], res["macro_f1"]), "memory": res["memory"],
               "seconds": res["seconds"], "train_seconds": res["train_seconds"],
               "detection_summary": res.get("detection_summary"),
               "detail": {k: res[k] for k in ("options", "detection", "decisions", "choices", "history") if k in res}}
        results["runs"].append(run)
        c = run["continual"]
        log.info("    ACC %s  BWT %s  forgetting %s  FWT %s  (%.0f s)", fmt(c["acc"]), fmt(c["bwt"]),
                 fmt(c["forgetting"]), fmt(c["fwt"]), res["seconds"])
        write_outputs(folder)
        folder.record(*key)  # saves results.json: an interruption loses nothing finished
    write_outputs(folder)
    return folder.complete()
