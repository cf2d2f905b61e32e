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


def test_k_larger_than_a_class_raises(synthetic):
    with pytest.raises(DataError, match="fewer than the 20 asked"):
        parse_budget("k20").sample(synthetic)


def test_adaptation_runs_at_least_min_steps_and_at_most_max_steps():
    base = TrainConfig()
    tiny = adapt_train_config(base, AdaptConfig(epochs=2, min_steps=30, batch_size=32), ["head"], n=6)
    assert tiny.epochs == 30 and tiny.batch_size == 6 and tiny.trainable == ["head"]
    big = adapt_train_config(base, AdaptConfig(epochs=10, min_steps=5, max_steps=100, batch_size=32), ["head"], n=3200)
    assert big.epochs == 1
