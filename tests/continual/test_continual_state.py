"""Client-side continual state survives: on disk and through Flower's Context, across rounds."""

import os

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict

from fedhar.continual import (
    build_strategy,
    get_context_state,
    load_client_state,
    put_context_state,
    save_client_state,
    window_confidence,
)
from fedhar.exceptions import ConfigError, DataError

from continual_helpers import Exp, assert_state_equal

CASES = {
    "replay": {"buffer_windows": 15, "buffer_bytes": 10**6, "seed": 4, "detector": {"threshold": 8}},
    "adapters": {"max_adapters": 3, "detector": True},
    "ewc": {"lambda_": 5.0, "fisher_samples": 8, "fisher_batch_size": 4},
    "naive": {"detector": True},
}


def _trained(name, tiny, stream):
    model, cfg = tiny
    s = build_strategy(name, CASES[name])
    for i, e in enumerate(stream):
        s.train_experience(model, e, cfg, seed=i)
    if s.detector is not None:  # some detector state worth keeping: a reference and a partial stream
        s.calibrate_detector(model, stream[0].test.X, cfg)
        s.observe(model, stream[1].test.X, cfg)
    return s


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_survives_a_file_round_trip(name, tiny, stream, tmp_path):
    s = _trained(name, tiny, stream)
    extra = {"phase": 1, "round": 3, "ids": np.arange(4), "note": "x", "nan": float("nan")}
    path = save_client_state(tmp_path / "client-0" / "continual.npz", s, extra)
    assert os.listdir(path.parent) == ["continual.npz"]  # the temporary file was renamed over
    fresh = build_strategy(name, CASES[name])
    got = load_client_state(path, fresh)
    assert_state_equal(s.state_dict(), fresh.state_dict())
    assert_state_equal(extra, got)
    assert fresh.seen_classes == set(range(6)) and len(fresh.experiences) == 2
    if name == "replay":
        assert fresh.buffer.seen == s.buffer.seen and np.array_equal(fresh.buffer.X, s.buffer.X)
        # the generator state came along: both continue identically
        s.buffer.add(stream[0].test)
        fresh.buffer.add(stream[0].test)
        assert np.array_equal(fresh.buffer.subject, s.buffer.subject) and np.array_equal(fresh.buffer.X, s.buffer.X)
    if name == "adapters":
        model, cfg = tiny
        fresh.before_eval(model, stream[1].test.X, cfg)  # the restored adapters load into the model
        assert fresh.eval_info()["domain"] == 1
    if name == "ewc":
        assert all(isinstance(v, torch.Tensor) for v in fresh.fisher.values())
    if s.detector is not None:
        assert fresh.detector.mu == s.detector.mu and fresh.detector.t == s.detector.t > 0
    # saving again replaces the file atomically and stays readable
    save_client_state(path, fresh, {"round": 4})
    assert load_client_state(path, build_strategy(name, CASES[name])) == {"round": 4}


def test_missing_corrupt_and_mismatched_files(tmp_path, tiny, stream):
    assert load_client_state(tmp_path / "none.npz", build_strategy("naive", {})) is None
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError):
        load_client_state(bad, build_strategy("naive", {}))
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(DataError, match="not a fedhar continual state"):
        load_client_state(tmp_path / "other.npz", build_strategy("naive", {}))
    path = save_client_state(tmp_path / "replay.npz", build_strategy("replay", {}))
    with pytest.raises(ConfigError, match="belongs to strategy `replay`"):
        load_client_state(path, build_strategy("ewc", {}))


def test_state_survives_rounds_in_a_flower_context(tiny, stream, smoke_config):
    """A client function builds everything afresh each round; only Context.state carries over."""
    model, cfg = tiny
    context = Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    opts = {"buffer_windows": 12, "seed": 1, "detector": {"threshold": 8}}
    # round 1 sees classes 0-2 of domain A, round 2 classes 3-5 of domain B
    a, b = stream
    rounds = [Exp(0, "r1", a.train.subset(a.train.y < 3), a.test, {}),
              Exp(1, "r2", b.train.subset(b.train.y >= 3), b.test, {})]

    def client_round(exp, rnd):
        s = build_strategy("replay", opts)  # a new object, as in a new ClientApp call
        extra = get_context_state(context, s)
        assert (extra is None) == (rnd == 1)
        s.train_experience(model, exp, cfg, seed=rnd)
        s.calibrate_detector(model, exp.test.X, cfg)
        s.observe(model, exp.train.X, cfg)
        put_context_state(context, s, {"round": rnd})
        return s

    s1 = client_round(rounds[0], 1)
    snapshot = s1.state_dict()
    s2 = client_round(rounds[1], 2)
    assert s2.seen_classes == set(range(6))
    assert [e["name"] for e in s2.experiences] == ["r1", "r2"]
    assert s2.buffer.seen == len(rounds[0].train) + len(rounds[1].train) and len(s2.buffer) == 12
    assert s2.detector.t == len(rounds[0].train) + len(rounds[1].train)
    # the buffer after round 2 is exactly what one long-lived object would hold
    ref = build_strategy("replay", opts)
    ref.load_state_dict(snapshot)
    ref.buffer.add(rounds[1].train)
    assert np.array_equal(ref.buffer.X, s2.buffer.X) and np.array_equal(ref.buffer.y, s2.buffer.y)
    # round 3 reads round 2's state back
    s3 = build_strategy("replay", opts)
    assert get_context_state(context, s3) == {"round": 2}
    assert_state_equal(s2.state_dict(), s3.state_dict())


def test_adapter_library_survives_a_context(tiny, stream):
    model, cfg = tiny
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    for rnd, exp in enumerate(stream, start=1):
        s = build_strategy("adapters", {})
        get_context_state(context, s)
        s.train_experience(model, exp, cfg, seed=rnd)
        put_context_state(context, s)
    s = build_strategy("adapters", {})
    get_context_state(context, s)
    assert len(s.domains) == 2 and s.last_trained == 1
    conf = {}
    for j, exp in enumerate(stream):
        s.before_eval(model, exp.test.X, cfg)
        assert s.eval_info()["domain"] == j
        conf[j] = window_confidence(model, exp.test.X, cfg)
    assert all(np.isfinite(c).all() for c in conf.values())
