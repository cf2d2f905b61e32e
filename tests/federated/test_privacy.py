"""Differential privacy: Flower's wrappers, mods and accountant behind the guard, on hand-made
messages, plus one in-process federation (no Ray) that stops on its budget and resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.error import Error
from flwr.serverapp import GaussianPrivacyEvent, SamplingMethod
from flwr.serverapp.exception import PrivacyBudgetExhausted

from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.checkpoint import load_checkpoint, save_checkpoint
from fedhar.federated.client_app import config_record, privacy_mod
from fedhar.federated.config import FederatedConfig, PrivacyConfig, ServerDistillConfig, StrategyConfig
from fedhar.federated.privacy import (calibrate_noise, epsilon_after, load_privacy_state, local_noise_std,
                                      make_accountant, privacy_state)
from fedhar.federated.strategy import RoundRecorder, make_strategy

TEMPLATE = {"w": (40, 50), "b": (50,)}  # 2050 values: enough to measure a noise std within a few %
N = 4
DELTA = 1e-5


@pytest.fixture(autouse=True)
def task_identity():
    """Messages need a run id, as inside a real ServerApp (Flower sets it the same way)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    yield


class Nodes:
    """The one Grid call a strategy makes while configuring a round."""

    def get_node_ids(self):
        return [11, 12, 13, 14][:N]


def zeros() -> ArrayRecord:
    return ArrayRecord({k: torch.zeros(s) for k, s in TEMPLATE.items()})


def reply_to(msg: Message, value: float, pid: int, n: int = 10) -> Message:
    """A client's reply: every value of its state set to ``value`` (the update, from a zero global state)."""
    arrays = ArrayRecord({k: torch.full(s, value) for k, s in TEMPLATE.items()})
    content = RecordDict({"arrays": arrays,
                          "metrics": MetricRecord({"num-examples": n, "partition-id": pid, "train_loss": 1.0})})
    return Message(content=content, reply_to=msg)


def private(mode="central_server", rounds=5, strategy="fedavg", **p) -> FederatedConfig:
    p.setdefault("noise_multiplier", 1.0 if mode != "local" else None)
    return FederatedConfig(rounds=rounds, strategy=StrategyConfig(name=strategy), privacy=PrivacyConfig(mode=mode, **p))


def make(fcfg: FederatedConfig, client_config: ConfigRecord | None = None):
    s = make_strategy(fcfg, num_clients=N)
    rec = RoundRecorder()
    s.setup(rec, TEMPLATE, round_offset=0, seed=0, client_config=client_config)
    return s, rec


def one_round(s, rnd: int, values=(0.001, 0.002, 0.003, 0.004), arrays: ArrayRecord | None = None):
    msgs = list(s.configure_train(rnd, arrays or zeros(), ConfigRecord(), Nodes()))
    replies = [reply_to(m, v, pid) for pid, (m, v) in enumerate(zip(msgs, values))]
    return msgs, replies, s.aggregate_train(rnd, replies)


def noise_of(aggregate: ArrayRecord, mean: float) -> np.ndarray:
    return np.concatenate([a.numpy().ravel() for a in aggregate.values()]) - mean


# ------------------------------------------------------------------ calibration
@pytest.mark.parametrize("target,rounds", [(8.0, 20), (2.0, 5), (16.0, 100)])
def test_calibrate_noise_hits_the_target_epsilon(target, rounds):
    z = calibrate_noise(target, rounds, DELTA)
    accountant = make_accountant(PrivacyConfig(mode="central_server", noise_multiplier=z), population=N)
    accountant.compose(GaussianPrivacyEvent(noise_multiplier=z, sample_size=N, population_size=N), rounds)
    spent = accountant.get_privacy_spent().epsilon  # Flower's own accountant agrees with the calibration
    assert spent <= target and spent == pytest.approx(target, rel=1e-3)
    assert epsilon_after(z * 0.99, rounds, DELTA) > target  # and it is the smallest such noise


# ------------------------------------------------------------------ each mode adds noise
def test_central_server_noises_the_mean_with_the_expected_std():
    z, clip = 2.0, 1.0
    s, rec = make(private(noise_multiplier=z, clipping_norm=clip))
    values = (0.001, 0.002, 0.003, 0.004)  # updates of norm < 0.2: never clipped
    _, _, (arrays, _) = one_round(s, 1, values)
    noise = noise_of(arrays, np.mean(values))
    assert noise.std() == pytest.approx(z * clip / N, rel=0.1)  # Flower: std = z C / n
    assert abs(noise.mean()) < 4 * z * clip / N / np.sqrt(noise.size)
    assert type(s).__name__ == "GuardedDifferentialPrivacyServerSideFixedClipping"


def test_central_server_clips_each_update_before_averaging():
    s, _ = make(private(noise_multiplier=1e-6, clipping_norm=1.0))  # next to no noise: the clipping shows
    _, _, (arrays, _) = one_round(s, 1, (5.0, 5.0, 5.0, 5.0))
    norm = np.sqrt(sum((a.numpy() ** 2).sum() for a in arrays.values()))
    assert norm == pytest.approx(1.0, rel=1e-3)  # the mean of four updates clipped to norm 1


def client_context(pid: int) -> Context:
    return Context(run_id=1, node_id=pid, node_config={"partition-id": pid}, state=RecordDict(), run_config={})


def test_central_client_clips_on_the_client_and_noises_on_the_server(smoke_config):
    z, clip = 2.0, 0.5
    cfg = smoke_config(federated={"privacy": {"mode": "central_client", "noise_multiplier": z, "clipping_norm": clip}})
    s, _ = make(cfg.federated, client_config=config_record(cfg))
    msgs = list(s.configure_train(1, zeros(), ConfigRecord(), Nodes()))
    assert all(m.content["config"]["clipping_norm"] == clip for m in msgs)  # the wrapper tells the clients
    # each client trains (an update of norm ~45) and its mod clips it before the reply leaves
    replies = [privacy_mod(m, client_context(pid), lambda m, _c, pid=pid: reply_to(m, 1.0, pid))
               for pid, m in enumerate(msgs)]
    for r in replies:
        assert np.sqrt(sum((a.numpy() ** 2).sum() for a in r.content["arrays"].values())) == pytest.approx(clip)
    clipped = replies[0].content["arrays"]["w"].numpy().ravel()[0]
    arrays, _ = s.aggregate_train(1, replies)
    assert noise_of(arrays, clipped).std() == pytest.approx(z * clip / N, rel=0.1)
    assert type(s).__name__ == "GuardedDifferentialPrivacyClientSideFixedClipping"


def test_local_dp_noises_each_update_on_the_client_from_fresh_entropy(smoke_config):
    cfg = smoke_config(federated={"privacy": {"mode": "local", "local_epsilon": 5.0, "local_sensitivity": 0.1,
                                              "clipping_norm": 100.0}})
    s, _ = make(cfg.federated, client_config=config_record(cfg))
    assert type(s).__name__ == "GuardedFedAvg"  # no server wrapper: the server sees only noisy updates
    msg = list(s.configure_train(1, zeros(), ConfigRecord(), Nodes()))[0]

    def train_seeded_like_fedhar(m, _c):
        np.random.seed(0)  # fedhar's training seeds numpy from the run seed
        return reply_to(m, 0.5, 0)

    outs = [privacy_mod(msg, client_context(0), train_seeded_like_fedhar).content["arrays"] for _ in range(2)]
    noises = [noise_of(out, 0.5) for out in outs]
    want = local_noise_std(cfg.federated.privacy)
    assert want == pytest.approx(0.1 * np.sqrt(2 * np.log(1.25 / DELTA)) / 5.0)
    assert all(n.std() == pytest.approx(want, rel=0.1) for n in noises)
    assert not np.allclose(noises[0], noises[1])  # the run seed does not fix the noise


# ------------------------------------------------------------------ epsilon, bytes, guard
def test_epsilon_grows_round_by_round_and_bytes_are_counted():
    z = 1.5
    s, rec = make(private(noise_multiplier=z))
    eps = []
    for rnd in (1, 2, 3):
        msgs, replies, (arrays, metrics) = one_round(s, rnd)
        row = rec.rows[rnd]
        eps.append(row["epsilon"])
        assert arrays is not None and row["delta"] == DELTA and row["clipping_norm"] == 1.0
        assert row["epsilon"] == pytest.approx(epsilon_after(z, rnd, DELTA), rel=1e-9)
        assert row["bytes_down"] == sum(m.content["arrays"].count_bytes() + m.content["config"].count_bytes()
                                        for m in msgs)
        assert row["bytes_up"] == sum(r.content["arrays"].count_bytes() for r in replies) > 0
        assert metrics["train_loss"] == pytest.approx(1.0) and "dp-weight" not in metrics
    assert eps[0] < eps[1] < eps[2]


def test_a_nan_update_never_reaches_the_global_model_and_spends_no_epsilon():
    s, rec = make(private(noise_multiplier=1.0))
    one_round(s, 1)
    before = rec.rows[1]["epsilon"]
    _, replies, (arrays, metrics) = one_round(s, 2, (0.001, float("nan"), 0.003, 0.004))
    row = rec.rows[2]
    assert arrays is None and metrics is None  # the round leaves the global model unchanged
    assert row["failures"] == 1 and any("non-finite" in r for r in row["failure_reasons"])
    assert "3 of 4" in row["skipped_reason"] and row["epsilon"] == before  # recorded, and free
    assert row["bytes_up"] == sum(r.content["arrays"].count_bytes() for r in replies)  # the NaN one was sent too
    _, _, (arrays, _) = one_round(s, 3)  # the next full round aggregates and is accounted
    assert arrays is not None and np.isfinite(noise_of(arrays, 0)).all()
    assert rec.rows[3]["epsilon"] == pytest.approx(epsilon_after(1.0, 2, DELTA))


def test_a_client_error_skips_the_round_under_adaptive_clipping_too():
    s, rec = make(private(clipping="adaptive", noise_multiplier=0.0))
    msgs = list(s.configure_train(1, zeros(), ConfigRecord(), Nodes()))
    replies = [reply_to(m, 0.01, pid) for pid, m in enumerate(msgs[:3])]
    replies.append(Message(Error(code=0, reason="boom"), reply_to=msgs[3]))
    assert s.aggregate_train(1, replies) == (None, None)
    assert "3 of 4" in rec.rows[1]["skipped_reason"] and "epsilon" not in rec.rows[1]


def test_the_budget_stops_before_a_round_would_pass_max_epsilon():
    z = 1.0
    s, rec = make(private(noise_multiplier=z, max_epsilon=epsilon_after(z, 2, DELTA) * 1.001))
    one_round(s, 1)
    one_round(s, 2)
    with pytest.raises(PrivacyBudgetExhausted):
        s.configure_train(3, zeros(), ConfigRecord(), Nodes())
    assert s.stopped_by_budget.startswith("round 3 was not run") and 3 not in rec.rows


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("fcfg,words", [
    (lambda: private(strategy="fedadam"), ["federated.strategy.name: fedadam", "FedAvg's unmodified"]),
    (lambda: private(strategy="krum"), ["federated.strategy.name: krum", "robust rules"]),
    (lambda: private(mode="central_client", clipping="adaptive", strategy="fedavgm"), ["fedavgm"]),
    (lambda: FederatedConfig(privacy=PrivacyConfig(mode="central_server", noise_multiplier=1.0),
                             distill=ServerDistillConfig(enabled=True, public={"source": "synthetic"})),
     ["federated.distill.source: ensemble", "un-noised"]),
    (lambda: private(mode="local", target_epsilon=8.0), ["federated.privacy.target_epsilon", "local"]),
    (lambda: private(mode="local", clipping="adaptive"), ["federated.privacy.clipping: adaptive", "LocalDpMod"]),
    (lambda: private(noise_multiplier=0.0, max_epsilon=8.0), ["federated.privacy.max_epsilon", "positive"]),
])
def test_combinations_without_a_guarantee_are_refused(fcfg, words):
    with pytest.raises(ConfigError) as err:
        fcfg()
    assert all(w in str(err.value) for w in words), str(err.value)


def test_refusals_that_depend_on_the_clients_come_from_make_strategy():
    with pytest.raises(ConfigError, match="max_epsilon.*below what one round spends"):
        make_strategy(private(noise_multiplier=1.0, max_epsilon=0.5), num_clients=N)
    with pytest.raises(ConfigError, match="noise_multiplier < 0.4"):  # Flower's adaptive split, 4 clients
        make_strategy(private(clipping="adaptive", noise_multiplier=1.0), num_clients=N)


def test_a_sampled_round_is_charged_in_full_for_the_sampled_count():
    """fraction_train < 1: Flower's wrapper noises the mean of the sampled clients; the accountant
    (no amplification) charges each round as one full Gaussian release."""
    fcfg = FederatedConfig(rounds=3, fraction_train=0.5, min_train_clients=2,
                           privacy=PrivacyConfig(mode="central_server", noise_multiplier=1.0))
    s = make_strategy(fcfg, num_clients=8)
    assert s.num_sampled_clients == 4 and s.accountant.config.population_size == 8
    assert s.accountant.config.sampling_method is SamplingMethod.NO_AMPLIFICATION


def test_what_stays_allowed_builds():
    assert make_strategy(private(strategy="fedprox"), N).strategy.proximal_mu == 0.01  # FedAvg's aggregation
    assert make_strategy(private(mode="local", strategy="krum", local_epsilon=1.0), 8)  # local: any rule
    teacher = ServerDistillConfig(enabled=True, source="teacher", teacher="x", public={"source": "synthetic"})
    assert FederatedConfig(privacy=PrivacyConfig(mode="central_server", noise_multiplier=1.0), distill=teacher)
    assert FederatedConfig(personal_parts=["head"], privacy=PrivacyConfig(mode="central_client", noise_multiplier=1.0))


# ------------------------------------------------------------------ checkpoint
def test_accountant_state_survives_a_checkpoint_round_trip(tmp_path):
    z = 1.2
    s, rec = make(private(noise_multiplier=z))
    one_round(s, 1)
    one_round(s, 2)
    state = {k: torch.zeros(v) for k, v in TEMPLATE.items()}
    save_checkpoint(tmp_path, 2, state, {}, [rec.rows[1], rec.rows[2]], privacy_state=privacy_state(s))
    ckpt = load_checkpoint(tmp_path)
    fresh, fresh_rec = make(private(noise_multiplier=z))
    load_privacy_state(fresh, ckpt.privacy_state, ckpt.round)
    assert fresh.accountant.get_privacy_spent() == s.accountant.get_privacy_spent()
    fresh.round_offset = 2
    one_round(fresh, 1)  # round 3 continues the ledger
    assert fresh_rec.rows[3]["epsilon"] == pytest.approx(epsilon_after(z, 3, DELTA))
    with pytest.raises(FederationError, match="no privacy-accountant state"):
        load_privacy_state(make(private(noise_multiplier=z))[0], None, 2)


# ------------------------------------------------------------------ one in-process federation
class InProcessGrid:
    """A Grid that runs fedhar's ClientApp in this process, one node per partition (no Ray)."""

    def __init__(self, n: int) -> None:
        from fedhar.federated.client_app import app

        self.app, self.ids = app, [101 + i for i in range(n)]
        self.contexts = {nid: Context(run_id=1, node_id=nid, node_config={"partition-id": i, "num-partitions": n},
                                      state=RecordDict(), run_config={}) for i, nid in enumerate(self.ids)}

    def get_node_ids(self):
        return list(self.ids)

    def send_and_receive(self, messages, timeout=None):
        out = []
        for m in messages:
            try:
                out.append(self.app(m, self.contexts[m.metadata.dst_node_id]))
            except Exception as exc:  # noqa: BLE001 - as a SuperNode would report it
                out.append(Message(Error(code=0, reason=repr(exc)), reply_to=m))
        return out


def test_a_federation_stops_cleanly_on_its_budget_and_a_resume_keeps_the_ledger(tmp_path, smoke_config):
    from fedhar.federated.server_app import run_server
    from fedhar.federated.task import get_task

    z = 1.0
    cfg = smoke_config(federated={"rounds": 4, "privacy": {"mode": "central_client", "noise_multiplier": z,
                                                           "clipping_norm": 0.5,
                                                           "max_epsilon": epsilon_after(z, 2, DELTA) * 1.001}})
    grid = InProcessGrid(get_task(cfg).num_clients)
    run_server(grid, cfg, tmp_path, resume=False)
    r = json.loads((tmp_path / "results.json").read_text())
    assert [x["round"] for x in r["rounds"]] == [1, 2] and r["complete"] and r["stopped_by_budget"]
    assert [x["epsilon"] for x in r["rounds"]] == pytest.approx([epsilon_after(z, k, DELTA) for k in (1, 2)])
    assert all(x["clients"] == len(grid.ids) and x["failures"] == 0 for x in r["rounds"])
    p = r["privacy"]
    assert p["mode"] == "central_client" and p["noise_multiplier"] == z and p["releases"] == 2
    assert p["epsilon"] == pytest.approx(r["rounds"][-1]["epsilon"]) and "round 3 was not run" in p["stop_reason"]
    assert any("privacy budget" in w for w in r["warnings"])
    assert "epsilon" in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert load_checkpoint(tmp_path).round == 2 and (tmp_path / "model").is_dir()

    # resumed: the restored ledger still refuses round 3 (a fresh accountant would have run it)
    run_server(InProcessGrid(len(grid.ids)), cfg, tmp_path, resume=True)
    again = json.loads((tmp_path / "results.json").read_text())
    assert [x["round"] for x in again["rounds"]] == [1, 2] and again["complete"]
    assert again["privacy"]["epsilon"] == pytest.approx(p["epsilon"]) and again["privacy"]["releases"] == 2
