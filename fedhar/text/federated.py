"""Homes with different sensor layouts as Flower clients, each speaking the same event text.

The federation trains LoRA + head on every home's training days (FedAvg, or FedDF with server
distillation when ``federated.distill`` is on); then the final global model and each home's own
model (trained on that home alone for as many epochs as a client trains in all rounds) are scored
on the home's last days. Only LoRA and head cross the network.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import numpy as np

from fedhar.config import ExperimentConfig, config_to_dict
from fedhar.data.build import load_splits
from fedhar.reporting import prepare_run_dir, write_config, write_json, write_metrics_csv
from fedhar.training.central import build_for_data
from fedhar.training.loop import apply_label_mask, fit, label_mask_of, predict_logits

log = logging.getLogger(__name__)


def _score(model, test, cfg) -> dict:
    from fedhar.distill.compare import score

    logits = apply_label_mask(predict_logits(model, test.X, cfg.train.eval_batch_size, cfg.train.precision),
                              label_mask_of(test))
    return score(test, logits.argmax(1))


def run_smarthome_federated(cfg: ExperimentConfig, out: str | None = None, resume: bool = False) -> dict:
    from fedhar.federated.checkpoint import load_checkpoint
    from fedhar.federated.run import run_federated

    t_start = time.perf_counter()
    run_dir = prepare_run_dir(out, cfg.name)
    homes = list(cfg.smarthome.homes)
    cfg = replace(cfg, data=replace(cfg.data, options={**cfg.data.options, "homes": homes}))
    write_config(run_dir, config_to_dict(cfg))
    fed_dir = run_dir / "federated"
    fed_cfg = replace(cfg, federated=replace(cfg.federated, partition="subject", num_clients=None))
    done = fed_dir / "results.json"
    if resume and done.exists() and json.loads(done.read_text()).get("complete"):
        fed = json.loads(done.read_text())
        log.info("federated run kept from the previous run")
    else:
        fed = run_federated(fed_cfg, str(fed_dir), resume=str(fed_dir) if resume and (fed_dir / "config.yaml").exists() else None)
    train, test = load_splits(cfg.data, cfg.seed)
    global_model = build_for_data(fed_cfg, train)
    global_model.load_trainable_state(load_checkpoint(fed_dir).global_state, where=str(fed_dir))
    own_dir = run_dir / "own"
    own_dir.mkdir(exist_ok=True)
    epochs = cfg.federated.rounds * cfg.federated.local_epochs
    rows = []
    for idx, home in enumerate(homes):
        tr, te = train.subset(train.subject == idx), test.subset(test.subject == idx)
        path = own_dir / f"{home}.json"
        if resume and path.exists():
            own = json.loads(path.read_text())
        else:
            t0 = time.perf_counter()
            model = build_for_data(cfg, tr)
            fit(model, tr, replace(cfg.train, epochs=epochs), seed=cfg.seed, desc=f"{home} own model")
            own = {**_score(model, te, cfg), "train_seconds": time.perf_counter() - t0}
            write_json(path, own)
            del model
        fedm = _score(global_model, te, cfg)
        rows.append({"home": home, "train_windows": len(tr), "test_windows": len(te),
                     "sensors": int(len({s for s in np.asarray(tr.extras["event_counts"]).nonzero()[1]})),
                     "own_macro_f1": own["macro_f1"], "own_accuracy": own["accuracy"],
                     "federated_macro_f1": fedm["macro_f1"], "federated_accuracy": fedm["accuracy"]})
    results = {"kind": "smarthome_federated", "name": cfg.name, "seed": cfg.seed, "homes": rows,
               "federated": {k: fed.get(k) for k in ("final", "communication", "model", "num_clients")},
               "seconds": time.perf_counter() - t_start}
    write_json(run_dir / "results.json", results)
    write_metrics_csv(run_dir / "metrics.csv", rows)
    from fedhar.reporting.plots import grouped_bars_png

    grouped_bars_png(run_dir / "macro_f1.png", {r["home"]: {"own model": r["own_macro_f1"], "federated": r["federated_macro_f1"]}
                                                 for r in rows}, "macro-F1", f"{cfg.name}: per home")
    lines = [f"# {cfg.name}", "",
             f"{len(homes)} homes as {len(homes)} Flower clients ({cfg.federated.strategy.name}"
             f"{', FedDF ' + cfg.federated.distill.source if cfg.federated.distill.enabled else ''}, {cfg.federated.rounds} rounds x "
             f"{cfg.federated.local_epochs} local epochs), against each home's own model trained {epochs} epochs on its own days. "
             "Macro-F1 / accuracy on each home's last days.", "",
             "| home | train / test windows | own model | federated |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['home']} | {r['train_windows']} / {r['test_windows']} | {r['own_macro_f1']:.3f} / {r['own_accuracy']:.3f} | "
                     f"{r['federated_macro_f1']:.3f} / {r['federated_accuracy']:.3f} |")
    mean_own = float(np.mean([r["own_macro_f1"] for r in rows]))
    mean_fed = float(np.mean([r["federated_macro_f1"] for r in rows]))
    comm = fed.get("communication", {}) or {}
    lines += ["", f"Mean macro-F1: own {mean_own:.3f}, federated {mean_fed:.3f}. "
              f"Sent over the network: {comm.get('total_bytes', 0) / 1e6:.1f} MB in all. Total time {results['seconds'] / 60:.1f} min."]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    results["run_dir"] = str(run_dir)
    return results
