"""Federated continual adaptation: each Flower client walks the scenario's phases on its own
schedule, keeps its strategy's state on its own disk between rounds, and shares only the
trainable state, which the server aggregates as in any fedhar federation.

**Clients and timelines.** The subjects of each phase are dealt round-robin to
``continual.federated.clients`` clients, so every client has data in every phase (its users
change as the phases do). Client ``c`` is in phase ``k`` from round
``1 + k * rounds_per_phase + c * stagger_rounds``: the drift reaches the clients one at a time.

**A client's round** is the ordinary client's (:meth:`FederatedTask.train_client`: faults,
personal parts, FedProx's proximal term) around :meth:`ContinualFederatedTask.local_round`: feed
a few incoming windows to its drift detector (detections are logged with the true switch
round); ``begin_experience`` (replay mixes in its buffer, EWC adds its penalty) and ``fit``;
in the last round of a phase, ``finish_experience`` (fill the buffer, estimate the Fisher),
recalibrate the detector on the phase just learned, and evaluate the local model on its test
windows of **every** phase: one row ``R[k][:]`` of the client's accuracy matrix. The row, the
buffer, the EWC anchors, the detector and the seen classes are saved atomically under
``continual.federated.state_dir``, so they survive rounds, worker restarts and a resumed server.

The federated layer finds this task by ``federated.task: continual`` (an entry point in
pyproject.toml). **Not supported** (refused by :mod:`fedhar.checks`): the adapter library. Its
per-domain adapters would replace the global model a client receives each round; aggregating one
adapter per domain across clients is a different federation that fedhar does not implement yet.
"""

from __future__ import annotations

import json
import logging
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from fedhar.config import ExperimentConfig, config_to_dict, derive
from fedhar.continual.config import strategy_label, strategy_options
from fedhar.continual.experiment import build_stream, fmt, metrics_block, scenario_of, stream_info, write_outputs
from fedhar.continual.metrics import continual_metrics
from fedhar.continual.protocol import evaluate_experience
from fedhar.continual.state import load_client_state, save_client_state
from fedhar.continual.strategies import build_strategy
from fedhar.data.dataset import WindowDataset, concat
from fedhar.drift import Experience
from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.task import FederatedTask, derive_seed, get_task
from fedhar.reporting import RunFolder

log = logging.getLogger(__name__)


def _clean(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


class ContinualFederatedTask(FederatedTask):
    """:class:`~fedhar.federated.task.FederatedTask` whose clients follow drift timelines."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)  # fedhar.checks refused what this task cannot run (one strategy, state_dir, ...)
        self.spec = cfg.continual.strategies[0]
        self.fcfg = cfg.continual.federated
        self._experiences: dict[tuple[int, int], Experience] = {}

    # ------------------------------------------------------------------ data
    @cached_property
    def stream(self) -> list[Experience]:
        return build_stream(self.cfg)[1]

    @property
    def phases(self) -> int:
        return len(self.stream)

    @property
    def total_rounds(self) -> int:
        return self.fcfg.total_rounds(self.phases)

    @property
    def num_clients(self) -> int:
        return self.fcfg.clients

    @cached_property
    def assignment(self) -> list[list[list[int]]]:
        """``[client][phase]`` -> that client's subjects in that phase."""
        out = [[[] for _ in self.stream] for _ in range(self.num_clients)]
        for k, e in enumerate(self.stream):
            subjects = sorted(int(s) for s in np.unique(e.train.subject))
            if len(subjects) < self.num_clients:
                raise ConfigError(f"phase `{e.name}` has {len(subjects)} subjects with training windows, fewer than the "
                                  f"{self.num_clients} clients of `continual.federated.clients`.")
            for i, s in enumerate(subjects):
                out[i % self.num_clients][k].append(s)
        return out

    def experience(self, pid: int, k: int) -> Experience:
        """Client ``pid``'s windows of phase ``k`` (its subjects only)."""
        if (pid, k) not in self._experiences:
            e, subs = self.stream[k], self.assignment[pid][k]
            tr = e.train.subset(np.flatnonzero(np.isin(e.train.subject, subs)))
            te = e.test.subset(np.flatnonzero(np.isin(e.test.subject, subs)))
            self._experiences[(pid, k)] = Experience(k, e.name, tr, te, {**e.info, "subjects": subs, "client": pid})
        return self._experiences[(pid, k)]

    @cached_property
    def splits(self) -> tuple[WindowDataset, WindowDataset]:
        """(all phases' training windows, all phases' test windows): the server evaluates the
        global model on every phase, i.e. on the whole population at the end of the timeline."""
        return (concat([e.train for e in self.stream], "stream/train"), concat([e.test for e in self.stream], "stream/test"))

    def client_data(self, pid: int) -> tuple[WindowDataset, WindowDataset]:
        """(phase-0 training windows: what the pooled normaliser is fitted on at deployment,
        the client's test windows of every phase: what federated evaluation scores)."""
        if not 0 <= pid < self.num_clients:
            raise FederationError(f"partition-id {pid} is out of range: this configuration has {self.num_clients} clients.")
        return self.experience(pid, 0).train, concat([self.experience(pid, k).test for k in range(self.phases)])

    # ------------------------------------------------------------------ client state
    def state_path(self, pid: int) -> Path:
        return Path(self.fcfg.state_dir) / f"client_{pid}.npz"

    def load_client(self, pid: int) -> tuple[object, dict]:
        strategy = build_strategy(self.spec["name"], strategy_options(self.spec))
        extra = load_client_state(self.state_path(pid), strategy)
        return strategy, (extra or {"phase": None, "rows": {}, "f1_rows": {}, "baseline": None, "f1_baseline": None,
                                    "detections": [], "calibrated": False, "rounds": []})

    def _row(self, model, strategy, pid: int) -> tuple[list, list]:
        ms = [evaluate_experience(model, strategy, self.experience(pid, j).test, self.cfg.train) for j in range(self.phases)]
        return [_clean(m["accuracy"]) for m in ms], [_clean(m["macro_f1"]) for m in ms]

    # ------------------------------------------------------------------ client work
    def local_round(self, model, pid: int, server_round: int, proximal_mu: float) -> tuple[dict, int]:
        """The continual step of a client's round (module doc); faults, personal parts and the
        proximal term come from :meth:`FederatedTask.train_client` and :meth:`fit_local`."""
        P, cfg, tcfg = self.phases, self.round_cfg(server_round), self.cfg.train
        k = self.fcfg.phase_of(pid, server_round, P)
        exp = self.experience(pid, k)
        seed = derive_seed(self.cfg.seed, pid, server_round)
        t0 = time.perf_counter()
        strategy, extra = self.load_client(pid)
        if extra["baseline"] is None:  # the model as deployed, before any local training: FWT's baseline
            extra["baseline"], extra["f1_baseline"] = self._row(model, strategy, pid)
        fired = False
        if strategy.detector is not None and extra["calibrated"] and len(exp.train):
            n = min(self.fcfg.observe_windows, len(exp.train))
            start = (server_round * n) % max(1, len(exp.train) - n + 1)  # a new slice each round
            fired = bool(strategy.observe(model, exp.train.X[start : start + n], tcfg))
            if fired:
                switch = 1 + k * self.fcfg.rounds_per_phase + pid * self.fcfg.stagger_rounds
                extra["detections"].append({"round": server_round, "phase": k, "switch_round": switch if k else None,
                                            "delay_rounds": server_round - switch if k else None})
                extra["calibrated"] = False
        train, penalties = strategy.begin_experience(model, exp, cfg, seed)
        history = self.fit_local(model, train, pid, server_round, proximal_mu, penalties) if len(train) else []
        if server_round == self.fcfg.last_round_of_phase(pid, k, P, self.total_rounds):
            strategy.finish_experience(model, exp, cfg, seed, len(train))
            extra["rows"][str(k)], extra["f1_rows"][str(k)] = self._row(model, strategy, pid)
            if strategy.detector is not None and len(exp.test):
                strategy.calibrate_detector(model, exp.test.X, tcfg)
                extra["calibrated"] = True
        extra["phase"] = k
        extra["rounds"].append({"round": server_round, "phase": k, "fit_windows": len(train), "detected": fired,
                                "seconds": time.perf_counter() - t0})
        extra["memory"] = strategy.memory()
        save_client_state(self.state_path(pid), strategy, extra)
        return {"train_loss": history[-1]["train_loss"] if history else float("nan"), "phase": k}, len(train)


# ---------------------------------------------------------------------------- the study
def client_results(task: ContinualFederatedTask) -> dict:
    """Per-client accuracy matrices and metrics from the clients' saved state, and the overall
    metrics of their mean matrix."""
    P = task.phases
    clients, mats, f1s, bases, f1_bases = {}, [], [], [], []
    for pid in range(task.num_clients):
        strategy, extra = task.load_client(pid)
        if len(extra["rows"]) != P:
            raise ConfigError(f"client {pid} finished {len(extra['rows'])} of {P} phases; did the federation stop early?")
        R, F = (np.array([extra[key][str(i)] for i in range(P)], dtype=float) for key in ("rows", "f1_rows"))  # None -> nan
        b, fb = np.array(extra["baseline"], dtype=float), np.array(extra["f1_baseline"], dtype=float)
        mats.append(R), f1s.append(F), bases.append(b), f1_bases.append(fb)
        acc, f1 = continual_metrics(R, b), continual_metrics(F, fb)
        clients[str(pid)] = {"subjects": task.assignment[pid], "continual": metrics_block(acc, f1), "memory": extra.get("memory", {}),
                             "detections": extra["detections"], "seen_classes": sorted(strategy.seen_classes)}
    acc = continual_metrics(np.nanmean(mats, axis=0), np.nanmean(bases, axis=0))
    f1 = continual_metrics(np.nanmean(f1s, axis=0), np.nanmean(f1_bases, axis=0))
    return {"overall": metrics_block(acc, f1), "clients": clients}


def run_continual_federated(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """One Flower federation per strategy over the scenario (``<run>/<strategy>/``), with
    ``federated.task: continual``; results per client and overall. A resume keeps finished
    strategies and resumes an interrupted federation."""
    from fedhar.federated.run import run_federated

    results = folder.results
    results.update(kind="continual-federated", config=config_to_dict(cfg))
    results.setdefault("runs", [])
    n, rounds = cfg.continual.federated.clients, cfg.continual.federated.total_rounds(len(scenario_of(cfg).phases))
    for spec in cfg.continual.strategies:
        label = strategy_label(spec)
        sub_dir = folder.path / label
        clients = str((sub_dir / "clients").resolve())
        sub = derive(cfg, {"name": f"{cfg.name}-{label}", "continual.strategies": [spec], "continual.federated.state_dir": clients,
                           "federated": {"task": "continual", "state_dir": clients, "rounds": rounds, "min_available_clients": n,
                                         "min_train_clients": n, "min_evaluate_clients": min(n, cfg.federated.min_evaluate_clients)}},
                     source=f"continual strategy {label}")
        task = get_task(sub)
        results.update(**stream_info(task.stream), clients={str(c): task.assignment[c] for c in range(task.num_clients)})
        if folder.done(label):
            continue
        t0 = time.perf_counter()
        saved = sub_dir / "results.json"  # there only on --resume: RunFolder refused or wiped an existing run
        fed = json.loads(saved.read_text()) if saved.exists() else {}
        if not fed.get("complete"):
            fed = run_federated(sub, resume=str(sub_dir)) if saved.exists() else run_federated(sub, out=str(sub_dir))
        results["runs"].append(_strategy_run(cfg, task, label, fed, time.perf_counter() - t0))
        _write_outputs(folder)
        folder.record(label)
    _write_outputs(folder)
    return folder.complete()


def _strategy_run(cfg: ExperimentConfig, task: ContinualFederatedTask, label: str, fed: dict, seconds: float) -> dict:
    """results.json's ``runs[*]`` entry of one strategy's finished federation."""
    per = client_results(task)
    mem = [c["memory"] for c in per["clients"].values()]
    memory = {k: float(np.mean([m.get(k, 0) or 0 for m in mem])) for k in ("buffer_windows", "buffer_bytes", "adapter_bytes", "extra_bytes")}
    dets = [d for c in per["clients"].values() for d in c["detections"] if d.get("delay_rounds") is not None]
    return {
        "model": cfg.continual.model_label(cfg.model.backbone), "strategy": label, "continual": per["overall"], "clients": per["clients"],
        "memory": memory, "seconds": seconds, "train_seconds": fed.get("seconds", 0.0),
        "detection_summary": {"boundaries": task.num_clients * (task.phases - 1), "detected": len(dets),
                              "mean_delay_rounds": float(np.mean([d["delay_rounds"] for d in dets])) if dets else None,
                              "mean_delay": None},
        "federated": {"final": fed.get("final"), "rounds": len(fed.get("rounds", [])), "communication": fed.get("communication")},
    }


def _write_outputs(folder: RunFolder) -> None:
    """The study's outputs (:func:`write_outputs`), with the per-client table and the federation's
    figures appended to report.md."""
    write_outputs(folder)
    results = folder.results
    lines = ["", "## Per client", "", "| strategy | client | subjects per phase | ACC | BWT | forgetting | FWT | F1 ACC | detections (round: delay) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        for pid, c in r["clients"].items():
            dets = ", ".join(f"r{d['round']}: {d['delay_rounds']}" if d.get("delay_rounds") is not None else f"r{d['round']}: false alarm"
                             for d in c["detections"]) or "none"
            m = c["continual"]
            lines.append(f"| {r['strategy']} | {pid} | {c['subjects']} | {fmt(m['acc'])} | {fmt(m['bwt'])} | {fmt(m['forgetting'])} | "
                         f"{fmt(m['fwt'])} | {fmt(m['macro_f1']['acc'])} | {dets} |")
    lines += ["", "## Federations", "", "| strategy | rounds | global model accuracy / macro-F1 on all phases | MB sent |", "|---|---|---|---|"]
    for r in results["runs"]:
        fed = r["federated"]
        final = fed.get("final") or {}
        comm = fed.get("communication") or {}
        lines.append(f"| {r['strategy']} | {fed['rounds']} | {fmt(final.get('accuracy'))} / {fmt(final.get('macro_f1'))} | "
                     f"{(comm.get('total_bytes') or 0) / 1e6:.1f} |")
    with open(folder.path / "report.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
