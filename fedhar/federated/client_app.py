"""fedhar's Flower ClientApp: one client = one local dataset partition.

Thin by design: unpack the Message, call :mod:`fedhar.federated.task`, pack the reply. Only
the trainable state (frontend + LoRA + head + normaliser) travels; the frozen backbone is
built once per worker process by :func:`~fedhar.federated.task.get_task`.

Differential privacy on the client (``federated.privacy.mode`` ``central_client``: Flower's
clipping mods; ``local``: ``LocalDpMod``) runs as a mod around the train handler
(:func:`privacy_mod`), chosen from the config the message carries.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedhar.config import ExperimentConfig, build_config, config_to_dict
from fedhar.exceptions import FederationError
from fedhar.federated.privacy import client_mod
from fedhar.federated.task import FederatedTask, get_task
from fedhar.quiet import install_known_filters

install_known_filters()  # Ray workers and SuperNodes import this module, not the CLI

CONFIG_KEY = "fedhar-config"

app = ClientApp()


def config_record(cfg: ExperimentConfig) -> ConfigRecord:
    """The one channel by which the server's resolved config reaches clients: its YAML text in
    every message (a Deployment Engine ClientApp is a fresh process per message), read back by
    :func:`_config` once per process."""
    return ConfigRecord({CONFIG_KEY: yaml.safe_dump(config_to_dict(cfg), sort_keys=True)})


@lru_cache(maxsize=4)
def _config(text: str) -> ExperimentConfig:
    return build_config(yaml.safe_load(text), source="server config")


def _context(msg: Message, context: Context) -> tuple[FederatedTask, int]:
    task = get_task(_config(str(msg.content["config"][CONFIG_KEY])))
    pid = int(context.node_config["partition-id"])
    expected = int(context.node_config.get("num-partitions", task.num_clients))
    if expected != task.num_clients:
        raise FederationError(
            f"this SuperNode says num-partitions={expected}, but the configuration yields {task.num_clients} clients."
        )
    return task, pid


def privacy_mod(msg: Message, context: Context, call_next) -> Message:
    """Flower's client-side DP mod for the message's ``federated.privacy`` (none: pass through). It
    clips (and, under local DP, noises) the reply the train handler built, as Flower's mods do."""
    text = msg.content.config_records.get("config", ConfigRecord()).get(CONFIG_KEY)
    mod = client_mod(_config(str(text)).federated.privacy) if text is not None else None
    return mod(msg, context, call_next) if mod is not None else call_next(msg, context)


@app.train(mods=[privacy_mod])
def train(msg: Message, context: Context) -> Message:
    task, pid = _context(msg, context)
    config = msg.content["config"]
    state = msg.content["arrays"].to_torch_state_dict()
    new_state, metrics, n = task.train_client(
        state, pid, int(config["server-round"]), float(config.get("proximal-mu", 0.0))
    )
    if set(new_state) == set(state):  # in the server's key order: Flower's DP mods compare the key lists
        new_state = {k: new_state[k] for k in state}
    reply = RecordDict({
        "arrays": ArrayRecord(new_state),
        "metrics": MetricRecord({**metrics, "num-examples": n, "partition-id": pid}),
    })
    return Message(content=reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    task, pid = _context(msg, context)
    metrics, n = task.evaluate_client(msg.content["arrays"].to_torch_state_dict(), pid)
    reply = RecordDict({"metrics": MetricRecord({
        "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "loss": metrics["loss"],
        "num-examples": n, "partition-id": pid,
    })})
    return Message(content=reply, reply_to=msg)


@app.query("stats")
def stats(msg: Message, context: Context) -> Message:
    """Per-channel count/sum/sum-of-squares, so the server can pool an exact normaliser."""
    task, pid = _context(msg, context)
    s = task.local_stats(pid)
    reply = RecordDict({"stats": ArrayRecord([np.asarray(s["count"]), s["sum"], s["sumsq"]]),
                        "metrics": MetricRecord({"partition-id": pid})})
    return Message(content=reply, reply_to=msg)
