"""ClientApp: one "training" step that pulls the 2-element model towards a per-node target."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Move the global arrays halfway (``lr``) towards ``[pid + 1, -(pid + 1)]``."""
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    lr = float(context.run_config["lr"])

    weights = msg.content["arrays"].to_numpy_ndarrays()[0]
    target = np.array([partition_id + 1.0, -(partition_id + 1.0)])
    new_weights = weights + lr * (target - weights)

    metrics = MetricRecord(
        {
            "partition-id": partition_id,
            "num-partitions": num_partitions,
            "num-examples": 10,
            "train-loss": float(np.square(target - weights).mean()),
        }
    )
    content = RecordDict({"arrays": ArrayRecord([new_weights]), "metrics": metrics})
    return Message(content=content, reply_to=msg)
