"""A tiered federation's views of the global state (``federated.tiers``).

Which tier each client is, the slice of the global state the server sends it, and the part of its
trained state it sends back. The server and every client derive the same answers from the config
and the run seed, so neither the tier assignment nor the shared A ever travels.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import torch

from fedhar.federated.config import FederatedConfig
from fedhar.federated.lora_aggregation import (LoraRule, block_index, install_shared_a, lora_pairs, relative_scale,
                                               truncate)
from fedhar.federated.tiers import TierConfig, assign_tiers

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Fleet:
    """The tier of every client and how the tiers' LoRA slices relate to the global model's."""

    tiers: tuple[TierConfig, ...]
    """The configured tiers, in ``federated.tiers`` order."""
    clients: tuple[TierConfig, ...]
    """The tier of each partition id."""
    rule: LoraRule
    global_rank: int
    """The global model's LoRA rank (``model.backbone.lora.r``); every tier's rank is at most this."""
    seed: int
    parts: str = "shared"
    """``federated.tier_parts``: one frontend and head for every depth, or one per tier depth."""

    @classmethod
    def of(cls, fcfg: FederatedConfig, global_rank: int, num_clients: int, seed: int) -> "Fleet | None":
        """The run's fleet, or None for a homogeneous federation (no ``federated.tiers``)."""
        tiers = fcfg.tier_configs()
        if not tiers:
            return None
        return cls(tuple(tiers), tuple(assign_tiers(tiers, num_clients, seed)), fcfg.lora_rule(), global_rank, seed,
                   fcfg.tier_parts)

    # ------------------------------------------------------- per-depth parts
    def _depth_prefix(self, pid: int) -> str | None:
        """Under ``per_depth``, where the global state keeps client ``pid``'s frontend and head:
        ``tier_depth_<blocks>.<key>`` for a tier shallower than the deepest one, None (the plain
        keys, the global model's own) for the deepest tiers and under ``shared``."""
        blocks = self.clients[pid].blocks
        if self.parts != "per_depth" or blocks >= max(t.blocks for t in self.tiers):
            return None
        return f"tier_depth_{blocks}."

    @staticmethod
    def _part_keys(keys) -> list[str]:
        """The keys outside the backbone blocks and LoRA: frontend, head, normaliser."""
        return [k for k in keys if ".lora_A." not in k and ".lora_B." not in k and block_index(k) is None
                and not k.startswith("tier_depth_")]

    def central(self, state: State) -> "OrderedDict[str, torch.Tensor]":
        """The global model's own state: ``state`` without the shallower depths' parts."""
        return OrderedDict((k, v) for k, v in state.items() if not k.startswith("tier_depth_"))

    def depth_parts(self, state: State) -> "OrderedDict[str, torch.Tensor]":
        """The shallower depths' parts of the global state (empty under ``shared``)."""
        return OrderedDict((k, v) for k, v in state.items() if k.startswith("tier_depth_"))

    def to_global(self, state: State, pid: int) -> dict:
        """Client ``pid``'s reply under the global state's keys: its frontend and head renamed to its
        depth's copy (under ``per_depth``), so each depth is averaged over its own clients."""
        prefix = self._depth_prefix(pid)
        if prefix is None:
            return dict(state)
        parts = set(self._part_keys(state))
        return {(prefix + k if k in parts else k): v for k, v in state.items()}

    def tier(self, pid: int) -> TierConfig:
        return self.clients[pid]

    def index(self, pid: int) -> int:
        """Position of client ``pid``'s tier in ``federated.tiers`` (metrics carry numbers, not names)."""
        return [t.name for t in self.tiers].index(self.clients[pid].name)

    def scale(self, pid: int) -> float:
        """Client ``pid``'s PEFT scaling over the global model's (one alpha, different ranks)."""
        return relative_scale(self.clients[pid].rank, self.global_rank)

    def initial(self, state: State) -> "OrderedDict[str, torch.Tensor]":
        """The first global state: under ``shared_a`` its A is the seeded shared A, which no one trains."""
        out = OrderedDict((k, torch.as_tensor(v)) for k, v in state.items())
        if self.rule == "shared_a":
            out = install_shared_a(out, self.seed, self.global_rank)
        prefixes = sorted({p for pid in range(len(self.clients)) if (p := self._depth_prefix(pid))})
        for prefix in prefixes:  # every depth starts from the same frontend and head
            out.update((prefix + k, out[k].clone()) for k in self._part_keys(state))
        return out

    def slice_for(self, global_state: State, pid: int) -> "OrderedDict[str, torch.Tensor]":
        """What the server sends client ``pid``: its rank and blocks of the global state, B rescaled
        to its PEFT scaling, and under ``shared_a`` no A (the client draws it from the seed)."""
        t = self.clients[pid]
        own = self.central(global_state)
        if (prefix := self._depth_prefix(pid)) is not None:
            own.update((k, global_state[prefix + k]) for k in self._part_keys(own))
        return truncate(own, t.rank, blocks=t.blocks, scale=self.scale(pid), with_a=self.rule != "shared_a")

    def complete(self, received: State, model_state: State) -> dict:
        """The client's full trainable state from what it ``received``: under ``shared_a`` the A
        keys of its own model (``model_state``), replaced by the leading rows of the shared A."""
        if self.rule != "shared_a":
            return dict(received)
        pairs, _ = lora_pairs(list(model_state))
        with_a = {**{p.a: model_state[p.a] for p in pairs.values()}, **received}
        return dict(install_shared_a(with_a, self.seed, self.global_rank))

    def reply(self, state: State) -> "OrderedDict[str, torch.Tensor]":
        """What a client sends back: everything it trained, which under ``shared_a`` excludes A."""
        if self.rule != "shared_a":
            return OrderedDict(state)
        pairs, _ = lora_pairs(list(state))
        frozen = {p.a for p in pairs.values()}
        return OrderedDict((k, v) for k, v in state.items() if k not in frozen)

    def frozen_keys(self, keys: list[str]) -> list[str]:
        """Keys a client must not train: the shared A under ``shared_a``."""
        if self.rule != "shared_a":
            return []
        pairs, _ = lora_pairs(keys)
        return sorted(p.a for p in pairs.values())


def state_bytes(state: State) -> int:
    """Bytes of a state's tensors, the size of an upload."""
    return int(sum(torch.as_tensor(v).numel() * torch.as_tensor(v).element_size() for v in state.values()))
