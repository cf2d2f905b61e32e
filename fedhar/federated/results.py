"""results.json, metrics.csv and plots of a federated run, rewritten after every round.

The ServerApp writes these (in its own process under the Deployment Engine), so whatever the run
should record, warnings included, is computed here rather than collected from logging.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fedhar.config import ExperimentConfig
from fedhar.federated.plots import bytes_png, rounds_png
from fedhar.federated.privacy import privacy_report, round_columns, round_values
from fedhar.federated.strategy import min_client_warnings
from fedhar.federated.tiers import time_to_reach
from fedhar.reporting import config_hash, confusion_matrix_png, write_json, write_metrics_csv
from fedhar.training.central import model_info
from fedhar.training.metrics import per_class_f1

log = logging.getLogger(__name__)

METRICS_EXPLAINED = {
    "accuracy": "accuracy of the global model on the central held-out test split (data.test_fraction), "
                "which no client trains on",
    "macro_f1": "macro-F1 of the global model on the central held-out test split",
    "fed_accuracy": "example-weighted mean of the clients' accuracy of the global model on their own local test "
                    "windows (federated.local_test_fraction of each client's data)",
    "fed_macro_f1": "example-weighted mean of the clients' macro-F1 of the global model on their own local test "
                    "windows (federated.local_test_fraction of each client's data)",
    "train_loss": "example-weighted mean of the clients' last local training loss in the round",
    "bytes_up": "bytes of the updates the clients sent to the server in the round",
    "bytes_down": "bytes the server sent to clients in the round (global state and config, training and evaluation)",
    "per_class_f1": "F1 per class of the final global model on the central held-out test split",
    "confusion_matrix": "the final global model's confusion matrix on the central held-out test split "
                        "(rows: true class, columns: predicted)",
}
ATTACK_EXPLAINED = {
    "attackers": "federated.attack: the partition ids drawn (from the run seed) to attack in the round; a drawn "
                 "client attacks whenever it is sampled",
}
PRIVACY_EXPLAINED = {
    "epsilon": "central DP with fixed clipping: cumulative epsilon (at `delta`) spent by the end of the round, from "
               "Flower's RDP accountant (no sampling amplification); unchanged by a skipped round",
    "delta": "the delta of the (epsilon, delta) guarantee",
    "clipping_norm": "central DP: the L2 norm client updates were clipped to in the round (it moves under adaptive "
                     "clipping)",
    "skipped_reason": "central DP: why the round left the global model unchanged (no epsilon spent)",
    "local_epsilon": "local DP: epsilon of each client's single release in the round (LocalDpMod); not composed over "
                     "rounds by any accountant",
}
DEVICE_EXPLAINED = {
    "simulated_seconds": "federated.tiers: simulated length of the round: until the slowest client replied or the "
                         "deadline passed; a client's time is its measured compute over its tier's speed plus its "
                         "upload bytes over its tier's uplink",
    "simulated_end_s": "federated.tiers: simulated seconds from the start of the run to the end of the round",
    "stragglers": "federated.tiers: clients whose reply came after `federated.round_deadline_s` (dropped, or kept as "
                  "stale updates for a later round)",
    "stale": "federated.tiers: earlier stragglers whose update joined this round, weighted 1 / (1 + rounds late)",
    "unavailable": "federated.tiers: sampled clients offline in the round (their tier's availability), not contacted",
}
"""What each metric key of a federated results.json measures (written into it as ``metrics_explained``)."""

TABLE_LEGEND = ("heldout acc/F1: global model on the central held-out test split; "
                "clients' F1: example-weighted mean macro-F1 of the clients on their local test windows")

ROUND_KEYS = ("round", "accuracy", "macro_f1", "fed_accuracy", "fed_macro_f1", "train_loss", "bytes_up",
              "bytes_down", "seconds", "clients", "failures", "distill_agreement", "distill_seconds")


def _recorded_warnings(path: Path) -> list[str]:
    """Warnings already in ``results.json`` (the run folder's, e.g. --supernodes), kept on rewrite."""
    try:
        return list(json.loads(path.read_text()).get("warnings") or [])
    except (OSError, ValueError, AttributeError):
        return []


def write_federated_results(run_dir: Path, cfg: ExperimentConfig, task, recorder, final: bool,
                            confusion: list | None = None, strategy=None) -> dict:
    """``strategy``: the running strategy, whose privacy state (epsilon spent, a budget stop) the
    ``privacy`` section reports; without it the section holds only what the config says."""
    rounds = recorder.history()
    info = model_info(task.model)
    full_bytes = 4 * info["total_params"]  # what full-model FL of the same backbone sends per message (fp32)
    total_up = sum(r.get("bytes_up", 0) for r in rounds)
    total_down = sum(r.get("bytes_down", 0) for r in rounds)
    messages = sum(r.get("messages_up", 0) + r.get("messages_down", 0) for r in rounds)
    last = rounds[-1] if rounds else recorder.rows.get(0, {})
    privacy = privacy_report(cfg.federated, strategy, rounds)
    budget_stop = bool(privacy.get("stopped_by_budget"))
    # A budget stop is the end of the run: nothing is left that a resume could run.
    complete = final and bool(rounds) and (rounds[-1]["round"] >= cfg.federated.rounds or budget_stop)
    run_dir = Path(run_dir)
    stop_note = ([f"privacy budget: the run stopped after round {rounds[-1]['round'] if rounds else 0} of "
                  f"{cfg.federated.rounds}; {privacy['stop_reason']}"] if budget_stop else [])
    warnings = list(dict.fromkeys(_recorded_warnings(run_dir / "results.json")
                                  + min_client_warnings(cfg.federated, task.num_clients) + stop_note))
    attack_keys = tuple(ATTACK_EXPLAINED) if cfg.federated.attack.kind != "none" else ()
    device_keys = tuple(DEVICE_EXPLAINED) if cfg.federated.tiers else ()
    keys = ROUND_KEYS + round_columns(cfg.federated) + attack_keys + device_keys
    explained = (METRICS_EXPLAINED | {k: PRIVACY_EXPLAINED[k] for k in round_columns(cfg.federated)}
                 | {k: ATTACK_EXPLAINED[k] for k in attack_keys} | {k: DEVICE_EXPLAINED[k] for k in device_keys})
    results = {
        "kind": "federated",
        "name": cfg.name,
        "seed": cfg.seed,
        "config_hash": config_hash(cfg),
        "status": "complete" if complete else "running",
        "complete": complete,
        "stopped_by_budget": budget_stop,
        "strategy": cfg.federated.strategy.name,
        "num_clients": task.num_clients,
        "warnings": warnings,
        "final": {"accuracy": last.get("accuracy"), "macro_f1": last.get("macro_f1"),
                  "fed_accuracy": last.get("fed_accuracy"), "fed_macro_f1": last.get("fed_macro_f1")},
        "initial": {k: recorder.rows.get(0, {}).get(k) for k in ("accuracy", "macro_f1")},
        "metrics_explained": explained,
        "model": info,
        "rounds": [_round(r, cfg, keys) | {"failure_reasons": r.get("failure_reasons", [])} for r in rounds],
        "privacy": privacy,
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
    if cfg.federated.tiers:
        results["devices"] = device_report(cfg, task, rounds)
    classes = list(task.splits[1].classes)
    if confusion is not None:
        results["confusion_matrix"] = {"classes": classes, "matrix": confusion}
        results["per_class_f1"] = per_class_f1(confusion, classes)
    write_json(run_dir / "results.json", results)
    write_metrics_csv(run_dir / "metrics.csv", [_csv_row(_round(r, cfg, keys)) for r in rounds])
    if rounds:
        with_initial = [recorder.rows[0], *rounds] if 0 in recorder.rows else rounds
        rounds_png(run_dir / "rounds.png", with_initial, cfg.name)
        bytes_png(run_dir / "bytes.png", rounds, full_bytes, cfg.name)
        _tensorboard(run_dir, cfg, with_initial)
    if final and confusion is not None:
        confusion_matrix_png(run_dir / "confusion_matrix.png", confusion, classes,
                             f"{cfg.name} (global model): macro-F1 {results['final']['macro_f1'] or 0:.3f}")
    return results


def device_report(cfg: ExperimentConfig, task, rounds: list[dict]) -> dict:
    """The ``devices`` section of a tiered run: each tier's clients, upload bytes and macro-F1 on
    its clients' local test windows, the simulated time, and the simulated seconds until the
    held-out macro-F1 first reached ``federated.target_macro_f1`` (null: never)."""
    fcfg, fleet = cfg.federated, task.fleet
    last_f1 = next((r["tier_fed_macro_f1"] for r in reversed(rounds) if r.get("tier_fed_macro_f1")), {})
    tiers = {t.name: {"rank": t.rank, "blocks": t.blocks, "speed": t.speed, "uplink_mbps": t.uplink_mbps,
                      "availability": t.availability,
                      "clients": [pid for pid, c in enumerate(fleet.clients) if c.name == t.name],
                      "bytes_up": sum((r.get("bytes_up_by_tier") or {}).get(t.name, 0) for r in rounds),
                      "fed_macro_f1": last_f1.get(t.name)} for t in fleet.tiers}
    timed = [r for r in rounds if r.get("simulated_end_s") is not None and r.get("macro_f1") is not None]
    return {
        "lora_aggregation": fleet.rule, "global_rank": fleet.global_rank, "round_deadline_s": fcfg.round_deadline_s,
        "stragglers": fcfg.stragglers, "tiers": tiers,
        "simulated_seconds": max((r.get("simulated_end_s") or 0.0 for r in rounds), default=0.0),
        "target_macro_f1": fcfg.target_macro_f1,
        "time_to_reach_s": time_to_reach([r["simulated_end_s"] for r in timed], [r["macro_f1"] for r in timed],
                                         fcfg.target_macro_f1),
        "reconstruction_error": {r["round"]: r["reconstruction_error"] for r in rounds if r.get("reconstruction_error")},
    }


def _round(row: dict, cfg: ExperimentConfig, keys: tuple[str, ...]) -> dict:
    """One round's row as results.json and metrics.csv carry it (privacy columns when private)."""
    return {k: row.get(k) for k in keys} | round_values(cfg.federated, row)


def _csv_row(row: dict) -> dict:
    """A round row for metrics.csv: a list (the round's attackers) as space-separated ids."""
    return {k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()}


def _tensorboard(run_dir: Path, cfg: ExperimentConfig, rows: list[dict]) -> None:
    """The round rows as TensorBoard scalars when the config's ``loggers`` ask for it."""
    if "tensorboard" in (getattr(cfg, "loggers", None) or []):
        from fedhar.reporting.tensorboard import write_scalars

        write_scalars(run_dir, [{k: r.get(k) for k in ROUND_KEYS} for r in rows], step="round")


def format_table(results: dict) -> str:
    """The per-round table printed at the end of a run, with a legend of its score columns."""
    clients_f1 = "clients' F1"
    eps = any(r.get("epsilon") is not None for r in results["rounds"])
    head = (f"{'round':>5} {'heldout acc':>11} {'heldout F1':>10} {clients_f1:>11} {'clients':>7} {'fail':>4} "
            f"{'MB up':>8} {'MB down':>8} {'sec':>6}" + (f" {'epsilon':>8}" if eps else ""))
    lines = [head, "-" * len(head)]
    for r in results["rounds"]:
        f = lambda v, w, p: f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
        lines.append(f"{r['round']:>5} {f(r['accuracy'], 11, 4)} {f(r['macro_f1'], 10, 4)} {f(r['fed_macro_f1'], 11, 4)} "
                     f"{r['clients'] or 0:>7} {r['failures'] or 0:>4} {f((r['bytes_up'] or 0) / 1e6, 8, 2)} "
                     f"{f((r['bytes_down'] or 0) / 1e6, 8, 2)} {f(r['seconds'], 6, 1)}"
                     + (f" {f(r.get('epsilon'), 8, 3)}" if eps else ""))
    lines.append(TABLE_LEGEND + ("; epsilon: cumulative privacy spent (RDP accountant)" if eps else ""))
    c = results["communication"]
    lines.append(f"total {c['total_bytes'] / 1e6:.2f} MB over {c['messages']} messages "
                 f"({100 * c['ratio_to_full_model']:.2f}% of full-model FL: {c['full_model_bytes_equivalent'] / 1e9:.2f} GB); "
                 f"update {c['update_bytes'] / 1e6:.3f} MB per client")
    for w in results.get("warnings") or []:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
