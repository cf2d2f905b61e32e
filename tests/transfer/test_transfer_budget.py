"""Few-shot samplers: exactly k windows per class, reproducible; fractions; adaptation steps."""

import numpy as np
import pytest

from fedhar.exceptions import ConfigError, DataError
from fedhar.training.config import TrainConfig
from fedhar.transfer.adapt import adapt_train_config
from fedhar.transfer.budget import parse_budget
from fedhar.transfer.config import AdaptConfig


@pytest.mark.parametrize("k", [1, 5, 10])
def test_k_shot_is_exact_and_reproducible(synthetic, k):
    budget = parse_budget(f"k{k}")
    a, b = budget.sample(synthetic, seed=3), budget.sample(synthetic, seed=3)
    assert np.bincount(a.y, minlength=6).tolist() == [k] * 6
    assert np.array_equal(a.X, b.X)
    c = budget.sample(synthetic, seed=4)
    assert not np.array_equal(a.X, c.X)


def test_fractions_and_full_budget(synthetic):
    ten = parse_budget("10%").sample(synthetic, seed=0)
    assert np.bincount(ten.y, minlength=6).tolist() == [1] * 6  # 12 per class -> round(1.2) = 1
    assert len(parse_budget("100%").sample(synthetic)) == len(synthetic)
    assert parse_budget("5-shot").k_per_class == 5 and parse_budget(0.5).fraction == 0.5


def test_bad_budgets_are_named():
    for bad in ("k0", "150%", "few", "-3%"):
        with pytest.raises(ConfigError, match=repr(bad)):
            parse_budget(bad, "lodo.budgets")


def test_adaptation_runs_at_least_min_steps_and_at_most_max_steps():
    base = TrainConfig()
    tiny = adapt_train_config(base, AdaptConfig(epochs=2, min_steps=30, batch_size=32), ["head"], n=6)
    assert tiny.epochs == 30 and tiny.batch_size == 6 and tiny.trainable == ["head"]
    big = adapt_train_config(base, AdaptConfig(epochs=10, min_steps=5, max_steps=100, batch_size=32), ["head"], n=3200)
    assert big.epochs == 1


def test_study_budget_takes_all_windows_of_a_short_class():
    """A dataset capped by lodo.max_windows may have a class with fewer than k windows: the study's
    budget keeps all of them (and records the count) instead of stopping the run; plain
    label_budget still refuses, naming the key."""
    import numpy as np
    import pytest

    from fedhar.data.dataset import WindowDataset
    from fedhar.data.splits import label_budget
    from fedhar.exceptions import DataError
    from fedhar.transfer.budget import parse_budget

    y = np.array([0] * 12 + [1] * 3)
    ds = WindowDataset(X=np.zeros((15, 3, 8), np.float32), y=y, subject=np.zeros(15, np.int64),
                       channels=("acc_x", "acc_y", "acc_z"), units=("g",) * 3, classes=("a", "b"), rate_hz=20.0)
    got = parse_budget("k10").sample(ds, seed=0)
    assert np.bincount(got.y).tolist() == [10, 3]
    with pytest.raises(DataError, match="class `b` has 3 windows.*`data.label_budget_k`"):
        label_budget(ds, k_per_class=10)
