"""Federated continual adaptation: each Flower client walks the scenario's phases on its own
schedule, keeps its strategy's state on its own disk between rounds, and shares only the
trainable state, which the server aggregates as in any fedhar federation.

**Clients and timelines.** The subjects of each phase are dealt round-robin to
``continual.federated.clients`` clients, so every client has data in every phase (its users
change as the phases do). Client ``c`` is in phase ``k`` from round
``1 + k * rounds_per_phase + c * stagger_rounds``: the drift reaches the clients one at a time.

**A client's round** (:meth:`ContinualFederatedTask.train_client`): load the global state; feed
a few incoming windows to its drift detector (detections are logged with the true switch
round); ``begin_experience`` (replay mixes in its buffer, EWC adds its penalty) and ``fit``;
in the last round of a phase, ``end_experience`` (fill the buffer, estimate the Fisher),
recalibrate the detector on the phase just learned, and evaluate the local model on its test
windows of **every** phase: one row ``R[k][:]`` of the client's accuracy matrix. The row, the
buffer, the EWC anchors, the detector and the seen classes are saved atomically under
``continual.federated.state_dir``, so they survive rounds, worker restarts and a resumed server.

**Not supported:** the adapter library. Its per-domain adapters would replace the global model
a client receives each round; aggregating one adapter per domain across clients is a different
federation (per-domain FedAvg) that fedhar does not implement yet.
"""

from __future__ import annotations

import copy
import logging
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from fedhar.config import ExperimentConfig, build_config, config_to_dict
from fedhar.continual.config import strategy_label, strategy_options
from fedhar.continual.experiment import metrics_block
from fedhar.continual.metrics import continual_metrics
from fedhar.continual.protocol import evaluate_experience
from fedhar.continual.state import load_client_state, save_client_state
from fedhar.continual.strategies import build_strategy
from fedhar.data.dataset import WindowDataset, concat
from fedhar.drift import Experience
from fedhar.exceptions import ConfigError
from fedhar.federated.task import FederatedTask, derive_seed
from fedhar.training.loop import fit

log = logging.getLogger(__name__)
UNSUPPORTED = ("adapters",)


def _clean(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


class ContinualFederatedTask(FederatedTask):
    """:class:`~fedhar.federated.task.FederatedTask` whose clients follow drift timelines."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        if len(cfg.continual.strategies) != 1:
            raise ConfigError("a federated continual run trains one strategy; `continual.strategies` must list exactly one "
                              "(simulations/continual.py runs one federation per strategy).")
        self.spec = cfg.continual.strategies[0]
        if self.spec["name"] in UNSUPPORTED:
            raise ConfigError(f"continual strategy `{self.spec['name']}` is not supported in federated mode "
                              "(see fedhar.continual.federated); use naive, replay or ewc.")
        self.fcfg = cfg.continual.federated
        if not self.fcfg.state_dir:
            raise ConfigError("`continual.federated.state_dir` must be set for a federated continual run "
                              "(simulations/continual.py sets it to <run>/<strategy>/clients).")
        self._experiences: dict[tuple[int, int], Experience] = {}

    # ------------------------------------------------------------------ data
    @cached_property
    def stream(self) -> list[Experience]:
        from fedhar.continual.experiment import build_stream

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
            from fedhar.exceptions import FederationError

            raise FederationError(f"partition-id {pid} is out of range: this configuration has {self.num_clients} clients.")
        return self.experience(pid, 0).train, concat([self.experience(pid, k).test for k in range(self.phases)])

    # ------------------------------------------------------------------ client state
    def state_path(self, pid: int) -> Path:
        return Path(self.fcfg.state_dir) / f"client_{pid}.npz"

    def new_strategy(self):
        return build_strategy(self.spec["name"], strategy_options(self.spec))

    def load_client(self, pid: int) -> tuple[object, dict]:
        strategy = self.new_strategy()
        extra = load_client_state(self.state_path(pid), strategy)
        return strategy, (extra or {"phase": None, "rows": {}, "f1_rows": {}, "baseline": None, "f1_baseline": None,
                                    "detections": [], "calibrated": False, "rounds": []})

    def _row(self, model, strategy, pid: int) -> tuple[list, list]:
        acc, f1 = [], []
        for j in range(self.phases):
            m = evaluate_experience(model, strategy, self.experience(pid, j).test, self.cfg.train)
            acc.append(_clean(m["accuracy"]))
            f1.append(_clean(m["macro_f1"]))
        return acc, f1

    # ------------------------------------------------------------------ client work
    def train_client(self, state: dict, pid: int, server_round: int, proximal_mu: float = 0.0):
        P, total = self.phases, self.total_rounds
        k = self.fcfg.phase_of(pid, server_round, P)
        exp = self.experience(pid, k)
        tcfg = self.cfg.train
        local_cfg = type(tcfg)(**{**tcfg.__dict__, "epochs": self.cfg.federated.local_epochs, "progress": False})
        seed = derive_seed(self.cfg.seed, pid, server_round)
        t0 = time.perf_counter()
        with self._lock:
            strategy, extra = self.load_client(pid)
            model = self.model
            model.load_trainable_state(state, where=f"global state (round {server_round})")
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
            train, penalties = strategy.begin_experience(model, exp, local_cfg, seed)
            history = fit(model, train, local_cfg, seed=seed, penalties=penalties, desc=f"client {pid}") if len(train) else []
            last = server_round == self.fcfg.last_round_of_phase(pid, k, P, total)
            if last:
                strategy.end_experience(model, exp, local_cfg, seed)
                strategy.seen_classes |= {int(c) for c in np.unique(exp.train.y)}
                strategy.experiences.append({"index": k, "name": exp.name, "windows": len(exp.train), "fit_windows": len(train)})
                extra["rows"][str(k)], extra["f1_rows"][str(k)] = self._row(model, strategy, pid)
                if strategy.detector is not None and len(exp.test):
                    strategy.calibrate_detector(model, exp.test.X, tcfg)
                    extra["calibrated"] = True
            new_state = model.trainable_state()
            extra["phase"] = k
            extra["rounds"].append({"round": server_round, "phase": k, "fit_windows": len(train), "detected": fired,
                                    "seconds": time.perf_counter() - t0})
            extra["memory"] = strategy.memory()
            save_client_state(self.state_path(pid), strategy, extra)
        loss = history[-1]["train_loss"] if history else float("nan")
        return new_state, {"train_loss": loss, "phase": k}, len(train)


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
        R = np.array([[np.nan if v is None else v for v in extra["rows"][str(i)]] for i in range(P)])
        F = np.array([[np.nan if v is None else v for v in extra["f1_rows"][str(i)]] for i in range(P)])
        b = np.array([np.nan if v is None else v for v in extra["baseline"]])
        fb = np.array([np.nan if v is None else v for v in extra["f1_baseline"]])
        mats.append(R), f1s.append(F), bases.append(b), f1_bases.append(fb)
        acc, f1 = continual_metrics(R, b), continual_metrics(F, fb)
        clients[str(pid)] = {"subjects": task.assignment[pid], "continual": metrics_block(acc, f1), "memory": extra.get("memory", {}),
                             "detections": extra["detections"], "seen_classes": sorted(strategy.seen_classes)}
    acc = continual_metrics(np.nanmean(mats, axis=0), np.nanmean(bases, axis=0))
    f1 = continual_metrics(np.nanmean(f1s, axis=0), np.nanmean(f1_bases, axis=0))
    return {"overall": metrics_block(acc, f1), "clients": clients}


def run_continual_federated(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False) -> dict:
    """One Flower federation per strategy over the scenario; results per client and overall."""
    from fedhar.continual.experiment import write_outputs
    from fedhar.federated.run import run_federated
    from fedhar.reporting import prepare_run_dir, write_config

    t_start = time.perf_counter()
    run_dir = Path(out) if (resume and out) else prepare_run_dir(out, cfg.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config_to_dict(cfg))
    from fedhar.continual.experiment import scenario_of
    from fedhar.federated.task import get_task

    scenario = scenario_of(cfg)
    results: dict = {"kind": "continual-federated", "name": cfg.name, "seed": cfg.seed, "config": config_to_dict(cfg),
                     "runs": [], "complete": False}
    for spec in cfg.continual.strategies:
        label = strategy_label(spec)
        if spec["name"] in UNSUPPORTED:
            raise ConfigError(f"`continual.strategies`: `{spec['name']}` is not supported in federated mode; "
                              "use naive, replay or ewc.")
        tree = copy.deepcopy(config_to_dict(cfg))
        sub_dir = run_dir / label
        tree["name"] = f"{cfg.name}-{label}"
        tree["continual"]["strategies"] = [spec]
        tree["continual"]["federated"]["state_dir"] = str((sub_dir / "clients").resolve())
        n = cfg.continual.federated.clients
        tree["federated"].update(min_available_clients=n, min_train_clients=n, min_evaluate_clients=min(n, tree["federated"]["min_evaluate_clients"]))
        tree["federated"]["rounds"] = cfg.continual.federated.total_rounds(len(scenario.phases))
        sub = build_config(tree, source=f"continual strategy {label}")
        task = get_task(sub)
        if not results.get("phases"):
            results["phases"] = [e.name for e in task.stream]
            results["phase_info"] = [{"name": e.name, "device": e.info["device"], "placement": e.info["placement"],
                                      "sensors": e.info["sensors"], "classes": e.info["classes"], "subjects": e.info["subjects"],
                                      "train": len(e.train), "test": len(e.test)} for e in task.stream]
            results["clients"] = {str(c): task.assignment[c] for c in range(task.num_clients)}
        done = sub_dir.joinpath("results.json").exists() and resume
        t0 = time.perf_counter()
        if done:
            import json

            fed = json.loads(sub_dir.joinpath("results.json").read_text())
            if not fed.get("complete"):
                fed = run_federated(sub, resume=str(sub_dir))
        else:
            fed = run_federated(sub, out=str(sub_dir))
        per = client_results(task)
        mem = [c["memory"] for c in per["clients"].values()]
        memory = {k: float(np.mean([m.get(k, 0) or 0 for m in mem])) for k in ("buffer_windows", "buffer_bytes", "adapter_bytes", "extra_bytes")}
        dets = [d for c in per["clients"].values() for d in c["detections"] if d.get("delay_rounds") is not None]
        switches = task.num_clients * (task.phases - 1)
        results["runs"].append({
            "model": cfg.continual.main_label, "strategy": label, "continual": per["overall"], "clients": per["clients"],
            "memory": memory, "seconds": time.perf_counter() - t0, "train_seconds": fed.get("seconds", 0.0),
            "detection_summary": {"boundaries": switches, "detected": len(dets),
                                  "mean_delay_rounds": float(np.mean([d["delay_rounds"] for d in dets])) if dets else None,
                                  "mean_delay": None},
            "federated": {"final": fed.get("final"), "rounds": len(fed.get("rounds", [])), "communication": fed.get("communication")},
        })
        write_outputs(run_dir, results)
        _client_report(run_dir, results)
    results["complete"] = True
    results["seconds"] = time.perf_counter() - t_start
    write_outputs(run_dir, results)
    _client_report(run_dir, results)
    results["run_dir"] = str(run_dir)
    return results


def _client_report(run_dir: Path, results: dict) -> None:
    """Append the per-client table and the federation's figures to report.md."""
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["", "## Per client", "", "| strategy | client | subjects per phase | ACC | BWT | forgetting | FWT | F1 ACC | detections (round: delay) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        for pid, c in r["clients"].items():
            dets = ", ".join(f"r{d['round']}: {d['delay_rounds']}" if d.get("delay_rounds") is not None else f"r{d['round']}: false alarm"
                             for d in c["detections"]) or "none"
            m = c["continual"]
            lines.append(f"| {r['strategy']} | {pid} | {c['subjects']} | {f(m['acc'])} | {f(m['bwt'])} | {f(m['forgetting'])} | "
                         f"{f(m['fwt'])} | {f(m['macro_f1']['acc'])} | {dets} |")
    lines += ["", "## Federations", "", "| strategy | rounds | global model accuracy / macro-F1 on all phases | MB sent |", "|---|---|---|---|"]
    for r in results["runs"]:
        fed = r["federated"]
        final = fed.get("final") or {}
        comm = fed.get("communication") or {}
        lines.append(f"| {r['strategy']} | {fed['rounds']} | {f(final.get('accuracy'))} / {f(final.get('macro_f1'))} | "
                     f"{(comm.get('total_bytes') or 0) / 1e6:.1f} |")
    with open(run_dir / "report.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
