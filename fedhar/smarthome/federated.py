"""Homes with different sensor layouts as Flower clients, each speaking the same event text.

Per seed, every home's last days are its test days and every model is scored on them:

* **classical**: a random forest on the home's sensor counts + hour;
* **own model**: LoRA + head trained on that home alone (as many epochs as a client trains in all
  rounds, unless ``smarthome.own_epochs``);
* **federated**: FedAvg's final global model;
* **federated + personalised**: that global model, then ``smarthome.personal_parts`` fine-tuned on
  the home's own training days (``smarthome.personalize``);
* **FedPer**: a second federation in which each home's head never leaves the home;
* **FedPer + personalised**: FedPer's global LoRA with the home's own head, fine-tuned the same way
  (when ``smarthome.personalize_from`` names ``fedper``);
* **FedDF**: a third, with server distillation on the unlabelled windows of homes outside the
  federation (``smarthome.public_homes``).

Only LoRA and head cross the network. Each federation lives in a folder of its own and every
score is a cell of the run folder, so a resume keeps finished federations and cells.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from fedhar.config import ExperimentConfig, derive
from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders.smarthome import COUNTS_KEY
from fedhar.data.sources import load_splits
from fedhar.distill.compare import score, score_model
from fedhar.reporting import RunFolder, grouped_bars_png
from fedhar.schema import to_mapping
from fedhar.smarthome.study import home_table
from fedhar.training.central import build_for_data
from fedhar.training.loop import fit

log = logging.getLogger(__name__)

MODELS = ("classical", "own model", "federated", "federated + personalised", "FedPer", "FedPer + personalised", "FedDF")
"""Every row a home can have, in report order."""
FOLDERS = {"federated": "federated", "fedper": "fedper", "feddf": "feddf"}
"""Each federation's folder in the run."""
PERSONALISED = {"federated": "federated + personalised", "fedper": "FedPer + personalised"}
"""The row of each federation's model once a home has fine-tuned it (``smarthome.personalize_from``)."""


def federation_config(cfg: ExperimentConfig, kind: str) -> ExperimentConfig:
    """``cfg`` (homes already set) as the federation ``kind`` trains it: FedAvg, FedPer (heads stay
    home) or FedDF (server distillation on the public homes' training days, labels unused)."""
    if kind == "fedper":
        return derive(cfg, {"federated.personal_parts": ["head"]}, source="smarthome fedper")
    if kind == "feddf":
        public = {**to_mapping(cfg.data), "options": {**cfg.data.options, "homes": list(cfg.smarthome.public_homes)}}
        return derive(cfg, {"federated.distill.enabled": True, "federated.distill.public": public}, source="smarthome feddf")
    return cfg


def home_splits(train: WindowDataset, test: WindowDataset, homes: list[str]) -> list[tuple[WindowDataset, WindowDataset]]:
    """Each home's (training days, test days): client ``i`` of the federation is home ``i``."""
    return [(train.subset(train.subject == i), test.subset(test.subject == i)) for i in range(len(homes))]


def run_smarthome_federated(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Every model of :data:`MODELS` the config asks for, on every home (``smarthome.mode: federated``)."""
    from fedhar.federated.personal import load_personal, save_personal
    from fedhar.federated.task import derive_seed
    from fedhar.transfer.adapt import adapt, changed_state, row_fields
    from fedhar.transfer.lodo import train_federated
    from fedhar.transfer.personalize import personal_path

    sh = cfg.smarthome
    homes = list(sh.homes)
    cfg = derive(cfg, {"data.options.homes": homes}, source="smarthome.homes")
    train, test = load_splits(cfg.data, cfg.seed)
    splits = home_splits(train, test, homes)
    if "feddf" in sh.federations:  # a missing public home stops the study before any training, not after two federations
        load_splits(federation_config(cfg, "feddf").federated.distill.public, cfg.seed)
    from sklearn.ensemble import RandomForestClassifier

    for idx, (home, (tr, te)) in enumerate(zip(homes, splits)):
        if not folder.done("classical", home):
            t0 = time.perf_counter()
            rf = RandomForestClassifier(sh.classical_trees, random_state=cfg.seed, n_jobs=1, class_weight="balanced")
            rf.fit(tr.extras[COUNTS_KEY], tr.y)
            folder.record("classical", home, value={**score(te, rf.predict(te.extras[COUNTS_KEY])),
                                                    "train_seconds": time.perf_counter() - t0})
        if not folder.done("own model", home):
            t0 = time.perf_counter()
            epochs = sh.own_epochs or cfg.federated.rounds * cfg.federated.local_epochs
            model = build_for_data(cfg, tr)
            fit(model, tr, derive(cfg, {"train.epochs": epochs}, source="own model").train, seed=derive_seed(cfg.seed, idx, "own"),
                desc=f"{home} own model")
            folder.record("own model", home, value={**score_model(model, te, cfg.train), "train_seconds": time.perf_counter() - t0,
                                                    "epochs": epochs})
            del model
    model = build_for_data(cfg, train)
    federations: dict[str, dict] = folder.results.setdefault("federations", {})
    for kind in sh.federations:
        fed_dir = folder.file(FOLDERS[kind])
        fcfg = federation_config(cfg, kind)
        state = train_federated(fcfg, fed_dir)
        federations[kind] = _federation_summary(fed_dir)
        for idx, (home, (tr, te)) in enumerate(zip(homes, splits)):
            start = state  # the model this home gets from the federation
            if kind == "fedper":
                mine = load_personal(personal_path(fed_dir, idx, "personal"))
                start = {**state, **(mine or {})}
                if not folder.done("FedPer", home):
                    model.load_trainable_state(start, where=f"{fed_dir} client {idx}")
                    folder.record("FedPer", home, value={**score_model(model, te, cfg.train), "personal_state": mine is not None})
            elif kind == "feddf" and not folder.done("FedDF", home):
                model.load_trainable_state(state, where=str(fed_dir))
                folder.record("FedDF", home, value=score_model(model, te, cfg.train))
            elif kind == "federated" and not folder.done("federated", home):
                model.load_trainable_state(state, where=str(fed_dir))
                folder.record("federated", home, value=score_model(model, te, cfg.train))
            row = PERSONALISED.get(kind)
            if kind in sh.personalized and not folder.done(row, home):
                info = adapt(model, start, tr, sh.personal_parts, cfg.train, sh.personalize,
                             seed=derive_seed(cfg.seed, idx, "personal"), desc=f"{home} personalise {kind}")
                save_personal(personal_path(fed_dir, idx, "personalised"), changed_state(model, sh.personal_parts))
                folder.record(row, home, value={**score_model(model, te, cfg.train), **row_fields(info)})
    rows = _rows(folder, homes, splits)
    folder.results.update(kind="smarthome_federated", homes=rows)
    folder.write_metrics([{"home": r["home"], "model": m, **v} for r in rows for m, v in r["models"].items()])
    folder.plot("macro_f1.png", grouped_bars_png, {r["home"]: {m: v["macro_f1"] for m, v in r["models"].items()} for r in rows},
                "macro-F1", f"{cfg.name}: per home")
    folder.write_report(_report(cfg, rows, federations, folder.seconds))
    return folder.complete()


def _federation_summary(fed_dir: Path) -> dict:
    import json

    r = json.loads((fed_dir / "results.json").read_text())
    return {k: r.get(k) for k in ("final", "communication", "num_clients", "seconds")}


def _rows(folder: RunFolder, homes: list[str], splits) -> list[dict]:
    rows = []
    for home, (tr, te) in zip(homes, splits):
        models = {m: folder.cell(m, home) for m in MODELS if folder.done(m, home)}
        rows.append({"home": home, "train_windows": len(tr), "test_windows": len(te),
                     "train_days": int(len(np.unique(tr.extras["day"]))), "test_days": int(len(np.unique(te.extras["day"]))),
                     "classes": [te.classes[c] for c in np.unique(te.y)], "models": models})
    return rows


def _report(cfg: ExperimentConfig, rows: list[dict], federations: Mapping[str, dict], seconds: float) -> str:
    sh, f = cfg.smarthome, cfg.federated
    shown = [m for m in MODELS if any(m in r["models"] for r in rows)]
    lines = [f"# {cfg.name}", "",
             f"{len(rows)} homes as {len(rows)} Flower clients, {f.rounds} rounds x {f.local_epochs} local epoch(s), client lr "
             f"{cfg.train.lr:g} ({f.round_lr} over rounds). Personalisation fine-tunes {' + '.join(sh.personal_parts)} of "
             f"the {' and '.join(sh.personalized) or 'no'} model(s) on the home's training days; FedDF's public set is the "
             f"unlabelled training days of {', '.join(sh.public_homes)}. Macro-F1 / accuracy on each home's last days.", "", home_table(rows, shown)]
    means = {m: float(np.mean([r["models"][m]["macro_f1"] for r in rows])) for m in shown if all(m in r["models"] for r in rows)}
    lines += ["", "Mean macro-F1: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()) + "."]
    for row in PERSONALISED.values():
        if {row, "own model"} <= set(means):
            wins = sum(r["models"][row]["macro_f1"] >= r["models"]["own model"]["macro_f1"] for r in rows)
            lines.append(f"{row[0].upper() + row[1:]} >= own model on {wins} of {len(rows)} homes.")
    sent = {k: (v.get("communication") or {}).get("total_bytes", 0) / 1e6 for k, v in federations.items()}
    lines += ["", "Sent over the network: " + ", ".join(f"{k} {mb:.1f} MB" for k, mb in sent.items())
              + f". Total time {seconds / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def seed_summary(rows_by_seed: Mapping[int, list[dict]], cfg: ExperimentConfig) -> str:
    """Per home, each federated row against the home's own model, paired over seeds: mean difference
    in macro-F1 and the paired test's p; then on how many homes the mean difference is >= 0, and
    the mean over homes. Empty for the central study (no own model)."""
    from fedhar.reporting.stats import TESTS, paired_test

    f1: dict[tuple[str, str], dict[int, float]] = {}
    for seed, rows in rows_by_seed.items():
        for r in rows:
            if "macro_f1" in r:
                f1.setdefault((r["home"], r["model"]), {})[seed] = r["macro_f1"]
    homes = list(dict.fromkeys(h for h, _ in f1))
    rivals = [m for m in MODELS if m != "own model" and any((h, m) in f1 for h in homes)]
    if not rivals or not all((h, "own model") in f1 for h in homes):
        return ""
    test = cfg.stats.test
    lines = ["## Against each home's own model, paired over seeds", "",
             f"Mean macro-F1 difference (row minus own model) and {TESTS[test]} p over the seeds both ran.", "",
             "| home | " + " | ".join(rivals) + " |", "|---|" + "---|" * len(rivals)]
    wins = {m: 0 for m in rivals}
    for h in homes:
        own = f1[(h, "own model")]
        cells = []
        for m in rivals:
            other = f1.get((h, m), {})
            seeds = sorted(set(own) & set(other))
            if not seeds:
                cells.append("")
                continue
            t = paired_test([other[s] for s in seeds], [own[s] for s in seeds], test)
            wins[m] += t["mean_diff"] >= 0
            cells.append(f"{t['mean_diff']:+.3f}" + (f" (p={t['p']:.2g})" if t["p"] is not None else ""))
        lines.append(f"| {h} | " + " | ".join(cells) + " |")

    def mean_over_homes(m: str) -> float:
        return float(np.mean([np.mean(list(f1[(h, m)].values())) for h in homes if (h, m) in f1]))

    lines += ["", "| | " + " | ".join(rivals) + " |", "|---|" + "---|" * len(rivals),
              "| homes where row >= own model | " + " | ".join(f"{wins[m]} of {len(homes)}" for m in rivals) + " |",
              "| mean macro-F1 over homes | " + " | ".join(f"{mean_over_homes(m):.3f}" for m in rivals)
              + " |", "", f"Own model, mean over homes: {mean_over_homes('own model'):.3f}."]
    return "\n".join(lines) + "\n"
