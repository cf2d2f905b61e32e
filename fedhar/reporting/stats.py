"""Statistics over seeds: mean ± std with a 95% interval, paired tests, and "best or tie" verdicts.

Everything here is ``scipy.stats``; fedhar adds only the bookkeeping. The unit of a summary is
one seed's value (a t-interval over seeds). A comparison is paired: two variants are compared on
the same (seed, unit) pairs — a unit is whatever a study repeats inside one seed, such as a
held-out dataset or a client — so the same seed and the same budget draw meet each other.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Hashable, Literal, Mapping, Sequence

import numpy as np

from fedhar.exceptions import ConfigError

INTERVAL = "95% t-interval over seeds (scipy.stats.t)"
TESTS = {"ttest": "paired t-test (scipy.stats.ttest_rel)", "wilcoxon": "Wilcoxon signed-rank test (scipy.stats.wilcoxon)"}


@dataclass
class StatsConfig:
    """How runs over several seeds are compared (``seeds:``; ``fedhar compare``)."""

    test: Literal["ttest", "wilcoxon"] = field(default="ttest", metadata={"help": "Paired test of the leader against each other variant: ttest (paired t-test) or wilcoxon (signed-rank; needs at least 6 pairs to reach p < 0.05)."})
    alpha: float = field(default=0.05, metadata={"help": "Significance level: a leader is declared best only when p < alpha against the runner-up; otherwise the report says tie."})
    confidence: float = field(default=0.95, metadata={"help": "Confidence level of the t-interval over seeds."})

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ConfigError(f"`stats.test` must be one of {', '.join(TESTS)}; got {self.test!r}.")
        for key in ("alpha", "confidence"):
            if not 0 < getattr(self, key) < 1:
                raise ConfigError(f"`stats.{key}` must be in (0, 1); got {getattr(self, key)}.")


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values
            if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)]


def summarize(values: Sequence[Any], confidence: float = 0.95) -> dict:
    """``{mean, std, n, ci95}`` of the finite numbers in ``values`` (std with ddof=1; the interval
    is Student's t over the values; both None for a single value)."""
    from scipy import stats

    vals = _finite(values)
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci95": None}
    mean = float(np.mean(vals))
    if n == 1:
        return {"mean": mean, "std": None, "n": 1, "ci95": None}
    std = float(np.std(vals, ddof=1))
    sem = std / math.sqrt(n)
    lo, hi = (mean, mean) if sem == 0 else stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return {"mean": mean, "std": std, "n": n, "ci95": [float(lo), float(hi)]}


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "ttest") -> dict:
    """Two-sided paired test of ``a`` against ``b`` (same order = same pairs).

    Returns ``{test, n, mean_diff, p}``; ``p`` is None with fewer than two pairs, and 1.0 when
    every difference is zero (nothing separates them).
    """
    from scipy import stats

    if test not in TESTS:
        raise ConfigError(f"`stats.test`: unknown test {test!r}; choose one of {', '.join(TESTS)}.")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_test needs pairs: got {x.size} and {y.size} values.")
    d = x - y
    out = {"test": test, "n": int(d.size), "mean_diff": float(d.mean()) if d.size else None, "p": None}
    if d.size < 2:
        return out
    if np.allclose(d, 0.0, atol=1e-12):
        out["p"] = 1.0
    elif test == "ttest":
        if np.allclose(d, d[0], atol=1e-12):  # the same nonzero difference every time: no spread to test
            out["p"] = 0.0
        else:
            out["p"] = float(stats.ttest_rel(x, y).pvalue)
    else:
        out["p"] = float(stats.wilcoxon(x, y).pvalue)
    return out


def verdict(samples: Mapping[str, Mapping[Hashable, float]], test: str = "ttest", alpha: float = 0.05,
            higher_is_better: bool = True) -> dict:
    """Which variant is best, or which tie.

    ``samples[variant][pair_key] = value`` (pair_key: a (seed, unit) tuple). The leader has the best
    mean; it is declared ``best`` only when it beats the runner-up under the paired test on their
    common pairs at ``alpha``. Otherwise the verdict is ``tie``, listing the leader and every
    variant the leader does not beat at ``alpha``. Each comparison is kept with its p-value.
    """
    means = {v: float(np.mean(_finite(list(s.values())))) for v, s in samples.items() if _finite(list(s.values()))}
    if not means:
        return {"verdict": "n/a", "leader": None, "tied": [], "comparisons": {}}
    order = sorted(means, key=lambda v: means[v], reverse=higher_is_better)
    leader = order[0]
    comparisons = {}
    for other in order[1:]:
        common = [k for k in samples[leader] if k in samples[other]
                  and _finite([samples[leader][k]]) and _finite([samples[other][k]])]
        res = paired_test([samples[leader][k] for k in common], [samples[other][k] for k in common], test)
        comparisons[other] = {**res, "mean": means[other], "significant": res["p"] is not None and res["p"] < alpha}
    out: dict = {"leader": leader, "mean": means[leader], "test": test, "alpha": alpha, "comparisons": comparisons}
    if len(order) == 1:
        return {**out, "verdict": "only", "tied": [leader], "runner_up": None}
    runner = order[1]
    if comparisons[runner]["significant"]:
        return {**out, "verdict": "best", "tied": [leader], "runner_up": runner, "p": comparisons[runner]["p"]}
    tied = [leader] + [v for v in order[1:] if not comparisons[v]["significant"]]
    return {**out, "verdict": "tie", "tied": tied, "runner_up": runner, "p": comparisons[runner]["p"]}


def describe_verdict(v: Mapping[str, Any]) -> str:
    """One line: ``best: X (p=0.012 against Y)`` or ``tie: X, Y (p=0.31 against Y)``."""
    if v.get("verdict") == "best":
        return f"best: **{v['leader']}** (p={v['p']:.3g} against {v['runner_up']})"
    if v.get("verdict") == "tie":
        p = "n/a (too few pairs)" if v.get("p") is None else f"{v['p']:.3g}"
        return f"tie: {', '.join(v['tied'])} (leader {v['leader']}; p={p} against {v['runner_up']})"
    if v.get("verdict") == "only":
        return f"only {v['leader']}"
    return "n/a"


def fmt(s: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``0.939 ± 0.004`` (``0.939`` for one seed, ``n/a`` for none)."""
    if not s or s.get("mean") is None:
        return "n/a"
    if s.get("std") is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def fmt_ci(s: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not s or not s.get("ci95"):
        return "n/a"
    lo, hi = s["ci95"]
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"
