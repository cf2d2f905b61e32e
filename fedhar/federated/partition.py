"""Client partitions with flwr-datasets partitioners: natural units (subject, device, dataset,
dataset x subject), IID, or Dirichlet label skew. Returns row indices into the training WindowDataset.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import ConfigError, DataError
from fedhar.federated.config import FederatedConfig


def _unit_column(ds: WindowDataset, partition: str) -> np.ndarray:
    if partition == "subject":
        return ds.subject.astype(str)
    if partition == "device":
        if ds.device is None:
            raise DataError(f"`federated.partition: device` but dataset `{ds.name}` has no device column.")
        return ds.device
    if partition in ("dataset", "dataset_subject"):
        source = np.asarray(ds.extras["dataset"]).astype(str) if "dataset" in ds.extras else np.full(len(ds), ds.name)
        if partition == "dataset":
            return source  # a single dataset: one client
        return np.char.add(np.char.add(source, ":"), ds.subject.astype(str))
    raise ConfigError(f"`federated.partition` {partition!r} is not a natural unit.")


def partition_indices(ds: WindowDataset, cfg: FederatedConfig, seed: int = 0) -> list[np.ndarray]:
    """One index array per client, in a fixed order (sorted unit ids for natural partitions)."""
    from datasets import Dataset
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, NaturalIdPartitioner

    table = {"row": np.arange(len(ds)), "label": ds.y}
    if cfg.partition in ("subject", "device", "dataset", "dataset_subject"):
        units = _unit_column(ds, cfg.partition)
        uniq = np.unique(units)
        if cfg.num_clients and cfg.num_clients < len(uniq):
            # Fewer clients than units: client i holds every num_clients-th unit (sorted order).
            group = {u: f"{i % cfg.num_clients:06d}" for i, u in enumerate(uniq)}
            units = np.array([group[u] for u in units])
        elif cfg.num_clients and cfg.num_clients > len(uniq):
            if not cfg.split_units:
                raise ConfigError(f"`federated.num_clients` is {cfg.num_clients} but the data has only {len(uniq)} "
                                  f"{cfg.partition} units; set `federated.split_units: true` to cut units into shards.")
            units = split_units(units, cfg.num_clients)
        # NaturalIdPartitioner numbers units in order of appearance; sort rows by unit so client i
        # is always the i-th unit in sorted order, independent of file order.
        order = np.argsort(units, kind="stable")
        table = {"row": table["row"][order], "label": table["label"][order], "unit": units[order]}
        partitioner = NaturalIdPartitioner(partition_by="unit")
    elif cfg.partition == "iid":
        partitioner = IidPartitioner(num_partitions=int(cfg.num_clients))
    else:
        partitioner = DirichletPartitioner(
            num_partitions=int(cfg.num_clients), partition_by="label", alpha=cfg.dirichlet_alpha,
            min_partition_size=1, self_balancing=False, seed=seed,
        )
    partitioner.dataset = Dataset.from_dict(table)
    with contextlib.redirect_stderr(io.StringIO()):  # NaturalIdPartitioner's tqdm bar, once per process
        parts = [np.asarray(partitioner.load_partition(i)["row"], dtype=np.int64) for i in range(partitioner.num_partitions)]
    if any(len(p) == 0 for p in parts):
        raise DataError(f"Partition `{cfg.partition}` produced an empty client; use fewer clients or a larger alpha.")
    return parts


def shard_counts(sizes: np.ndarray, clients: int) -> np.ndarray:
    """Shards per unit: ``clients`` shared in proportion to unit sizes (largest remainder), at least
    one each and never more than a unit has windows."""
    if clients > sizes.sum():
        raise ConfigError(f"`federated.num_clients` is {clients} but the data has only {int(sizes.sum())} windows.")
    quota = sizes / sizes.sum() * clients
    counts = np.clip(np.floor(quota).astype(int), 1, sizes)
    while counts.sum() != clients:
        if counts.sum() < clients:
            room = np.where(counts < sizes, quota - counts, -np.inf)
            counts[int(np.argmax(room))] += 1
        else:
            room = np.where(counts > 1, counts - quota, -np.inf)
            counts[int(np.argmax(room))] -= 1
    return counts


def split_units(units: np.ndarray, clients: int) -> np.ndarray:
    """Unit ids cut into ``clients`` shards: each unit's rows, in their order, go to consecutive
    shards ``<unit>#<k>`` of near-equal size."""
    uniq, sizes = np.unique(units, return_counts=True)
    out = units.astype(object).copy()
    for u, k in zip(uniq, shard_counts(sizes, clients)):
        rows = np.flatnonzero(units == u)
        for i, block in enumerate(np.array_split(rows, k)):
            out[block] = f"{u}#{i:04d}"
    return out.astype(str)


def local_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A client's own train/test rows (seeded shuffle; at least one training row)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = min(int(round(test_fraction * n)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def chronological_local_split(ds: WindowDataset, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A client's own train/test rows by time: its last days are its test windows."""
    from fedhar.data.splits import chronological_rows

    if "day" not in ds.extras:
        raise DataError(f"`federated.local_split: chronological` needs a `day` column; dataset `{ds.name}` has none "
                        "(event data from the smarthome format has one).")
    if test_fraction <= 0:
        return np.arange(len(ds)), np.zeros(0, dtype=np.int64)
    return chronological_rows(ds.extras["day"], test_fraction)
