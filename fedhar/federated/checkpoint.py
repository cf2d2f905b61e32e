"""Per-round checkpoints of a federated run, written so that a kill at any instant loses at most
the round in progress and never corrupts a finished one.

Layout under ``RUN_DIR/checkpoint/``: ``round-NNNN/`` holds ``global_state.safetensors``,
``strategy_state.npz``, ``rounds.json`` (the metrics so far) and, under central differential
privacy, ``privacy_state.json`` (the accountant's ledger, so epsilon continues on resume);
``state.json`` names the last
finished round and is replaced atomically only after its folder is complete (the commit point).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fedhar.exceptions import FederationError
from fedhar.reporting.run_dir import write_json


@dataclass
class Checkpoint:
    round: int
    global_state: dict[str, torch.Tensor]
    strategy_state: dict[str, np.ndarray]
    rounds: list[dict]
    privacy_state: dict | None = None


def save_checkpoint(run_dir: Path, rnd: int, global_state: dict[str, torch.Tensor],
                    strategy_state: dict[str, np.ndarray], rounds: list[dict], privacy_state: dict | None = None) -> None:
    root = Path(run_dir) / "checkpoint"
    final = root / f"round-{rnd:04d}"
    tmp = root / f"round-{rnd:04d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in global_state.items()}, str(tmp / "global_state.safetensors"))
    np.savez(tmp / "strategy_state.npz", **strategy_state)
    write_json(tmp / "rounds.json", {"rounds": rounds})
    if privacy_state is not None:
        write_json(tmp / "privacy_state.json", privacy_state)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    write_json(root / "state.json", {"round": rnd, "folder": final.name})
    for old in root.glob("round-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The last finished round of ``run_dir``, or None if no round has finished yet."""
    state_file = Path(run_dir) / "checkpoint" / "state.json"
    if not state_file.exists():
        return None
    try:
        meta = json.loads(state_file.read_text())
        folder = state_file.parent / meta["folder"]
        global_state = load_file(str(folder / "global_state.safetensors"))
        with np.load(folder / "strategy_state.npz", allow_pickle=False) as z:
            strat = {k: z[k] for k in z.files}
        rounds = json.loads((folder / "rounds.json").read_text())["rounds"]
        privacy_file = folder / "privacy_state.json"
        privacy = json.loads(privacy_file.read_text()) if privacy_file.exists() else None
    except (OSError, KeyError, ValueError) as exc:
        raise FederationError(f"Checkpoint in {state_file.parent} is unreadable ({exc}); cannot resume from it.") from None
    return Checkpoint(int(meta["round"]), global_state, strat, rounds, privacy)
