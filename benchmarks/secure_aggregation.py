"""Secure aggregation's cost: the same federation with plain FedAvg and with Flower's SecAgg+
(``federated.secure_aggregation: secaggplus``, Flower's legacy workflow path), side by side:
seconds per round, bytes up and down (Flower's ``count_bytes()``), final macro-F1, and SecAgg+'s
per-round rounding bound and clipped values.

The total data is fixed (a stratified sample of UCI-HAR's training subjects, split IID over the
clients); the model is the 2-block LLM + LoRA of ``configs/robustness.yaml``.

    python benchmarks/secure_aggregation.py --out runs/bench
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from common import iid_federation, md_table, section_main, write_section
from fedhar.federated.run import run_federated


def secagg_config(mode: str, num_clients: int, rounds: int, smoke: bool):
    # max_weight a little above the largest client (about 170 training windows each at full size,
    # 17 at smoke size): SecAgg+ scales each update by num-examples / max_weight before
    # quantising, so a loose bound costs precision (fedhar warns when it is 10x too loose).
    return iid_federation(num_clients, rounds, smoke, layers=2, batch_size=32, name=f"secagg_{mode}_{num_clients}",
                          secure_aggregation=mode, secagg={"max_weight": 40 if smoke else 400})


def run(out: Path, smoke: bool = False, clients: int = 10, rounds: int = 3) -> dict:
    if smoke:
        clients, rounds = 4, 1
    rows = []
    for mode in ("none", "secaggplus"):
        cfg = secagg_config(mode, clients, rounds, smoke)
        t0 = time.perf_counter()
        results = run_federated(cfg, out=str(out / "secagg_runs" / mode), force=True)  # a benchmark measures anew
        wall = time.perf_counter() - t0
        comm, per_round = results["communication"], [r["seconds"] for r in results["rounds"]]
        sa = results.get("secure_aggregation") or {}
        bounds = [r.get("rounding_bound") for r in sa.get("rounds", []) if r.get("rounding_bound") is not None]
        rows.append({"aggregation": "FedAvg" if mode == "none" else "SecAgg+ (FedAvg)", "clients": clients,
                     "rounds": len(per_round), "seconds_per_round": sum(per_round) / len(per_round),
                     "wall_seconds": wall, "mb_up_per_round": comm["bytes_up"] / len(per_round) / 1e6,
                     "mb_down_per_round": comm["bytes_down"] / len(per_round) / 1e6,
                     "mb_per_round": comm["total_bytes"] / len(per_round) / 1e6,
                     "final_macro_f1": results["final"].get("macro_f1"),
                     "rounding_bound": max(bounds) if bounds else None,
                     "clipped_values": sum(int(r.get("clipped", 0)) for r in sa.get("rounds", []))})
        print(f"  {rows[-1]['aggregation']}: {rows[-1]['seconds_per_round']:.2f} s/round, "
              f"{rows[-1]['mb_per_round']:.2f} MB/round", flush=True)
    plain, secure = rows
    ratios = {k: secure[k] / plain[k] for k in ("seconds_per_round", "mb_up_per_round", "mb_down_per_round", "mb_per_round")}
    md = (f"### Secure aggregation (SecAgg+ on Flower's legacy workflow) against plain FedAvg: {clients} clients, "
          f"{rounds} rounds, {'tiny model' if smoke else '2-block LLM + LoRA, bf16, 3,000 UCI-HAR windows split IID'}\n\n"
          + md_table(rows, [("aggregation", "aggregation", ""), ("seconds_per_round", "s / round", ".2f"),
                            ("mb_up_per_round", "MB up / round", ".2f"), ("mb_down_per_round", "MB down / round", ".2f"),
                            ("final_macro_f1", "macro-F1", ".3f"), ("rounding_bound", "rounding bound per value", ".2e"),
                            ("clipped_values", "clipped values", "")])
          + f"\n\nSecAgg+ / FedAvg: time per round x{ratios['seconds_per_round']:.2f}, bytes up "
            f"x{ratios['mb_up_per_round']:.2f}, bytes down x{ratios['mb_down_per_round']:.2f}, all bytes "
            f"x{ratios['mb_per_round']:.2f}.\n")
    payload = {"rows": rows, "ratios": ratios}
    write_section(out, "secure_aggregation", payload, md)
    return {"payload": payload, "markdown": md}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    section_main(lambda out, smoke, clients, rounds: run(out, smoke, int(clients), rounds), __doc__,
                 [(("--clients",), {"type": int, "default": 10}), (("--rounds",), {"type": int, "default": 3})])
