"""Aggregation of LoRA adapters of different ranks and depths (``federated.lora_aggregation``).

Works on plain ``{key: tensor}`` states like :meth:`HARModel.trainable_state` ones. A LoRA module
is a pair of PEFT keys ``<module>.lora_A.<adapter>.weight`` (A, ``r x in``) and
``<module>.lora_B.<adapter>.weight`` (B, ``out x r``). Its weight update is ``s * B @ A``, where
PEFT's scaling ``s`` is ``alpha / r``. Every other tensor (frontend, head, normaliser, norms) has
the same shape everywhere, so the server takes a weighted mean of it.

The **global state** holds every key at the largest rank ``R``. A client of rank ``r`` trains
the first ``r`` rows of A and the first ``r`` columns of B (:func:`truncate`). A client that runs
only its first ``d`` backbone blocks holds no key of block ``d`` or later. Each key is then
averaged over the clients that hold it, with the weights renormalised over those clients. A key
that no client holds keeps its global value.

Rules (``rule`` of :func:`aggregate_lora`):

- ``zero_pad`` (HetLoRA, Cho et al. 2024): pad each client's A with zero rows and B with zero
  columns up to ``R``. Average A and B separately. This is **not** the average of the updates:
  ``mean(B) @ mean(A) = sum_jk w_j w_k B_j A_k`` has cross terms ``j != k``, while the target is
  ``sum_k w_k B_k A_k``. Plain FedAvg of LoRA has this error even when all ranks are equal. Rows
  above a small client's rank also shrink, because that client counts as zeros in their mean.
- ``shared_a`` (FFA-LoRA, Sun et al. 2024, for mixed ranks): every client's A is the first
  ``r`` rows of one frozen A, drawn from the run seed (:func:`shared_a_matrix`), and is never
  trained. Only B travels, zero-padded to ``R``. Since
  ``B_k A[:r_k] = pad(B_k) A``, the mean of the padded Bs gives **exactly** the mean of the
  updates. The mean is linear in what clients send, so DP noise, SecAgg sums and robust rules
  apply to the padded B unchanged.
- ``svd`` (FlexLoRA, Bai et al. 2024): average the full updates ``s_k B_k A_k`` of each module,
  then factor the mean back to rank ``R`` by truncated SVD. A client of rank ``r`` takes the first
  ``r`` components, which is the best rank-``r`` approximation (Eckart-Young), because SVD
  components are nested. The split is ``B = U_R S_R``, ``A = V_R^T`` (singular values in B). The
  product is the same with any split. This one keeps A's rows orthonormal even where the mean
  update has fewer than ``R`` non-zero singular values (as in round 1, when every B is still
  zero). A symmetric ``sqrt(S)`` split would set both factors to zero there, and those rank
  directions would get no gradient again. The relative Frobenius error of each client rank's
  truncation is reported per module.

Scaling: with one ``alpha`` for every tier, PEFT's ``alpha / r`` differs between ranks. The rules
work on the update the global (rank ``R``) model would apply: client ``k``'s B is multiplied by
its scale relative to the global model (:func:`relative_scale`). :func:`truncate` divides by that
scale again.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import torch

from fedhar.exceptions import FederationError
from fedhar.federated.seeds import derive_seed

LoraRule = Literal["zero_pad", "shared_a", "svd"]
State = Mapping[str, torch.Tensor]

_A, _B = ".lora_A.", ".lora_B."
_BLOCK = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")
"""Decoder/encoder block lists: HF Llama/Qwen/Mistral ``layers``, GPT-2 ``h``, the MAE encoder's
``blocks``, ``nn.TransformerEncoder``'s ``layers``."""


# --------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class LoraPair:
    """The A and B keys of one LoRA module."""

    module: str
    a: str
    b: str


def lora_pairs(keys: Sequence[str]) -> tuple[dict[str, LoraPair], list[str]]:
    """Split state keys into LoRA modules (by module name) and the other keys.

    The other keys are averaged plainly. An A without its B (or the reverse) is a broken state,
    not something the mean can handle, so it raises FederationError.
    """
    keyset = set(keys)
    pairs: dict[str, LoraPair] = {}
    others: list[str] = []
    for key in keys:
        if _A in key:
            b = key.replace(_A, _B, 1)
            if b not in keyset:
                raise FederationError(f"LoRA key `{key}` has no matching `{b}`: A and B of a module travel together.")
            module = key.split(_A, 1)[0]
            if module in pairs:
                raise FederationError(f"LoRA module `{module}` has several adapters; fedhar aggregates one per module.")
            pairs[module] = LoraPair(module, key, b)
        elif _B in key:
            if key.replace(_B, _A, 1) not in keyset:
                raise FederationError(f"LoRA key `{key}` has no matching `{key.replace(_B, _A, 1)}`: A and B of a "
                                      "module travel together.")
        else:
            others.append(key)
    return pairs, others


def block_index(key: str) -> int | None:
    """The backbone block a key belongs to (``...layers.3.self_attn...`` -> 3), None outside blocks."""
    m = _BLOCK.search("." + key)
    return int(m.group(1)) if m else None


def depth_keys(keys: Sequence[str], blocks: int | None) -> list[str]:
    """The keys a client that runs the first ``blocks`` backbone blocks holds (None: all)."""
    if blocks is None:
        return list(keys)
    return [k for k in keys if (i := block_index(k)) is None or i < blocks]


def relative_scale(rank: int, global_rank: int, rslora: bool = False) -> float:
    """PEFT scaling of a rank-``rank`` adapter over that of the rank-``global_rank`` global model,
    for one shared ``alpha``: ``(alpha/r) / (alpha/R) = R/r`` (``sqrt(R/r)`` with rsLoRA)."""
    if rank <= 0 or global_rank <= 0:
        raise FederationError(f"LoRA ranks must be positive; got rank {rank}, global rank {global_rank}.")
    return math.sqrt(global_rank / rank) if rslora else global_rank / rank


# ----------------------------------------------------------------- rank and depth views
def truncate(state: State, rank: int | None = None, *, blocks: int | None = None, scale: float = 1.0,
             with_a: bool = True) -> "OrderedDict[str, torch.Tensor]":
    """What a client of ``rank`` and ``blocks`` depth gets from the global state.

    It gets the first ``rank`` rows of each A and the first ``rank`` columns of each B, with B
    divided by the client's ``scale`` (relative to the global model). It gets no key of block
    ``blocks`` or later. ``with_a=False`` also drops the A keys. Under ``shared_a`` the client
    builds A from the seed (:func:`install_shared_a`) and uploads only B.
    """
    pairs, _ = lora_pairs(list(state))
    a_keys = {p.a for p in pairs.values()}
    b_keys = {p.b for p in pairs.values()}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key in depth_keys(list(state), blocks):
        t = torch.as_tensor(state[key])
        if rank is not None and (key in a_keys or key in b_keys) and rank > (t.shape[0] if key in a_keys else t.shape[1]):
            raise FederationError(f"Cannot truncate `{key}` of shape {tuple(t.shape)} to rank {rank}: "
                                  "a client's rank is at most the global rank.")
        if key in a_keys:
            if not with_a:
                continue
            t = t[:rank] if rank is not None else t
        elif key in b_keys:
            t = (t[:, :rank] if rank is not None else t) / scale
        out[key] = t.clone()
    return out


def pad_to_rank(state: State, rank: int, *, scale: float = 1.0) -> "OrderedDict[str, torch.Tensor]":
    """A client's state at the global ``rank``: A padded with zero rows and B (times ``scale``)
    with zero columns. With these fixed shapes, any weighted-sum aggregator (FedAvg, DP, SecAgg)
    can run on the update as it is. Works for B-only states (``shared_a``)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        t = torch.as_tensor(value)
        if _A in key or _B in key:
            r = (t.shape[0] if _A in key else t.shape[1]) if t.ndim == 2 else rank + 1
            if r > rank:
                raise FederationError(f"`{key}` has shape {tuple(t.shape)}: not a LoRA factor of rank <= {rank}.")
            t = torch.nn.functional.pad(t, (0, 0, 0, rank - r) if _A in key else (0, rank - r))
            if _B in key:
                t = t * scale
        out[key] = t.clone()
    return out


# ------------------------------------------------------------------------- shared A
def shared_a_matrix(seed: int, module: str, in_features: int, max_rank: int,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The frozen A of ``module`` under ``shared_a``: ``max_rank x in_features``, and a client of
    rank ``r`` uses its first ``r`` rows.

    It is drawn from ``(seed, module)`` alone, so the server and every client build the same
    matrix without sending it. It is always drawn at ``max_rank`` and then sliced, because a
    smaller draw need not give the same leading rows. The distribution is PEFT's default A
    initialisation: ``kaiming_uniform_(a=sqrt(5))``, i.e. ``U(-1/sqrt(in), 1/sqrt(in))``.
    """
    g = torch.Generator().manual_seed(derive_seed(seed, "shared_a", module))
    bound = 1.0 / math.sqrt(in_features)
    return ((torch.rand(max_rank, in_features, generator=g, dtype=torch.float64) * 2 - 1) * bound).to(dtype)


def install_shared_a(state: State, seed: int, max_rank: int) -> "OrderedDict[str, torch.Tensor]":
    """``state`` with each LoRA A replaced by the leading rows of its module's shared A (the
    global state at ``max_rank``, or a client's at its own rank)."""
    pairs, _ = lora_pairs(list(state))
    out = OrderedDict((k, torch.as_tensor(v).clone()) for k, v in state.items())
    for p in pairs.values():
        a = out[p.a]
        if a.shape[0] > max_rank:
            raise FederationError(f"`{p.a}` has rank {a.shape[0]}, above the global rank {max_rank}.")
        out[p.a] = shared_a_matrix(seed, p.module, a.shape[1], max_rank, a.dtype)[: a.shape[0]].clone()
    return out


# ----------------------------------------------------------------------- aggregation
@dataclass
class LoraAggregate:
    """The new global state and what the round's aggregation did."""

    state: "OrderedDict[str, torch.Tensor]"
    """Every global key, at the global rank."""
    holders: dict[str, int] = field(default_factory=dict)
    """Clients that held each global key (0: it kept its global value)."""
    reconstruction_error: dict[str, dict[int, float]] = field(default_factory=dict)
    """``svd`` only: for each module, ``{rank: ||M - M_rank||_F / ||M||_F}`` of the mean update
    ``M``, for every client rank present and the global rank."""


def _check_weights(weights: Sequence[float], n: int) -> list[float]:
    if len(weights) != n:
        raise FederationError(f"Got {n} client states but {len(weights)} weights.")
    w = [float(x) for x in weights]
    if not all(math.isfinite(x) and x > 0 for x in w):
        raise FederationError(f"Client weights must be positive and finite; got {w}.")
    return w


def _check_client(i: int, state: State, glob: State, pairs: dict[str, LoraPair], rule: LoraRule) -> None:
    """Client ``i``'s keys and shapes fit the global state, and it has one LoRA rank throughout."""
    rank: int | None = None
    unknown = [k for k in state if k not in glob]
    if unknown:
        raise FederationError(f"Client {i} sent `{unknown[0]}`, which the global state does not have.")
    for p in pairs.values():
        has_a, has_b = p.a in state, p.b in state
        if rule == "shared_a" and has_a:
            raise FederationError(f"Client {i} sent `{p.a}` under `shared_a`: A is frozen and shared, only B travels.")
        if rule != "shared_a" and has_a != has_b:
            raise FederationError(f"Client {i} sent `{p.a if has_a else p.b}` without "
                                  f"`{p.b if has_a else p.a}`: under `{rule}` A and B travel together.")
        if not has_b:
            continue
        ga, gb, b = glob[p.a].shape, glob[p.b].shape, torch.as_tensor(state[p.b]).shape
        r = b[1] if len(b) == 2 else -1
        if len(b) != 2 or b[0] != gb[0] or r > gb[1] or r < 1:
            raise FederationError(f"Client {i} sent `{p.b}` with shape {tuple(b)}; the global B is {tuple(gb)}, "
                                  f"so a client's B must be ({gb[0]}, r) with 1 <= r <= {gb[1]}.")
        if has_a:
            a = torch.as_tensor(state[p.a]).shape
            if tuple(a) != (r, ga[1]):
                raise FederationError(f"Client {i} sent `{p.a}` with shape {tuple(a)} and `{p.b}` with shape "
                                      f"{tuple(b)}; with the global A {tuple(ga)} its A must be ({r}, {ga[1]}).")
        if rank is not None and r != rank:
            raise FederationError(f"Client {i} sent `{p.b}` at rank {r} but other modules at rank {rank}: "
                                  "one client, one rank.")
        rank = r
    for k in state:
        if _A not in k and _B not in k and tuple(torch.as_tensor(state[k]).shape) != tuple(glob[k].shape):
            raise FederationError(f"Client {i} sent `{k}` with shape {tuple(torch.as_tensor(state[k]).shape)}; "
                                  f"the global state has {tuple(glob[k].shape)}.")


def weighted_mean(global_state: State, states: Sequence[State], weights: Sequence[float]
                  ) -> tuple["OrderedDict[str, torch.Tensor]", dict[str, int]]:
    """Mean of each global key over the clients that hold it, with the weights renormalised over
    them, and the number of those clients. A key no client holds keeps its global value.

    This is the depth-partial rule. A block that only the deep clients run is averaged over
    those clients. It is not pulled towards zero by the clients that never saw it.
    """
    w = _check_weights(weights, len(states))
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    holders: dict[str, int] = {}
    for key, g in global_state.items():
        g = torch.as_tensor(g)
        held = [(torch.as_tensor(s[key]), w[i]) for i, s in enumerate(states) if key in s]
        holders[key] = len(held)
        if not held:
            out[key] = g.clone()
            continue
        for t, _ in held:
            if tuple(t.shape) != tuple(g.shape):
                raise FederationError(f"`{key}` has shape {tuple(t.shape)} in a client state but {tuple(g.shape)} "
                                      "in the global state.")
        total = sum(x for _, x in held)
        mean = sum(t.to(torch.float64) * (x / total) for t, x in held)
        out[key] = mean.to(g.dtype)
    return out, holders


def truncation_error(singular_values: torch.Tensor, rank: int) -> float:
    """Relative Frobenius error of the best rank-``rank`` approximation, ``||S[rank:]|| / ||S||``
    (0 for a zero matrix)."""
    total = float(singular_values.square().sum())
    return math.sqrt(float(singular_values[rank:].square().sum()) / total) if total > 0 else 0.0


def _svd_factor(product: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, A, S)`` with ``B = U_r S_r`` and ``A = V_r^T`` (zero-padded when the matrix has fewer than
    ``rank`` components): B @ A is the best rank-``rank`` approximation of ``product``."""
    u, s, vh = torch.linalg.svd(product, full_matrices=False)
    k = min(rank, s.numel())
    b = torch.zeros(product.shape[0], rank, dtype=product.dtype)
    a = torch.zeros(rank, product.shape[1], dtype=product.dtype)
    b[:, :k] = u[:, :k] * s[:k]
    a[:k] = vh[:k]
    return b, a, s


def aggregate_lora(global_state: State, states: Sequence[State], weights: Sequence[float], rule: LoraRule,
                   *, scales: Sequence[float] | None = None) -> LoraAggregate:
    """One round's new global state from client states of mixed ranks and depths.

    ``states[k]`` holds what client ``k`` sent: LoRA factors at its own rank, only for the blocks
    it runs. Under ``shared_a`` it holds B but not A. ``weights`` are positive (examples
    trained). ``scales[k]`` is client ``k``'s LoRA scaling relative to the global model
    (:func:`relative_scale`; default 1). A client key that the global state lacks, or whose shape
    does not fit it, raises FederationError naming the key and the shapes.
    """
    if rule not in ("zero_pad", "shared_a", "svd"):
        raise FederationError(f"Unknown LoRA aggregation rule {rule!r}; valid: zero_pad, shared_a, svd.")
    n = len(states)
    w = _check_weights(weights, n)
    s = [1.0] * n if scales is None else [float(x) for x in scales]
    if len(s) != n or not all(math.isfinite(x) and x > 0 for x in s):
        raise FederationError(f"`scales` needs one positive value per client state ({n}); got {list(s)}.")
    pairs, _ = lora_pairs(list(global_state))
    for i, st in enumerate(states):
        _check_client(i, st, global_state, pairs, rule)
    result = LoraAggregate(OrderedDict())
    if rule in ("zero_pad", "shared_a"):
        global_ranks = {int(global_state[p.b].shape[1]) for p in pairs.values()}
        if len(global_ranks) > 1:
            raise FederationError(f"The global state mixes LoRA ranks {sorted(global_ranks)}; `{rule}` pads to one rank.")
        rank = global_ranks.pop() if global_ranks else 0
        padded = [pad_to_rank(st, rank, scale=sk) for st, sk in zip(states, s)]
        result.state, result.holders = weighted_mean(global_state, padded, w)
        return result
    # svd: plain mean of the non-LoRA keys, the mean update of each module refactored.
    others = [OrderedDict((k, v) for k, v in st.items() if _A not in k and _B not in k) for st in states]
    result.state, result.holders = weighted_mean(global_state, others, w)
    for p in pairs.values():
        held = [i for i, st in enumerate(states) if p.b in st]
        result.holders[p.a] = result.holders[p.b] = len(held)
        if not held:
            continue
        total = sum(w[i] for i in held)
        product = sum((w[i] / total) * s[i] * (torch.as_tensor(states[i][p.b]).to(torch.float64)
                                               @ torch.as_tensor(states[i][p.a]).to(torch.float64)) for i in held)
        rank = int(global_state[p.a].shape[0])
        b, a, sv = _svd_factor(product, rank)
        result.state[p.a] = a.to(global_state[p.a].dtype)
        result.state[p.b] = b.to(global_state[p.b].dtype)
        client_ranks = {int(torch.as_tensor(states[i][p.a]).shape[0]) for i in held} | {rank}
        result.reconstruction_error[p.module] = {r: truncation_error(sv, r) for r in sorted(client_ranks)}
    return result
