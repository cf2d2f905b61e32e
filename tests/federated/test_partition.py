import numpy as np
import pytest

from fedhar.data import make_synthetic
from fedhar.exceptions import ConfigError
from fedhar.federated.config import FederatedConfig
from fedhar.federated.partition import local_split, partition_indices
from fedhar.federated.task import derive_seed


@pytest.fixture
def ds():
    return make_synthetic(n_per_class=12, subjects=6, seed=0, window=32)


def test_subject_partition_one_client_per_subject(ds):
    parts = partition_indices(ds, FederatedConfig(partition="subject"))
    assert len(parts) == 6
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(ds)))
    assert all(len(np.unique(ds.subject[p])) == 1 for p in parts)
    assert [int(ds.subject[p][0]) for p in parts] == sorted(np.unique(ds.subject).tolist())


def test_grouped_subjects_when_fewer_clients(ds):
    parts = partition_indices(ds, FederatedConfig(partition="subject", num_clients=2))
    assert len(parts) == 2 and all(len(np.unique(ds.subject[p])) == 3 for p in parts)
    with pytest.raises(ConfigError, match="only 6 subject units.*split_units"):
        partition_indices(ds, FederatedConfig(partition="subject", num_clients=9))


def test_split_units_gives_one_person_per_client_and_the_asked_count(ds):
    parts = partition_indices(ds, FederatedConfig(partition="subject", num_clients=20, split_units=True))
    assert len(parts) == 20
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(ds)))
    assert all(len(np.unique(ds.subject[p])) == 1 for p in parts)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 2  # equal-sized subjects: near-equal shards
    for p in parts:  # consecutive rows of one subject's recording
        rows = np.flatnonzero(ds.subject == ds.subject[p[0]])
        pos = np.searchsorted(rows, p)
        assert (np.diff(pos) == 1).all()


def test_shard_counts_follow_sizes_and_refuse_too_many():
    from fedhar.federated.partition import shard_counts

    assert shard_counts(np.array([10, 30, 60]), 10).tolist() == [1, 3, 6]
    assert shard_counts(np.array([1, 50]), 5).tolist() == [1, 4]
    with pytest.raises(ConfigError, match="only 3 windows"):
        shard_counts(np.array([1, 2]), 4)


def test_iid_and_dirichlet(ds):
    iid = partition_indices(ds, FederatedConfig(partition="iid", num_clients=4))
    assert len(iid) == 4 and sum(map(len, iid)) == len(ds)
    a = partition_indices(ds, FederatedConfig(partition="dirichlet", num_clients=3, dirichlet_alpha=0.1), seed=1)
    b = partition_indices(ds, FederatedConfig(partition="dirichlet", num_clients=3, dirichlet_alpha=0.1), seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # strong label skew: some client's majority class holds most of its windows
    shares = [np.bincount(ds.y[p]).max() / len(p) for p in a]
    assert max(shares) > 0.5


def test_seeds_and_local_split():
    assert derive_seed(0, 3, 2) == derive_seed(0, 3, 2) != derive_seed(0, 2, 3)
    tr, te = local_split(10, 0.2, seed=5)
    assert len(te) == 2 and len(tr) == 8 and not set(tr) & set(te)
    assert np.array_equal(local_split(10, 0.2, seed=5)[1], te)


def test_dataset_partition_after_concat():
    from fedhar.data import concat

    a = make_synthetic(n_per_class=4, subjects=2, seed=0, window=32).replace(name="alpha")
    b = make_synthetic(n_per_class=6, subjects=3, seed=1, window=32).replace(name="beta")
    both = concat([a, b])
    parts = partition_indices(both, FederatedConfig(partition="dataset"))
    assert [len(p) for p in parts] == [len(a), len(b)]
    assert set(both.extras["dataset"][parts[1]]) == {"beta"}


def test_dataset_subject_partition_gives_one_client_per_pair(synthetic):
    from fedhar.data import concat
    from fedhar.federated.config import FederatedConfig
    from fedhar.federated.partition import partition_indices

    a = synthetic.replace(name="a")
    b = synthetic.subset(np.flatnonzero(synthetic.subject < 2)).replace(name="b")  # one subject
    both = concat([a, b])
    parts = partition_indices(both, FederatedConfig(partition="dataset_subject"))
    assert len(parts) == len(np.unique(a.subject)) + len(np.unique(b.subject)) == 5
    for p in parts:
        assert len(set(both.extras["dataset"][p])) == 1 and len(set(both.subject[p])) == 1
