"""Federated scale and communication: seconds per round and peak memory for 10, 30 and 100
virtual clients on one machine (Flower's Simulation Engine, Ray), and the bytes each round
moves against the trainable-state floor and against full-model FL.

The total data is fixed (a stratified sample of UCI-HAR's training subjects, split IID over the
clients), so more clients means the same compute in more, smaller messages: what grows is the
per-client overhead. Each Ray actor process builds the frozen backbone once and reuses it for
every client it runs (``fedhar.federated.task.get_task``), so memory grows with the number of
actors (``backend_cpus / client_cpus``), not with the number of clients.

    python benchmarks/federated_scale.py --out runs/bench
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from common import iid_federation, md_table, PeakMemory, section_main, write_section
from fedhar.federated.run import run_federated


def scale_config(num_clients: int, rounds: int, smoke: bool, run_name: str):
    return iid_federation(num_clients, rounds, smoke, layers=8, batch_size=16, name=run_name, client_cpus=1.0, backend_cpus=2)


def run(out: Path, smoke: bool = False, clients: tuple[int, ...] = (10, 30, 100), rounds: int = 2) -> dict:
    if smoke:
        clients, rounds = (2, 4), 1
    rows = []
    for n in clients:
        cfg = scale_config(n, rounds, smoke, f"scale_{n}")
        t0 = time.perf_counter()
        with PeakMemory() as mem:
            results = run_federated(cfg, out=str(out / "federated_runs" / f"clients_{n}"), force=True)  # a benchmark measures anew
        wall = time.perf_counter() - t0
        comm = results["communication"]
        per_round = [r["seconds"] for r in results["rounds"]]
        train_msgs = sum((r.get("clients") or 0) for r in results["rounds"])
        floor = comm["messages"] * comm["update_bytes"]
        rows.append({"clients": n, "rounds": len(per_round), "seconds_per_round": sum(per_round) / len(per_round),
                     "seconds_last_round": per_round[-1], "wall_seconds": wall,
                     "peak_rss_gb": mem.peak_rss / 1e9, "peak_pss_gb": mem.peak_pss / 1e9,
                     "bytes_per_round": comm["total_bytes"] / len(per_round),
                     "mb_per_round": comm["total_bytes"] / len(per_round) / 1e6, "messages": comm["messages"],
                     "train_messages": train_msgs, "update_bytes": comm["update_bytes"],
                     "overhead_ratio": comm["total_bytes"] / floor, "ratio_to_full_model": comm["ratio_to_full_model"],
                     "final_macro_f1": results["final"].get("macro_f1")})
        print(f"  {n} clients: {rows[-1]['seconds_per_round']:.1f} s/round, peak PSS {rows[-1]['peak_pss_gb']:.2f} GB, "
              f"overhead x{rows[-1]['overhead_ratio']:.4f}", flush=True)
    md = ("### Federated scale (Simulation Engine, 2 Ray actors of 1 CPU, 8-block LLM + LoRA, bf16; fixed total data: "
          "3,000 UCI-HAR windows split IID)\n\n"
          + md_table(rows, [("clients", "clients", ""), ("seconds_per_round", "s / round (mean)", ".1f"),
                            ("seconds_last_round", "s last round", ".1f"), ("peak_pss_gb", "peak PSS GB", ".2f"),
                            ("peak_rss_gb", "peak RSS GB", ".2f"), ("final_macro_f1", "macro-F1", ".3f")])
          + "\n\n### Communication (all messages, both directions, as counted by Flower's `count_bytes()`)\n\n"
          + md_table(rows, [("clients", "clients", ""), ("mb_per_round", "MB / round", ".1f"), ("messages", "messages", ""),
                            ("update_bytes", "trainable bytes (floor) per message", ","),
                            ("overhead_ratio", "bytes / floor", ".4f"), ("ratio_to_full_model", "bytes / full-model FL", ".4f")])
          + "\n")
    payload = {"rows": rows}
    write_section(out, "federated_scale", payload, md)
    return {"payload": payload, "markdown": md}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    section_main(lambda out, smoke, clients, rounds: run(out, smoke, tuple(int(c) for c in clients.split(",")), rounds), __doc__,
                 [(("--clients",), {"default": "10,30,100"}), (("--rounds",), {"type": int, "default": 2})])
