"""ServerApp: 2-round FedAvg over a 2-element numpy model; writes a JSON marker file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg and record which partitions trained in each round."""
    if bool(context.run_config["fail"]):
        raise RuntimeError("deploy-app: failing on purpose (run config fail=true)")

    num_rounds = int(context.run_config["num-server-rounds"])
    out_file = str(context.run_config["out-file"])
    seen: dict[int, list[int]] = {}

    def collect(replies: list[RecordDict], weighting_key: str) -> MetricRecord:
        round_no = len(seen) + 1
        seen[round_no] = sorted(int(r["metrics"]["partition-id"]) for r in replies)
        return aggregate_metricrecords(replies, weighting_key)

    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=2,
        min_available_nodes=2,
        train_metrics_aggr_fn=collect,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros(2)]),
        num_rounds=num_rounds,
        timeout=120,
    )

    final = result.arrays.to_numpy_ndarrays()[0]
    marker = {
        "final-arrays": [float(x) for x in final],
        "partition-ids-per-round": {str(k): v for k, v in seen.items()},
        "num-rounds": num_rounds,
        "serverapp-pid": os.getpid(),
    }
    if out_file:
        path = Path(out_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(marker, indent=2), encoding="utf-8")
        tmp.replace(path)
