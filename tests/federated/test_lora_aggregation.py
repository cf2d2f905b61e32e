"""Heterogeneous-rank and -depth LoRA aggregation on hand-made adapters: the identities of
``zero_pad``, ``shared_a`` and ``svd``, depth-partial means, and the errors on bad inputs."""

from collections import OrderedDict

import pytest
import torch

from fedhar.exceptions import FederationError
from fedhar.federated.lora_aggregation import (aggregate_lora, block_index, depth_keys, install_shared_a, lora_pairs,
                                               pad_to_rank, relative_scale, shared_a_matrix, truncate,
                                               truncation_error, weighted_mean)

PREFIX = "backbone.model.base_model.model.layers"
OUT, IN, R = 6, 5, 4


def a_key(block: int, proj: str = "q_proj") -> str:
    return f"{PREFIX}.{block}.self_attn.{proj}.lora_A.default.weight"


def b_key(block: int, proj: str = "q_proj") -> str:
    return f"{PREFIX}.{block}.self_attn.{proj}.lora_B.default.weight"


def module(block: int, proj: str = "q_proj") -> str:
    return f"{PREFIX}.{block}.self_attn.{proj}"


def global_state(blocks: int = 1, rank: int = R) -> "OrderedDict[str, torch.Tensor]":
    g = torch.Generator().manual_seed(0)
    state = OrderedDict([("frontend.proj.weight", torch.randn(3, 2, generator=g))])
    for i in range(blocks):
        state[a_key(i)] = torch.randn(rank, IN, generator=g)
        state[b_key(i)] = torch.zeros(OUT, rank)
    state["head.classifier.weight"] = torch.randn(2, 3, generator=g)
    state["normalizer.mean"] = torch.zeros(3)
    return state


def client(rank: int, seed: int, blocks: int = 1, with_a: bool = True) -> "OrderedDict[str, torch.Tensor]":
    g = torch.Generator().manual_seed(100 + seed)
    state = OrderedDict([("frontend.proj.weight", torch.randn(3, 2, generator=g))])
    for i in range(blocks):
        if with_a:
            state[a_key(i)] = torch.randn(rank, IN, generator=g)
        state[b_key(i)] = torch.randn(OUT, rank, generator=g)
    state["head.classifier.weight"] = torch.randn(2, 3, generator=g)
    state["normalizer.mean"] = torch.randn(3, generator=g)
    return state


def mean_product(products, weights):
    total = sum(weights)
    return sum(w / total * p.double() for p, w in zip(products, weights))


# ----------------------------------------------------------------------------- keys
def test_lora_pairs_and_block_index_on_peft_keys():
    keys = list(global_state(blocks=2)) + [a_key(0, "v_proj"), b_key(0, "v_proj")]
    pairs, others = lora_pairs(keys)
    assert set(pairs) == {module(0), module(1), module(0, "v_proj")}
    assert pairs[module(1)].a == a_key(1) and pairs[module(1)].b == b_key(1)
    assert others == ["frontend.proj.weight", "head.classifier.weight", "normalizer.mean"]
    assert block_index(a_key(3)) == 3 and block_index(f"{PREFIX}.12.mlp.up_proj.lora_B.default.weight") == 12
    assert block_index("backbone.model.base_model.model.h.11.attn.c_attn.lora_A.default.weight") == 11  # GPT-2
    assert block_index("backbone.encoder.blocks.0.attn.q.lora_A.default.weight") == 0  # MAE encoder
    assert block_index("layers.2.x") == 2  # at the start of a key too
    assert block_index("frontend.branches.0.net.0.weight") is None
    assert block_index("head.classifier.weight") is None and block_index("backbone.model.norm.weight") is None
    assert depth_keys([a_key(0), a_key(1), a_key(2), "head.classifier.weight"], 2) == [a_key(0), a_key(1), "head.classifier.weight"]


def test_lora_pairs_refuses_an_a_without_its_b():
    with pytest.raises(FederationError, match="lora_B.default.weight"):
        lora_pairs([a_key(0), "head.classifier.weight"])
    with pytest.raises(FederationError, match="lora_A.default.weight"):
        lora_pairs([b_key(0)])


# ------------------------------------------------------------------------- shared_a
def test_shared_a_is_seeded_per_module_and_nested_by_rank():
    a = shared_a_matrix(7, module(0), IN, R)
    assert a.shape == (R, IN) and torch.equal(a, shared_a_matrix(7, module(0), IN, R))
    assert not torch.equal(a, shared_a_matrix(7, module(1), IN, R))
    assert not torch.equal(a, shared_a_matrix(8, module(0), IN, R))
    assert a.abs().max() <= IN ** -0.5  # PEFT's kaiming_uniform(a=sqrt(5)) bound
    small = install_shared_a(truncate(global_state(), 2), seed=7, max_rank=R)
    assert torch.equal(small[a_key(0)], a[:2])  # a rank-2 client uses the first 2 rows


@pytest.mark.parametrize("scaled", [False, True])
def test_shared_a_aggregate_is_exactly_the_mean_of_the_products(scaled):
    ranks, weights = [1, 2, 4], [30.0, 10.0, 60.0]
    glob = install_shared_a(global_state(), seed=3, max_rank=R)
    shared = glob[a_key(0)]
    sent = [client(r, i, with_a=False) for i, r in enumerate(ranks)]
    scales = [relative_scale(r, R) for r in ranks] if scaled else None
    out = aggregate_lora(glob, sent, weights, "shared_a", scales=scales)
    s = scales or [1.0] * 3
    target = mean_product([s[i] * sent[i][b_key(0)] @ shared[:r] for i, r in enumerate(ranks)], weights)
    got = out.state[b_key(0)].double() @ out.state[a_key(0)].double()
    assert torch.allclose(got, target, atol=1e-6)
    assert torch.equal(out.state[a_key(0)], shared)  # A never changes
    assert out.holders[b_key(0)] == 3 and out.holders[a_key(0)] == 0
    # a client of rank r gets B[:, :r] / s: its update is the aggregate restricted to its A rows
    mine = truncate(out.state, 2, scale=s[1])
    assert mine[b_key(0)].shape == (OUT, 2)
    assert torch.allclose(s[1] * mine[b_key(0)] @ shared[:2], out.state[b_key(0)][:, :2] @ shared[:2])


def test_shared_a_refuses_a_client_that_sends_a():
    glob = install_shared_a(global_state(), seed=3, max_rank=R)
    with pytest.raises(FederationError, match="only B travels"):
        aggregate_lora(glob, [client(2, 0)], [1.0], "shared_a")


# ------------------------------------------------------------------------- zero_pad
def test_zero_pad_averages_padded_factors_and_is_not_the_mean_product():
    glob, ranks, weights = global_state(), [2, 4], [1.0, 3.0]
    sent = [client(r, i) for i, r in enumerate(ranks)]
    out = aggregate_lora(glob, sent, weights, "zero_pad")
    a0, a1 = sent[0][a_key(0)], sent[1][a_key(0)]
    assert torch.allclose(out.state[a_key(0)][:2], 0.25 * a0 + 0.75 * a1[:2])
    assert torch.allclose(out.state[a_key(0)][2:], 0.75 * a1[2:])  # rows above rank 2 shrink: the small client adds zeros
    assert torch.allclose(out.state[b_key(0)][:, 2:], 0.75 * sent[1][b_key(0)][:, 2:])
    target = mean_product([s[b_key(0)] @ s[a_key(0)] for s in sent], weights)
    got = out.state[b_key(0)].double() @ out.state[a_key(0)].double()
    assert (got - target).norm() / target.norm() > 0.05  # the known inexactness of averaging A and B apart
    mine = truncate(out.state, 2)
    assert mine[a_key(0)].shape == (2, IN) and mine[b_key(0)].shape == (OUT, 2)


def test_zero_pad_is_exact_when_clients_share_a():
    glob = global_state()
    sent = [client(R, i) for i in range(3)]
    for s in sent:
        s[a_key(0)] = sent[0][a_key(0)].clone()
    out = aggregate_lora(glob, sent, [1.0, 2.0, 3.0], "zero_pad")
    target = mean_product([s[b_key(0)] @ s[a_key(0)] for s in sent], [1.0, 2.0, 3.0])
    assert torch.allclose(out.state[b_key(0)].double() @ out.state[a_key(0)].double(), target, atol=1e-5)


def test_pad_and_truncate_round_trip_with_a_scale():
    glob = global_state()
    glob[b_key(0)] = torch.randn(OUT, R)
    small = truncate(glob, 2, scale=2.0)
    assert torch.allclose(small[b_key(0)], glob[b_key(0)][:, :2] / 2)
    back = pad_to_rank(small, R, scale=2.0)
    assert torch.allclose(back[b_key(0)][:, :2], glob[b_key(0)][:, :2]) and not back[b_key(0)][:, 2:].any()
    assert torch.equal(back[a_key(0)][:2], glob[a_key(0)][:2]) and not back[a_key(0)][2:].any()
    assert a_key(0) not in truncate(glob, 2, with_a=False)


# ------------------------------------------------------------------------------ svd
def test_svd_is_exact_when_ranks_are_equal_and_cover_the_product():
    glob = global_state(rank=OUT)  # rank 6 = min(out, in) + 1: every product is representable
    sent = [client(OUT, i) for i in range(3)]
    out = aggregate_lora(glob, sent, [2.0, 1.0, 1.0], "svd")
    target = mean_product([s[b_key(0)] @ s[a_key(0)] for s in sent], [2.0, 1.0, 1.0])
    assert torch.allclose(out.state[b_key(0)].double() @ out.state[a_key(0)].double(), target, atol=1e-5)
    assert out.reconstruction_error[module(0)] == {OUT: pytest.approx(0.0, abs=1e-6)}


def test_svd_reports_the_truncation_error_and_gives_each_rank_its_best_approximation():
    glob, ranks, weights = global_state(), [1, 2], [1.0, 1.0]
    sent = [client(r, i) for i, r in enumerate(ranks)]
    out = aggregate_lora(glob, sent, weights, "svd", scales=[relative_scale(r, R) for r in ranks])
    target = mean_product([relative_scale(r, R) * s[b_key(0)] @ s[a_key(0)] for r, s in zip(ranks, sent)], weights)
    sv = torch.linalg.svdvals(target)
    errors = out.reconstruction_error[module(0)]
    assert set(errors) == {1, 2, R}
    assert errors[1] > errors[2] > 0.01  # the mean of a rank-1 and a rank-2 update has rank 3: truncation loses some
    assert errors[R] == pytest.approx(0.0, abs=1e-6)
    assert errors[1] == pytest.approx(float(sv[1:].norm() / sv.norm()), rel=1e-6)
    one = truncate(out.state, 1)
    approx = one[b_key(0)].double() @ one[a_key(0)].double()
    assert float((target - approx).norm() / target.norm()) == pytest.approx(errors[1], rel=1e-5)
    assert truncation_error(sv, 1) == pytest.approx(errors[1], rel=1e-6)


def test_svd_keeps_a_orthonormal_when_every_update_is_zero():
    glob = global_state()
    sent = [client(2, 0), client(4, 1)]
    for s in sent:
        s[b_key(0)] = torch.zeros_like(s[b_key(0)])  # round 1: PEFT initialises B to zero
    out = aggregate_lora(glob, sent, [1.0, 1.0], "svd")
    a = out.state[a_key(0)]
    assert not out.state[b_key(0)].any()
    assert torch.allclose(a @ a.T, torch.eye(R), atol=1e-5)  # B gets gradients in every direction next round
    assert out.reconstruction_error[module(0)][2] == 0.0


# ---------------------------------------------------------------------------- depth
@pytest.mark.parametrize("rule", ["zero_pad", "svd"])
def test_each_block_is_averaged_over_the_clients_that_hold_it(rule):
    glob = global_state(blocks=3)
    deep, shallow = client(R, 0, blocks=2), client(R, 1, blocks=1)
    out = aggregate_lora(glob, [deep, shallow], [1.0, 3.0], rule)
    assert out.holders[a_key(0)] == 2 and out.holders[a_key(1)] == 1 and out.holders[a_key(2)] == 0
    product = out.state[b_key(1)] @ out.state[a_key(1)]
    assert torch.allclose(product, deep[b_key(1)] @ deep[a_key(1)], atol=1e-5)  # only the deep client: weight 1, not 1/4
    assert torch.equal(out.state[a_key(2)], glob[a_key(2)]) and torch.equal(out.state[b_key(2)], glob[b_key(2)])
    for key in ("frontend.proj.weight", "head.classifier.weight", "normalizer.mean"):
        assert torch.allclose(out.state[key], 0.25 * deep[key] + 0.75 * shallow[key])
    assert list(out.state) == list(glob)
    assert set(truncate(out.state, 2, blocks=1)) == {"frontend.proj.weight", a_key(0), b_key(0),
                                                      "head.classifier.weight", "normalizer.mean"}


def test_weighted_mean_keeps_keys_nobody_holds():
    glob = global_state()
    out, holders = weighted_mean(glob, [{"normalizer.mean": torch.ones(3)}], [5.0])
    assert torch.equal(out["normalizer.mean"], torch.ones(3)) and holders["normalizer.mean"] == 1
    assert torch.equal(out["head.classifier.weight"], glob["head.classifier.weight"])
    assert holders["head.classifier.weight"] == 0


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("change, match", [
    (lambda s: s.update({b_key(0): torch.zeros(OUT, R + 1), a_key(0): torch.zeros(R + 1, IN)}), r"\(6, 5\).*\(6, 4\)"),
    (lambda s: s.update({a_key(0): torch.zeros(2, IN + 1)}), r"lora_A.*\(2, 6\).*must be \(2, 5\)"),
    (lambda s: s.update({"frontend.proj.weight": torch.zeros(2, 2)}), r"frontend.proj.weight.*\(2, 2\).*\(3, 2\)"),
    (lambda s: s.update({"extra.weight": torch.zeros(1)}), "extra.weight"),
    (lambda s: s.pop(b_key(0)), "without"),
])
def test_bad_client_states_name_the_key_and_shapes(change, match):
    bad = client(2, 0)
    change(bad)
    with pytest.raises(FederationError, match=match):
        aggregate_lora(global_state(), [client(2, 1), bad], [1.0, 1.0], "zero_pad")


def test_bad_weights_scales_and_rule():
    glob, sent = global_state(), [client(2, 0)]
    with pytest.raises(FederationError, match="weights"):
        aggregate_lora(glob, sent, [1.0, 2.0], "svd")
    with pytest.raises(FederationError, match="positive"):
        aggregate_lora(glob, sent, [0.0], "svd")
    with pytest.raises(FederationError, match="scales"):
        aggregate_lora(glob, sent, [1.0], "svd", scales=[-1.0])
    with pytest.raises(FederationError, match="zero_pad, shared_a, svd"):
        aggregate_lora(glob, sent, [1.0], "fedavg")  # type: ignore[arg-type]
    with pytest.raises(FederationError, match="to rank 5"):
        truncate(glob, R + 1)
    assert relative_scale(2, 8) == 4.0 and relative_scale(2, 8, rslora=True) == 2.0
