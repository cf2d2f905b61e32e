"""results.json, metrics.csv and plots of a federated run, rewritten after every round."""

from __future__ import annotations

from pathlib import Path

from fedhar.config import ExperimentConfig
from fedhar.reporting import config_hash, confusion_matrix_png, curves_png, write_json, write_metrics_csv
from fedhar.training.central import model_info

ROUND_KEYS = ("round", "accuracy", "macro_f1", "fed_accuracy", "fed_macro_f1", "train_loss", "bytes_up",
              "bytes_down", "seconds", "clients", "failures", "distill_agreement", "distill_seconds")


def write_federated_results(run_dir: Path, cfg: ExperimentConfig, task, recorder, final: bool,
                            confusion: list | None = None) -> dict:
    rounds = recorder.history()
    info = model_info(task.model)
    full_bytes = 4 * info["total_params"]  # what full-model FL of the same backbone sends per message (fp32)
    total_up = sum(r.get("bytes_up", 0) for r in rounds)
    total_down = sum(r.get("bytes_down", 0) for r in rounds)
    messages = sum(r.get("messages_up", 0) + r.get("messages_down", 0) for r in rounds)
    last = rounds[-1] if rounds else recorder.rows.get(0, {})
    complete = final and bool(rounds) and rounds[-1]["round"] >= cfg.federated.rounds
    results = {
        "kind": "federated",
        "name": cfg.name,
        "seed": cfg.seed,
        "config_hash": config_hash(cfg),
        "status": "complete" if complete else "running",
        "complete": complete,
        "strategy": cfg.federated.strategy.name,
        "num_clients": task.num_clients,
        "final": {"accuracy": last.get("accuracy"), "macro_f1": last.get("macro_f1"),
                  "fed_accuracy": last.get("fed_accuracy"), "fed_macro_f1": last.get("fed_macro_f1")},
        "initial": {k: recorder.rows.get(0, {}).get(k) for k in ("accuracy", "macro_f1")},
        "model": info,
        "rounds": [{k: r.get(k) for k in ROUND_KEYS} | {"failure_reasons": r.get("failure_reasons", [])} for r in rounds],
        "communication": {
            "total_bytes": total_up + total_down,
            "bytes_up": total_up,
            "bytes_down": total_down,
            "messages": messages,
            "update_bytes": info["update_bytes"],
            "full_model_bytes_equivalent": messages * full_bytes,
            "ratio_to_full_model": (total_up + total_down) / max(1, messages * full_bytes),
        },
        "failures_total": sum(r.get("failures", 0) for r in rounds),
        "seconds": sum(r.get("seconds", 0.0) for r in rounds),
    }
    run_dir = Path(run_dir)
    write_json(run_dir / "results.json", results)
    write_metrics_csv(run_dir / "metrics.csv", [{k: r.get(k) for k in ROUND_KEYS} for r in rounds])
    if rounds:
        curves_png(run_dir / "rounds.png", rounds, "round",
                   {"score": ["accuracy", "macro_f1", "fed_macro_f1"], "train loss": ["train_loss"]}, cfg.name)
        mb = [{"round": r["round"], "MB_up": r.get("bytes_up", 0) / 1e6, "MB_down": r.get("bytes_down", 0) / 1e6} for r in rounds]
        curves_png(run_dir / "bytes_per_round.png", mb, "round", {"MB per round": ["MB_up", "MB_down"]}, cfg.name)
    if final and confusion is not None:
        confusion_matrix_png(run_dir / "confusion_matrix.png", confusion, task.splits[1].classes,
                             f"{cfg.name} (global model): macro-F1 {results['final']['macro_f1'] or 0:.3f}")
    return results


def format_table(results: dict) -> str:
    """The per-round table printed at the end of a run."""
    head = f"{'round':>5} {'acc':>7} {'macroF1':>8} {'fedF1':>7} {'clients':>7} {'fail':>4} {'MB up':>8} {'MB down':>8} {'sec':>6}"
    lines = [head, "-" * len(head)]
    for r in results["rounds"]:
        f = lambda v, w, p: f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
        lines.append(f"{r['round']:>5} {f(r['accuracy'], 7, 4)} {f(r['macro_f1'], 8, 4)} {f(r['fed_macro_f1'], 7, 4)} "
                     f"{r['clients'] or 0:>7} {r['failures'] or 0:>4} {f((r['bytes_up'] or 0) / 1e6, 8, 2)} "
                     f"{f((r['bytes_down'] or 0) / 1e6, 8, 2)} {f(r['seconds'], 6, 1)}")
    c = results["communication"]
    lines.append(f"total {c['total_bytes'] / 1e6:.2f} MB over {c['messages']} messages "
                 f"({100 * c['ratio_to_full_model']:.2f}% of full-model FL: {c['full_model_bytes_equivalent'] / 1e9:.2f} GB); "
                 f"update {c['update_bytes'] / 1e6:.3f} MB per client")
    return "\n".join(lines)
