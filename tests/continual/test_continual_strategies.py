"""Strategies on the tiny LoRA model: each trains through a two-domain stream via the one loop."""

import json

import numpy as np
import pytest
import torch

from fedhar.continual import (
    EWC,
    STRATEGIES,
    AdapterLibrary,
    ConfidenceDriftDetector,
    Naive,
    Replay,
    build_strategy,
    evaluate_experience,
    run_stream,
)
from fedhar.exceptions import ConfigError, DataError

from continual_helpers import Exp, make_stream

OPTIONS = {"naive": {}, "replay": {"buffer_windows": 20}, "ewc": {"lambda_": 10.0, "fisher_samples": 16},
           "adapters": {"max_adapters": 4}}
MEMORY_KEYS = {"buffer_windows", "buffer_bytes", "adapter_bytes", "extra_bytes"}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_each_strategy_runs_the_protocol(name, tiny, stream, monkeypatch):
    model, cfg = tiny
    calls = []
    import fedhar.continual.strategies.base as base

    real_fit = base.fit
    monkeypatch.setattr(base, "fit", lambda *a, **k: calls.append(len(a[1])) or real_fit(*a, **k))
    steps = []
    res = run_stream(model, build_strategy(name, OPTIONS[name]), stream, cfg, seed=0, on_step=steps.append)
    assert len(calls) == 2  # one fit() per experience, no loop of its own
    assert res["strategy"] == name and res["experiences"] == ["A", "B"]
    for key in ("accuracy", "macro_f1"):
        m = res[key]
        R = np.array(m["matrix"], dtype=float)
        assert R.shape == (2, 2) and np.all((R >= 0) & (R <= 1))  # every [i][j], future ones too
        assert len(m["baseline"]) == 2 and m["fwt"] is not None
        assert m["acc"] == pytest.approx(R[1].mean())
        assert m["bwt"] == pytest.approx(R[1, 0] - R[0, 0])
    assert [s["experience"] for s in steps] == [0, 1]
    assert {r["experience"] for r in res["history"]} == {0, 1}
    assert set(res["memory"]) == MEMORY_KEYS and res["seconds"] > 0
    assert res["detection"] == [] and res["detection_summary"] is None
    json.dumps(res, allow_nan=False)  # the result goes into results.json as is


def test_replay_mixes_in_its_buffer_and_reports_its_bytes(tiny, stream):
    model, cfg = tiny
    s = Replay(buffer_windows=20, seed=0)
    h0 = s.train_experience(model, stream[0], cfg, seed=0)
    assert h0[0]["fit_windows"] == len(stream[0].train) and len(s.buffer) == 20
    h1 = s.train_experience(model, stream[1], cfg, seed=1)
    assert h1[0]["fit_windows"] == len(stream[1].train) + 20
    assert s.buffer.seen == len(stream[0].train) + len(stream[1].train)
    mem = s.memory()
    b = s.buffer
    assert mem["buffer_windows"] == len(b) == 20
    assert mem["buffer_bytes"] == b.X.nbytes + b.y.nbytes + b.subject.nbytes == 20 * (6 * 64 * 4 + 16)
    # a bytes budget below the windows budget lowers the capacity
    s2 = Replay(buffer_windows=20, buffer_bytes=5 * (6 * 64 * 4 + 16) + 100)
    s2.end_experience(model, stream[0], cfg, 0)
    assert s2.memory()["buffer_windows"] == 5 and s2.memory()["buffer_bytes"] <= 5 * (6 * 64 * 4 + 16) + 100


def test_ewc_penalty_zero_at_the_anchor_then_positive(tiny, stream):
    model, cfg = tiny
    s = EWC(lambda_=10.0, fisher_samples=16, fisher_batch_size=4)
    assert float(s.penalty(model).detach()) == 0.0 and s.begin_experience(model, stream[0], cfg, 0)[1] == []
    s.train_experience(model, stream[0], cfg, seed=0)
    assert s.fisher and all(bool((F >= 0).all()) for F in s.fisher.values())
    assert sum(float(F.sum()) for F in s.fisher.values()) > 0
    assert not any(k.startswith("normalizer") for k in s.fisher)  # buffers do not train
    assert float(s.penalty(model).detach()) == 0.0  # right after the experience, theta == theta*
    _, penalties = s.begin_experience(model, stream[1], cfg, 1)
    assert penalties == [s.penalty]
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    assert float(s.penalty(model).detach()) > 0
    # the penalty has gradients, pulling back towards the anchor
    pen = s.penalty(model)
    pen.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    model.zero_grad(set_to_none=True)
    mem = s.memory()
    assert mem["extra_bytes"] == sum(t.numel() * 4 for t in s.fisher.values()) * 2
    # online EWC: the second experience adds to the Fisher
    before = {k: v.clone() for k, v in s.fisher.items()}
    s.train_experience(model, stream[1], cfg, seed=1)
    assert all(bool((s.fisher[k] >= before[k]).all()) for k in before)


def test_adapter_library_detects_domains_and_picks_the_right_adapter(tiny, stream):
    model, cfg = tiny
    s = AdapterLibrary(max_adapters=4)
    s.train_experience(model, stream[0], cfg, seed=0)
    state_a = {k: v.clone() for k, v in model.trainable_state().items()}
    s.train_experience(model, stream[1], cfg, seed=1)
    state_b = {k: v.clone() for k, v in model.trainable_state().items()}
    assert len(s.domains) == 2 and [d["new"] for d in s.decisions] == [True, True]
    assert s.decisions[1]["nearest_distance"] > s.threshold
    # a new domain's adapter starts from the most recent one: B differs from A only by training
    assert any(not torch.equal(state_a[k], state_b[k]) for k in state_a)
    for exp, want, state in ((stream[0], 0, state_a), (stream[1], 1, state_b)):
        s.before_eval(model, exp.test.X, cfg)
        assert s.eval_info()["domain"] == want
        now = model.trainable_state()
        assert all(torch.equal(now[k], state[k]) for k in state)
    # domain A again (new windows): recognised, its adapter trained further, no new adapter
    again = make_stream(seed=5)[0]
    s.train_experience(model, Exp(2, "A again", again.train, again.test, {}), cfg, seed=2)
    assert len(s.domains) == 2 and s.decisions[-1]["new"] is False and s.decisions[-1]["domain"] == 0
    assert s.domains[0]["experiences"] == [0, 2]
    mem = s.memory()
    assert mem["adapter_bytes"] == sum(sum(v.nbytes for v in d["state"].values()) for d in s.domains)
    assert mem["adapter_bytes"] == 2 * model.state_bytes()
    assert mem["buffer_bytes"] == 0 and mem["extra_bytes"] > 0


def test_adapter_library_given_domains_confidence_rule_and_capacity(tiny, stream):
    model, cfg = tiny
    s = AdapterLibrary(use_given_domains=True, rule="confidence")
    relabelled = [Exp(0, "A", stream[0].train, stream[0].test, {"domain": "x"}),
                  Exp(1, "A2", stream[0].train, stream[0].test, {"domain": "y"})]
    for i, e in enumerate(relabelled):
        s.train_experience(model, e, cfg, seed=i)
    assert [d["name"] for d in s.domains] == ["x", "y"]  # same data, two given domains
    s.before_eval(model, stream[1].test.X, cfg)
    assert s.eval_info()["rule"] == "confidence" and len(s.eval_info()["scores"]) == 2
    full = AdapterLibrary(max_adapters=1)
    for i, e in enumerate(stream):
        full.train_experience(model, e, cfg, seed=i)
    assert len(full.domains) == 1 and full.decisions[1]["library_full"]


def test_detection_is_simulated_at_each_boundary(tiny):
    model, cfg = tiny
    stream = make_stream(n_per_class=10)
    det = ConfidenceDriftDetector(threshold=5, min_samples=5)
    res = run_stream(model, Naive(), stream, cfg, seed=0, detector=det)
    [d] = res["detection"]
    assert d["after_experience"] == 0 and d["next_experience"] == 1
    assert d["change_at"] == len(stream[0].test) - len(stream[0].test) // 2
    assert d["reference_windows"] == len(stream[0].test) // 2
    assert d["detected"] == (d["delay"] is not None)
    assert res["detection_summary"]["boundaries"] == 1


def test_macro_f1_only_counts_classes_present(tiny, stream):
    model, cfg = tiny
    test = stream[0].test.subset(stream[0].test.y < 2)
    m = evaluate_experience(model, Naive(), test, cfg)
    from fedhar.training.loop import evaluate

    assert m["macro_f1"] == pytest.approx(evaluate(model, test, cfg, labels=[0, 1])["macro_f1"])
    assert np.isnan(evaluate_experience(model, Naive(), test.subset(np.zeros(0, dtype=int)), cfg)["accuracy"])


def test_registry_and_errors(tiny, stream):
    assert STRATEGIES.names() == ["adapters", "ewc", "naive", "replay"]
    with pytest.raises(ConfigError, match="Valid choices: adapters, ewc, naive, replay"):
        build_strategy("lwf", {})
    with pytest.raises(ConfigError, match="Valid options: buffer_windows, buffer_bytes, seed, detector"):
        build_strategy("replay", {"size": 3})
    with pytest.raises(ConfigError, match="Valid detector options"):
        build_strategy("naive", {"detector": {"lambda": 3}})
    with pytest.raises(ConfigError):
        build_strategy("adapters", {"rule": "oracle"})
    with pytest.raises(ConfigError):
        build_strategy("ewc", {"gamma": 2})
    with pytest.raises(ConfigError):
        build_strategy("replay", {"buffer_windows": "many"})
    assert build_strategy("naive", {"detector": True}).detector is not None
    assert build_strategy("replay", {"detector": {"threshold": 9}}).detector.threshold == 9
    model, cfg = tiny
    other = stream[0].train.replace(classes=tuple(reversed(stream[0].train.classes)))
    with pytest.raises(DataError, match="class list"):
        Naive().train_experience(model, Exp(0, "x", other, other, {}), cfg, seed=0)
