"""aggregate(): per-seed rows into cells, pooled over units, with one paired verdict per group."""

from __future__ import annotations

import math

import pytest
from scipy import stats as st

from fedhar.reporting.seeds import SeedTable, aggregate, csv_rows, pivot_markdown, variant_label
from fedhar.reporting.stats import StatsConfig

LODO = SeedTable(keys=("held_out", "variant", "mode", "budget"), variant=("variant", "mode"), groups=("budget",),
                 units=("held_out",))
PRE, NONE = "pretrained LLM", "no LLM"

# macro_f1 per (variant, budget, held_out) over seeds 0, 1, 2 (mode "head" throughout)
F1 = {
    (PRE, "k1", "uci"): [0.80, 0.82, 0.84], (PRE, "k1", "wisdm"): [0.60, 0.62, 0.64],
    (NONE, "k1", "uci"): [0.70, 0.71, 0.75], (NONE, "k1", "wisdm"): [0.50, 0.52, 0.53],
    (PRE, "k5", "uci"): [0.90, 0.91, 0.92], (PRE, "k5", "wisdm"): [0.70, 0.69, 0.72],
    (NONE, "k5", "uci"): [0.91, 0.90, 0.92], (NONE, "k5", "wisdm"): [0.69, 0.71, 0.70],
}


def per_seed_rows():
    return {seed: [{"held_out": h, "variant": v, "mode": "head", "budget": b, "macro_f1": vals[i],
                    "accuracy": vals[i] + 0.05} for (v, b, h), vals in F1.items()]
            for i, seed in enumerate((0, 1, 2))}


def find(cells, **key):
    [c] = [c for c in cells if all(c.get(k) == v for k, v in key.items())]
    return c["metrics"]


@pytest.fixture(scope="module")
def agg():
    return aggregate(per_seed_rows(), LODO, StatsConfig())


def test_header(agg):
    assert agg["seeds"] == [0, 1, 2] and agg["metric"] == "macro_f1" and agg["alpha"] == 0.05
    assert agg["keys"] == ["held_out", "variant", "mode", "budget"] and agg["units"] == ["held_out"]
    assert "ttest_rel" in agg["test"] and "t-interval" in agg["interval"]


def test_cells_mean_std_and_per_seed_values(agg):
    assert len(agg["cells"]) == 8
    pre = find(agg["cells"], held_out="uci", variant=PRE, budget="k1")["macro_f1"]
    # mean (0.80 + 0.82 + 0.84) / 3 = 0.82; deviations ±0.02, 0 -> std sqrt(0.0008 / 2) = 0.02
    assert pre["mean"] == pytest.approx(0.82) and pre["std"] == pytest.approx(0.02) and pre["n"] == 3
    assert pre["values"] == {"0": 0.80, "1": 0.82, "2": 0.84}
    # ci: 0.82 ± t_{0.975,2} (4.302653) * 0.02 / sqrt(3) = 0.82 ± 0.0496828
    assert pre["ci95"] == pytest.approx([0.82 - 0.0496828, 0.82 + 0.0496828], abs=1e-6)
    none = find(agg["cells"], held_out="uci", variant=NONE, budget="k1")["macro_f1"]
    # mean 2.16 / 3 = 0.72; deviations -0.02, -0.01, 0.03 -> squares 0.0014; std sqrt(0.0014 / 2) = 0.0264575
    assert none["mean"] == pytest.approx(0.72) and none["std"] == pytest.approx(math.sqrt(0.0007))
    assert find(agg["cells"], held_out="uci", variant=PRE, budget="k1")["accuracy"]["mean"] == pytest.approx(0.87)


def test_pooled_is_the_mean_over_units_per_seed(agg):
    assert len(agg["pooled"]) == 4 and all("held_out" not in c for c in agg["pooled"])
    pre = find(agg["pooled"], variant=PRE, budget="k1")["macro_f1"]
    # per seed (uci + wisdm) / 2: 0.70, 0.72, 0.74 -> mean 0.72, std 0.02
    assert pre["values"] == pytest.approx({"0": 0.70, "1": 0.72, "2": 0.74})
    assert pre["mean"] == pytest.approx(0.72) and pre["std"] == pytest.approx(0.02)
    none = find(agg["pooled"], variant=NONE, budget="k1")["macro_f1"]
    # per seed: 0.60, 0.615, 0.64 -> mean 0.618333; deviations -0.018333, -0.003333, 0.021667
    # squares 0.00081667 -> std sqrt(0.00081667 / 2) = 0.0202073
    assert none["mean"] == pytest.approx(1.855 / 3) and none["std"] == pytest.approx(0.0202073, abs=1e-6)


def test_one_verdict_per_budget_paired_on_seed_and_held_out(agg):
    by_budget = {v["budget"]: v for v in agg["verdicts"]}
    assert set(by_budget) == {"k1", "k5"}
    k1 = by_budget["k1"]
    assert k1["verdict"] == "best" and k1["leader"] == variant_label({"variant": PRE, "mode": "head"}, LODO.variant)
    assert k1["leader"] == "pretrained LLM (head)" and k1["runner_up"] == "no LLM (head)"
    # pairs (seed, held_out), d = pre - none: uci 0.10, 0.11, 0.09; wisdm 0.10, 0.10, 0.11
    # mean 0.61 / 6 = 0.1016667; squares of deviations 2.83333e-4 -> sd sqrt(2.83333e-4 / 5) = 0.00752773
    # t = 0.1016667 / (0.00752773 / sqrt(6)) = 33.0822, df 5
    t = (0.61 / 6) / (math.sqrt(2.83333333e-4 / 5) / math.sqrt(6))
    assert t == pytest.approx(33.0822, abs=1e-3)
    assert k1["comparisons"]["no LLM (head)"]["n"] == 6
    assert k1["p"] == pytest.approx(2 * st.t.sf(t, 5), rel=1e-4)
    k5 = by_budget["k5"]
    # d: uci -0.01, 0.01, 0; wisdm 0.01, -0.02, 0.02 -> mean 0.01 / 6; far from significant
    assert k5["verdict"] == "tie" and k5["tied"] == ["pretrained LLM (head)", "no LLM (head)"] and k5["p"] > 0.5


def test_csv_rows_columns(agg):
    rows = csv_rows(agg["cells"])
    assert len(rows) == 8
    # the key columns, then per metric (in the rows' order) mean, std, n and the interval
    assert list(rows[0]) == ["held_out", "variant", "mode", "budget",
                             "macro_f1_mean", "macro_f1_std", "macro_f1_n", "macro_f1_ci_low", "macro_f1_ci_high",
                             "accuracy_mean", "accuracy_std", "accuracy_n", "accuracy_ci_low", "accuracy_ci_high"]
    assert rows[0]["held_out"] == "uci" and rows[0]["macro_f1_mean"] == pytest.approx(0.82)
    assert rows[0]["macro_f1_n"] == 3 and rows[0]["macro_f1_ci_low"] < rows[0]["macro_f1_mean"] < rows[0]["macro_f1_ci_high"]


def test_pivot_markdown_variants_down_budgets_across(agg):
    lines = pivot_markdown(agg["pooled"], LODO, "macro_f1")
    assert lines[0] == "| variant / mode | k1 | k5 |"
    # k5 pooled per seed: (0.90 + 0.70) / 2 = 0.80, 0.80, 0.82 -> 0.8067 ± 0.0115
    assert lines[2] == "| pretrained LLM (head) | 0.720 ± 0.020 | 0.807 ± 0.012 |"
    assert lines[3] == "| no LLM (head) | 0.618 ± 0.020 | 0.805 ± 0.005 |"


def test_a_table_without_keys_or_units_takes_text_columns_and_pools_nothing():
    rows = {0: [{"model": "a", "macro_f1": 0.9}, {"model": "b", "macro_f1": 0.8}],
            1: [{"model": "a", "macro_f1": 0.8}, {"model": "b", "macro_f1": 0.7}]}
    agg = aggregate(rows, SeedTable(variant=("model",)))
    assert agg["keys"] == ["model"] and agg["pooled"] == agg["cells"]
    assert find(agg["cells"], model="a")["macro_f1"]["mean"] == pytest.approx(0.85)
    # d = a - b = 0.1 both seeds: no spread, p = 0 under ttest -> a is best
    [v] = agg["verdicts"]
    assert v["verdict"] == "best" and v["leader"] == "a" and v["p"] == 0.0


def test_a_single_seed_keeps_its_value_without_std():
    agg = aggregate({3: [{"macro_f1": 0.9}]}, SeedTable())
    [cell] = agg["cells"]
    assert cell["metrics"]["macro_f1"] == {"mean": 0.9, "std": None, "n": 1, "ci95": None, "values": {"3": 0.9}}
    assert agg["verdicts"] == [] and agg["seeds"] == [3]
