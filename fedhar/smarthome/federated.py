"""Homes with different sensor layouts as Flower clients, each speaking the same event text.

The federation trains LoRA + head on every home's training days (FedAvg, or FedDF with server
distillation when ``federated.distill`` is on); then the final global model and each home's own
model (trained on that home alone for as many epochs as a client trains in all rounds) are scored
on the home's last days. Only LoRA and head cross the network. A resume keeps a finished
federation (or continues it) and the own models already trained.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np

from fedhar.config import ExperimentConfig, derive
from fedhar.data.sources import load_splits
from fedhar.distill.compare import score_model
from fedhar.reporting import RunFolder, grouped_bars_png
from fedhar.training.central import build_for_data
from fedhar.training.loop import fit

log = logging.getLogger(__name__)


def run_smarthome_federated(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """The homes as Flower clients (``smarthome.mode: federated``), then the global model and each
    home's own model scored per home."""
    from fedhar.federated.checkpoint import load_checkpoint
    from fedhar.federated.run import run_federated

    homes = list(cfg.smarthome.homes)
    cfg = derive(cfg, {"data.options.homes": homes}, source="smarthome.homes")
    fed_dir = folder.file("federated")
    saved = fed_dir / "results.json"  # there only on --resume: RunFolder refused or wiped an existing run
    fed = json.loads(saved.read_text()) if saved.exists() else {}
    if not fed.get("complete"):
        fed = run_federated(cfg, resume=str(fed_dir)) if (fed_dir / "config.yaml").exists() else run_federated(cfg, out=str(fed_dir))
    train, test = load_splits(cfg.data, cfg.seed)
    global_model = build_for_data(cfg, train)
    global_model.load_trainable_state(load_checkpoint(fed_dir).global_state, where=str(fed_dir))
    epochs = cfg.federated.rounds * cfg.federated.local_epochs
    own_cfg = derive(cfg, {"train.epochs": epochs}, source="own model")
    rows = []
    for idx, home in enumerate(homes):
        tr, te = train.subset(train.subject == idx), test.subset(test.subject == idx)
        if not folder.done("own", home):
            t0 = time.perf_counter()
            model = build_for_data(cfg, tr)
            fit(model, tr, own_cfg.train, seed=cfg.seed, desc=f"{home} own model")
            folder.record("own", home, value={**score_model(model, te, cfg.train), "train_seconds": time.perf_counter() - t0})
            del model
        own = folder.cell("own", home)
        fedm = score_model(global_model, te, cfg.train)
        rows.append({"home": home, "train_windows": len(tr), "test_windows": len(te),
                     "sensors": int(len({s for s in np.asarray(tr.extras["event_counts"]).nonzero()[1]})),
                     "own_macro_f1": own["macro_f1"], "own_accuracy": own["accuracy"],
                     "federated_macro_f1": fedm["macro_f1"], "federated_accuracy": fedm["accuracy"]})
    folder.results.update(kind="smarthome_federated", homes=rows,
                          federated={k: fed.get(k) for k in ("final", "communication", "model", "num_clients")})
    folder.write_metrics(rows)
    folder.plot("macro_f1.png", grouped_bars_png, {r["home"]: {"own model": r["own_macro_f1"], "federated": r["federated_macro_f1"]}
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
              f"Sent over the network: {comm.get('total_bytes', 0) / 1e6:.1f} MB in all. Total time {folder.seconds / 60:.1f} min."]
    folder.write_report("\n".join(lines) + "\n")
    return folder.complete()
