"""Plots a reader can tell apart: every budget line distinguishable, whole-number epochs and rounds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from fedhar.reporting.plots import (budget_curves_figure, budget_curves_png, curves_figure, curves_png, split_series)

MODELS = {"pretrained LLM (smollm2-135m, first 8 blocks)": ("head", "full"), "random-init LLM": ("head", "full"),
          "no LLM": ("head", "full"), "classical RF": ("target", "source+target")}
BUDGETS = ["k=1 (6)", "k=5 (30)", "10% (200)"]


def panels() -> dict:
    """What the LODO study passes: per held-out dataset, ``(variant, mode)`` -> zero-shot then budgets."""
    return {held: {(m, mode): [("zero-shot", 0.3)] + [(b, 0.4 + 0.1 * i + 0.01 * j) for j, b in enumerate(BUDGETS)]
                   for i, (m, modes) in enumerate(MODELS.items()) for mode in modes}
            for held in ("uci_har", "wisdm")}


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_budget_lines_of_different_modes_differ_and_legends_are_unique():
    fig = budget_curves_figure(panels(), "title")
    try:
        lines = {line.get_label(): line for line in fig.axes[0].lines if "zero-shot" not in line.get_label()}
        assert len(lines) == sum(len(m) for m in MODELS.values())
        style = {label: (line.get_linestyle(), line.get_marker(), line.get_markerfacecolor() == (1, 1, 1, 1) or
                         line.get_markerfacecolor() == "white") for label, line in lines.items()}
        pre = "pretrained LLM (smollm2-135m, first 8 blocks)"
        head, full = style[f"{pre} (head)"], style[f"{pre} (full)"]
        assert head[0] != full[0] and head[1] != full[1]
        rf_target, rf_both = style["classical RF (target)"], style["classical RF (source+target)"]
        assert len({head, full, rf_target, rf_both}) == 4
        # One model, one colour; different models, different colours.
        assert lines[f"{pre} (head)"].get_color() == lines[f"{pre} (full)"].get_color()
        assert lines[f"{pre} (head)"].get_color() != lines["no LLM (head)"].get_color()
        texts = legend_texts(fig)
        assert len(texts) == len(set(texts))
        assert set(MODELS) <= set(texts) and {"head", "full", "target", "source+target"} <= set(texts)
        assert any("zero-shot" in t for t in texts)
    finally:
        plt.close(fig)


def test_budget_modes_beyond_the_known_ones_still_get_their_own_style():
    series = {("m", mode): [("k=1", 0.5), ("k=5", 0.6)] for mode in ("full", "a", "b", "c")}
    fig = budget_curves_figure({"x": series})
    try:
        styles = {(line.get_linestyle(), line.get_marker()) for line in fig.axes[0].lines}
        assert len(styles) == 4
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name, parts", [("pretrained LLM (smollm2-135m, first 8 blocks) (full)",
                                          ("pretrained LLM (smollm2-135m, first 8 blocks)", "full")),
                                         ("no LLM (head)", ("no LLM", "head")), ("no LLM", ("no LLM", "")),
                                         (("a (b)", "full"), ("a (b)", "full"))])
def test_split_series_takes_the_mode_from_the_last_parenthesis(name, parts):
    assert split_series(name) == parts


def test_budget_png_is_written(tmp_path):
    path = tmp_path / "f1_vs_budget.png"
    budget_curves_png(path, panels(), "macro-F1 against label budget")
    assert path.stat().st_size > 10_000


def tick_labels(ax) -> list[str]:
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


def test_epoch_curves_have_whole_number_ticks(tmp_path):
    rows = [{"epoch": e, "train_loss": 1.0 / e, "macro_f1": 0.1 * e} for e in range(1, 6)]
    fig = curves_figure(rows, "epoch", {"loss": ["train_loss"], "score": ["macro_f1"]})
    try:
        for ax in fig.axes:
            labels = tick_labels(ax)
            assert labels and all(t.lstrip("\u2212-").isdigit() for t in labels), labels
    finally:
        plt.close(fig)
    curves_png(tmp_path / "curve.png", rows, "epoch", {"loss": ["train_loss"]})
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_round_axis_starts_at_the_initial_model_when_round_zero_was_measured():
    rows = [{"round": r, "macro_f1": 0.1 * r, "train_loss": None if r == 0 else 1.0 / r} for r in range(0, 4)]
    fig = curves_figure(rows, "round", {"score": ["macro_f1"], "loss": ["train_loss"]})
    try:
        for ax in fig.axes:  # both panels, though round 0 has no training loss
            assert ax.get_xlim()[0] == 0
            assert tick_labels(ax)[0] == "0"
    finally:
        plt.close(fig)
    later = curves_figure([{"round": r, "macro_f1": 0.1 * r} for r in range(1, 4)], "round", {"score": ["macro_f1"]})
    try:
        assert later.axes[0].get_xlim()[0] < 1 and later.axes[0].get_xlim()[0] > 0  # no round 0: no claim of one
    finally:
        plt.close(later)
