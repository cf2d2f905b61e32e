"""SecAgg+ (``federated.secure_aggregation: secaggplus``): the masked mean equals FedAvg's within the
quantisation error, survives a dropout down to the reconstruction threshold, runs a fedhar federation
end to end, and refuses what it cannot run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.client.mod import secaggplus_mod
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import ServerApp

from fedhar.config import derive
from fedhar.exceptions import ConfigError
from fedhar.federated.config import SecAggConfig
from fedhar.federated.secagg import (SecAggRound, check_secagg, error_bound, make_workflow, max_weight_warning,
                                     protocol_sizes, secagg_aggregate, secagg_vs_fedavg, weighted_mean)
from fedhar.federated.strategy import RoundRecorder

# Hand-made client updates: 4 clients, two arrays each, values in [-1, 1], unequal weights.
_rng = np.random.default_rng(0)
ARRAYS = [[_rng.uniform(-1, 1, (3, 4)).astype(np.float32), _rng.uniform(-1, 1, 5).astype(np.float32)] for _ in range(4)]
WEIGHTS = [30, 50, 70, 90]
SA = SecAggConfig(max_weight=100)
DROPPED = 2
"""Client that raises in rounds 2 and 3, in SecAgg+'s masked-vector stage, after it shared its keys."""
REPO = Path(__file__).resolve().parents[2]
BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": 2, "include_dashboard": False}}


class FixedClient(NumPyClient):
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def fit(self, parameters, config):
        if self.pid == DROPPED and int(config["round"]) >= 2:
            raise RuntimeError("client dropped out after sharing its keys")
        return ARRAYS[self.pid], WEIGHTS[self.pid], {"partition-id": self.pid}


def _client_fn(context):
    return FixedClient(int(context.node_config["partition-id"])).to_client()


class RecordingFedAvg(FedAvg):
    """Keeps what SecAgg+ handed to the strategy each round: the unmasked mean and who survived."""

    def __init__(self, seen: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen = seen

    def aggregate_fit(self, server_round, results, failures):
        self.seen[server_round] = (parameters_to_ndarrays(results[0][1].parameters),
                                   sorted(int(fit.metrics["partition-id"]) for _, fit in results))
        return super().aggregate_fit(server_round, results, failures)


def _probe_server(seen: dict) -> ServerApp:
    """Round 1: all four clients; round 2: client 2 drops (threshold 3 of 4 shares: recoverable);
    round 3: the same dropout with threshold 4, which SecAgg+ must refuse to unmask."""
    workflows = {1: make_workflow(SA), 2: make_workflow(SA),
                 3: make_workflow(SecAggConfig(max_weight=100, reconstruction_threshold=4))}
    app = ServerApp()

    @app.main()
    def main(grid, context):
        strategy = RecordingFedAvg(seen, fraction_evaluate=0.0, min_fit_clients=4, min_available_clients=4,
                                   on_fit_config_fn=lambda rnd: {"round": rnd},
                                   initial_parameters=ndarrays_to_parameters([np.zeros_like(a) for a in ARRAYS[0]]))
        legacy = LegacyContext(context, config=ServerConfig(num_rounds=3), strategy=strategy)

        def fit(grid, ctx):
            workflows[int(ctx.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND])](grid, ctx)

        DefaultWorkflow(fit_workflow=fit)(grid, legacy)

    return app


@pytest.fixture(scope="module")
def probe() -> dict:
    """One 3-round Ray simulation of the real protocol on the hand-made updates."""
    import ray
    from flwr.simulation import run_simulation

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/
    seen: dict = {}
    try:
        run_simulation(server_app=_probe_server(seen), client_app=ClientApp(client_fn=_client_fn, mods=[secaggplus_mod]),
                       num_supernodes=4, backend_config=BACKEND)
    finally:
        ray.shutdown()
    return seen


def _max_error(got, exact) -> float:
    return max(float(np.abs(g - e).max()) for g, e in zip(got, exact))


def test_secagg_mean_equals_fedavg_within_quantisation_error(probe):
    got, survivors = probe[1]
    exact = weighted_mean(ARRAYS, WEIGHTS)
    err, bound = _max_error(got, exact), error_bound(WEIGHTS, SA, max_abs=1.0)
    print(f"SecAgg+ vs FedAvg, 4 clients: max abs error {err:.3e} (bound {bound:.3e})")
    assert survivors == [0, 1, 2, 3]
    assert 0 < err <= bound < 1e-5  # quantised (not bit-exact), and within one quantum per client
    assert _max_error(got, weighted_mean(ARRAYS, [1, 1, 1, 1])) > 100 * bound  # it is the *weighted* mean


def test_secagg_survives_a_dropout_down_to_the_threshold(probe):
    got, survivors = probe[2]
    keep = [i for i in range(4) if i != DROPPED]
    exact = weighted_mean([ARRAYS[i] for i in keep], [WEIGHTS[i] for i in keep])
    err = _max_error(got, exact)
    print(f"SecAgg+ vs FedAvg, client {DROPPED} dropped: max abs error {err:.3e}")
    assert survivors == keep
    assert err <= error_bound([WEIGHTS[i] for i in keep], SA, max_abs=1.0)
    assert 3 not in probe  # threshold 4 of 4 shares: one dropout leaves too few to unmask, so no aggregate


def test_flower_arithmetic_without_masks_matches_the_protocol(probe):
    sim = secagg_vs_fedavg(ARRAYS, WEIGHTS, SA)
    assert sim["max_abs_error"] <= sim["bound"]
    assert _max_error(probe[1][0], secagg_aggregate(ARRAYS, WEIGHTS, SA)) <= 2 * sim["bound"]


def test_error_grows_with_max_weight():
    """Weights are scaled by num-examples / max_weight before quantisation: a loose max_weight costs precision."""
    tight, loose = error_bound(WEIGHTS, SecAggConfig(max_weight=100)), error_bound(WEIGHTS, SecAggConfig(max_weight=10000))
    assert loose == pytest.approx(100 * tight, rel=1e-3)
    assert secagg_vs_fedavg(ARRAYS, WEIGHTS, SecAggConfig(max_weight=10000))["max_abs_error"] > tight


def test_a_loose_max_weight_is_warned_about():
    assert max_weight_warning(SecAggConfig(max_weight=100), WEIGHTS) is None
    warning = max_weight_warning(SecAggConfig(max_weight=10000), WEIGHTS)
    assert "`federated.secagg.max_weight` 10000 is 111x the largest client (90 windows)" in warning and "near 90" in warning


def test_protocol_sizes_follow_flower():
    four = protocol_sizes(SecAggConfig(), 4)
    assert (four.shares, four.threshold, four.neighbours, four.tolerated_dropouts) == (4, 3, 4, 1)
    ten = protocol_sizes(SecAggConfig(num_shares=5, reconstruction_threshold=3), 10)
    assert (ten.shares, ten.threshold, ten.neighbours, ten.tolerated_dropouts) == (5, 3, 5, 2)


def _legacy_context(arrays) -> LegacyContext:
    from flwr.app import ConfigRecord, Context, RecordDict
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    ctx = LegacyContext(Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    ctx.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(ndarrays_to_parameters(arrays), True)
    ctx.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: 1})
    return ctx


def _global(ctx) -> list[np.ndarray]:
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    return parameters_to_ndarrays(compat.arrayrecord_to_parameters(ctx.state.array_records[MAIN_PARAMS_RECORD], True))


def test_fit_workflow_adds_the_mean_update_and_keeps_the_model_when_secagg_halts():
    """fedhar's fit workflow around SecAgg+: global + mean update when the strategy aggregated; the global
    state untouched, and the round recorded as failed, when the protocol halted."""
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    glob = [np.full((2, 2), 1.0, np.float32), np.arange(3, dtype=np.float32)]
    mean = [np.full((2, 2), 0.25), np.full(3, -0.5)]

    def aggregated(grid, ctx):
        rec.row(1)["secagg"] = {"aggregated": True, "survivors": 3}
        ctx.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(ndarrays_to_parameters(mean), True)

    rec = RoundRecorder()
    ctx = _legacy_context(glob)
    SecAggRound(aggregated, rec, offset=0, seed=0, sizes=protocol_sizes(SA, 4))(grid=None, context=ctx)
    new = _global(ctx)
    assert np.allclose(new[0], 1.25) and np.allclose(new[1], np.arange(3) - 0.5) and new[0].dtype == np.float32
    assert not rec.rows[1]["secagg"]["halted"] and rec.rows[1]["clients"] == 0  # clients are the strategy's to set

    rec = RoundRecorder()
    ctx = _legacy_context(glob)
    SecAggRound(lambda grid, ctx: None, rec, offset=4, seed=0, sizes=protocol_sizes(SA, 4))(grid=None, context=ctx)
    assert all(np.array_equal(a, b) for a, b in zip(_global(ctx), glob))
    row = rec.rows[5]  # offset: the true round number of a resumed run
    assert row["secagg"]["halted"] and row["clients"] == 0
    assert "SecAgg+ halted" in row["failure_reasons"][0] and "threshold 3" in row["failure_reasons"][0]


# ----------------------------------------------------------------- a fedhar federation
@pytest.fixture(scope="module")
def fedhar_run(tmp_path_factory) -> dict:
    """The smoke federation (4 clients, 2 rounds) under SecAgg+, client 1 failing in round 2."""
    from fedhar.config import load_config
    from fedhar.federated.run import run_federated

    cfg = derive(load_config(REPO / "configs" / "smoke.yaml"),
                 {"federated.secure_aggregation": "secaggplus", "federated.secagg.max_weight": 100,
                  "federated.faults.clients": [1], "federated.faults.rounds": [2], "federated.faults.mode": "raise"},
                 source="test")
    out = tmp_path_factory.mktemp("secagg") / "run"
    run_federated(cfg, out=str(out))
    return json.loads((out / "results.json").read_text()) | {"run_dir": str(out)}


def test_fedhar_federation_completes_under_secagg(fedhar_run):
    r = fedhar_run
    assert r["complete"] and [x["round"] for x in r["rounds"]] == [1, 2]
    sa = r["secure_aggregation"]
    assert sa["protocol"] == "secaggplus" and "legacy" in sa["path"] and "SecAggPlusWorkflow" in sa["path"]
    assert (r["rounds"][0]["clients"], r["rounds"][0]["failures"]) == (4, 0)
    assert (r["rounds"][1]["clients"], r["rounds"][1]["failures"]) == (3, 1)  # a dropout, unmasked without it
    assert "collect_masked_vectors" in r["rounds"][1]["failure_reasons"][0]
    assert [x["survivors"] for x in sa["rounds"]] == [4, 3] and sa["tolerated_dropouts_per_round"] == 1
    for row in r["rounds"]:
        assert 0 <= row["macro_f1"] <= 1 and row["seconds"] > 0 and row["bytes_down"] > row["bytes_up"] > 0
    stages = sa["bytes_by_stage"]
    assert set(stages) == {"setup", "share_keys", "collect_masked_vectors", "unmask", "evaluate"}
    # masked updates are int64 plus the weight factor: wider than the float32 update
    assert stages["collect_masked_vectors"]["bytes_up"] > 7 * r["communication"]["update_bytes"]
    assert r["communication"]["bytes_up"] == sum(x["bytes_up"] for x in r["rounds"])


def test_fedhar_federation_leaves_model_and_checkpoint(fedhar_run):
    run = Path(fedhar_run["run_dir"])
    assert json.loads((run / "checkpoint" / "state.json").read_text())["round"] == 2
    assert (run / "model" / "trainable_state.safetensors").exists() and (run / "metrics.csv").exists()


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("changes, key", [
    ({"federated.strategy.name": "krum"}, "federated.strategy.name: krum"),
    ({"federated.strategy.name": "fedmedian"}, "only the sum"),
    ({"federated.strategy.name": "fedadam"}, "federated.strategy.name: fedadam"),
    ({"federated.privacy.mode": "central_server", "federated.privacy.noise_multiplier": 1.0}, "clips each client"),
    ({"federated.privacy.mode": "local"}, "federated.privacy.mode: local"),
    ({"federated.attack.kind": "sign_flip", "federated.attack.fraction": 0.25}, "federated.attack.kind"),
    ({"federated.secagg.num_shares": 2}, "federated.secagg"),
    ({"federated.secagg.num_shares": 3.5}, "federated.secagg.num_shares"),
    ({"federated.secagg.num_shares": 3, "federated.secagg.reconstruction_threshold": 3}, "federated.secagg"),
    ({"federated.secagg.clipping_range": 0}, "federated.secagg.clipping_range"),
])
def test_refused_combinations(smoke_config, changes, key):
    cfg = derive(smoke_config(federated={"secure_aggregation": "secaggplus"}), changes, source="test")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_secagg(cfg)


def test_refused_with_the_deployment_engine_and_with_distillation(smoke_config):
    cfg = smoke_config(federated={"secure_aggregation": "secaggplus"})
    with pytest.raises(ConfigError, match="Simulation Engine only"):
        check_secagg(cfg, engine="deployment")
    distill = derive(cfg, {"federated.distill.enabled": True, "federated.distill.public": {"source": "synthetic"}}, source="test")
    with pytest.raises(ConfigError, match=r"federated\.distill\.enabled"):
        check_secagg(distill)


def test_refusals_that_depend_on_the_clients(smoke_config):
    from fedhar.federated.task import get_task

    cfg = smoke_config(federated={"secure_aggregation": "secaggplus", "secagg": {"max_weight": 5}})
    with pytest.raises(ConfigError, match=r"federated\.secagg\.max_weight` is 5 but a client trains on"):
        check_secagg(cfg, task=get_task(cfg))
    cfg = derive(cfg, {"federated.secagg.max_weight": 100, "federated.secagg.reconstruction_threshold": 5}, source="test")
    with pytest.raises(ConfigError, match="no round could be unmasked"):
        check_secagg(cfg, task=get_task(cfg))


def test_plain_fedavg_and_fedprox_pass(smoke_config):
    for name in ("fedavg", "fedprox"):
        check_secagg(smoke_config(federated={"secure_aggregation": "secaggplus", "strategy": {"name": name}}))
    check_secagg(smoke_config(federated={"strategy": {"name": "krum"}}))  # no SecAgg+: nothing to refuse
