"""Statistics over seeds against values worked out by hand: summaries, paired tests, verdicts."""

from __future__ import annotations

import math

import pytest
from scipy import stats as st

from fedhar.exceptions import ConfigError
from fedhar.reporting.stats import StatsConfig, describe_verdict, fmt, fmt_ci, paired_test, summarize, verdict

T_975_2 = 4.302653  # Student t quantile t_{0.975, df=2} (statistics tables)

# A paired set used below: a - b = d = [0.02, 0.05, 0.04, 0.01]
A = [0.80, 0.85, 0.90, 0.88]
B = [0.78, 0.80, 0.86, 0.87]
# mean(d) = 0.12 / 4 = 0.03
# deviations: -0.01, 0.02, 0.01, -0.02 -> squares sum 0.0001 + 0.0004 + 0.0001 + 0.0004 = 0.001
# sd(d) = sqrt(0.001 / 3) = 0.0182574; se = sd / sqrt(4) = 0.0091287
# t = 0.03 / 0.0091287 = 3.286335 with df = 3
T_HAND = 0.03 / (math.sqrt(0.001 / 3) / math.sqrt(4))
P_HAND = 2 * st.t.sf(T_HAND, df=3)  # two-sided: ~0.0462


def test_summarize_three_values_by_hand():
    s = summarize([0.90, 0.92, 0.94])
    # mean = 2.76 / 3 = 0.92; deviations -0.02, 0, 0.02 -> sum of squares 0.0008; / (n-1=2) = 0.0004; std = 0.02
    assert s["mean"] == pytest.approx(0.92) and s["std"] == pytest.approx(0.02) and s["n"] == 3
    # ci = 0.92 ± t_{0.975,2} * 0.02 / sqrt(3) = 0.92 ± 4.302653 * 0.0115470 = 0.92 ± 0.0496828
    half = T_975_2 * 0.02 / math.sqrt(3)
    assert half == pytest.approx(0.0496828, abs=1e-6)
    assert s["ci95"] == pytest.approx([0.92 - half, 0.92 + half], abs=1e-6)


def test_summarize_other_confidence_and_constant_values():
    # 90%: t_{0.95,2} = 2.919986 -> 0.92 ± 2.919986 * 0.0115470 = 0.92 ± 0.0337171
    assert summarize([0.90, 0.92, 0.94], confidence=0.90)["ci95"] == pytest.approx([0.8862829, 0.9537171], abs=1e-6)
    # no spread: std 0 and the interval collapses onto the mean
    s = summarize([0.5, 0.5])
    assert s["std"] == 0.0 and s["ci95"] == [0.5, 0.5]


def test_summarize_one_value_has_no_std_nor_interval_and_non_numbers_are_dropped():
    assert summarize([0.7]) == {"mean": 0.7, "std": None, "n": 1, "ci95": None}
    assert summarize([0.7, float("nan"), None, "x", True]) == {"mean": 0.7, "std": None, "n": 1, "ci95": None}
    assert summarize([]) == {"mean": None, "std": None, "n": 0, "ci95": None}


def test_paired_ttest_matches_the_hand_computed_t():
    assert T_HAND == pytest.approx(3.286335, abs=1e-6)
    r = paired_test(A, B, "ttest")
    assert r["test"] == "ttest" and r["n"] == 4
    assert r["mean_diff"] == pytest.approx(0.03)
    assert r["p"] == pytest.approx(P_HAND, rel=1e-6)
    assert 0.046 < r["p"] < 0.047
    # the test is symmetric in p and antisymmetric in the difference
    r2 = paired_test(B, A, "ttest")
    assert r2["p"] == pytest.approx(r["p"]) and r2["mean_diff"] == pytest.approx(-0.03)


def test_wilcoxon_exact_p_for_six_positive_differences():
    # n = 6, every difference positive and distinct: W- = 0, the most extreme of 2^6 = 64 equally
    # likely sign patterns on each side -> two-sided exact p = 2 / 64 = 0.03125
    a = [1.1, 1.2, 1.3, 1.4, 1.5, 1.6]
    r = paired_test(a, [1.0] * 6, "wilcoxon")
    assert r["p"] == pytest.approx(2 / 64) and r["n"] == 6 and r["mean_diff"] == pytest.approx(0.35)
    # with five pairs the best possible is 2 / 32 = 0.0625: never below 0.05
    assert paired_test(a[:5], [1.0] * 5, "wilcoxon")["p"] == pytest.approx(2 / 32)


def test_paired_test_edge_cases():
    assert paired_test([0.9, 0.8], [0.9, 0.8])["p"] == 1.0  # nothing separates them
    assert paired_test([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])["p"] == 0.0  # the same 0.1 every time under ttest
    one = paired_test([0.9], [0.8])
    assert one["p"] is None and one["n"] == 1 and one["mean_diff"] == pytest.approx(0.1)
    assert paired_test([], [])["mean_diff"] is None
    with pytest.raises(ValueError, match="pairs"):
        paired_test([0.9, 0.8], [0.9])
    with pytest.raises(ConfigError, match="stats.test"):
        paired_test([0.9, 0.8], [0.7, 0.6], "sign")


def _keyed(values):
    return {(seed,): v for seed, v in enumerate(values)}


def test_verdict_best_when_the_leader_beats_the_runner_up():
    v = verdict({"a": _keyed(A), "b": _keyed(B)}, "ttest", 0.05)
    # mean(A) = 0.8575 > mean(B) = 0.8275; p = 0.0462 < 0.05 on the four (seed,) pairs
    assert v["verdict"] == "best" and v["leader"] == "a" and v["runner_up"] == "b" and v["tied"] == ["a"]
    assert v["mean"] == pytest.approx(0.8575) and v["p"] == pytest.approx(P_HAND, rel=1e-6)
    assert v["comparisons"]["b"]["significant"] and v["comparisons"]["b"]["mean"] == pytest.approx(0.8275)
    assert describe_verdict(v) == f"best: **a** (p={P_HAND:.3g} against b)"


def test_verdict_tie_at_a_stricter_alpha_and_lists_only_the_unbeaten():
    # c is far below a: d = a - c = [0.10, 0.11, 0.12, 0.10], mean 0.1075, sd 0.0095743, t = 22.46 (df 3) -> p ~ 2e-4
    c = [a - d for a, d in zip(A, [0.10, 0.11, 0.12, 0.10])]
    v = verdict({"c": _keyed(c), "b": _keyed(B), "a": _keyed(A)}, "ttest", 0.01)
    assert v["verdict"] == "tie" and v["leader"] == "a" and v["runner_up"] == "b"
    assert v["tied"] == ["a", "b"]  # b is not beaten at 0.01 (p = 0.046); c is
    assert v["comparisons"]["c"]["significant"] and v["comparisons"]["c"]["p"] < 0.001
    assert describe_verdict(v).startswith("tie: a, b (leader a; p=0.0462 against b)")


def test_verdict_lower_is_better_only_and_unpaired():
    v = verdict({"a": _keyed(A), "b": _keyed(B)}, "ttest", 0.05, higher_is_better=False)
    assert v["leader"] == "b" and v["verdict"] == "best"
    assert verdict({"a": _keyed(A)})["verdict"] == "only"
    assert verdict({})["verdict"] == "n/a" and describe_verdict(verdict({})) == "n/a"
    # no common pairs: no p, so no variant is declared best
    apart = verdict({"a": {(0,): 0.9, (1,): 0.91}, "b": {(2,): 0.5, (3,): 0.4}})
    assert apart["verdict"] == "tie" and apart["p"] is None and "too few pairs" in describe_verdict(apart)


def test_stats_config_validation_names_the_key():
    assert StatsConfig() == StatsConfig(test="ttest", alpha=0.05, confidence=0.95)
    with pytest.raises(ConfigError, match=r"`stats.alpha`.*1.5"):
        StatsConfig(alpha=1.5)
    with pytest.raises(ConfigError, match=r"`stats.confidence`"):
        StatsConfig(confidence=0.0)


def test_formatting():
    s = summarize([0.90, 0.92, 0.94])
    assert fmt(s) == "0.920 ± 0.020" and fmt(summarize([0.9])) == "0.900" and fmt(None) == "n/a"
    assert fmt_ci(s) == "[0.870, 0.970]" and fmt_ci(summarize([0.9])) == "n/a"
