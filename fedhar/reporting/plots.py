"""Plots people would rather look at than read; headless (Agg) and saved as PNG."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: Figure, path: Path, title: str = "", **layout) -> None:
    """Title the figure (when given), lay it out, write the PNG and free it."""
    if title:
        fig.suptitle(title)
    fig.tight_layout(**layout)
    _write(fig, path)


def _write(fig: Figure, path: Path) -> None:
    """Write a laid-out figure as PNG and free it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusion_matrix_png(path: Path, matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> None:
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised colour, counts)")
    _save(fig, path)


def curves_figure(rows: Sequence[Mapping], x: str, series: Mapping[str, Sequence[str]], title: str = "") -> Figure:
    """One panel per group in ``series`` (``{"loss": ["train_loss", "test_loss"], ...}``); whole
    epochs and rounds get whole-number ticks, and rounds start at 0 (the initial model) when
    round 0 was measured."""
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
    xs_all = [r[x] for r in rows if r.get(x) is not None]
    for ax, (panel, keys) in zip(axes[0], series.items()):
        for key in keys:
            pts = [(r[x], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=key, clip_on=False)
        _x_axis(ax, x, xs_all)
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _x_axis(ax, x: str, values: Sequence) -> None:
    """Label the x axis; integer ticks for integer values (no epoch 2.5), round 0 at the origin."""
    ax.set_xlabel(x)
    if values and all(float(v).is_integer() for v in values):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if x == "round" and 0 in values:
        ax.set_xlim(left=0)


def curves_png(path: Path, rows: Sequence[Mapping], x: str, series: Mapping[str, Sequence[str]], title: str = "") -> None:
    """:func:`curves_figure` as a PNG."""
    _write(curves_figure(rows, x, series, title), path)


def matrices_png(path: Path, matrices: Mapping[str, Sequence[Sequence[float | None]]], names: Sequence[str],
                 title: str = "", value: str = "accuracy") -> None:
    """One heatmap per label of ``R[i][j]``: score on phase j (columns) after training through phase i (rows)."""
    n = len(matrices)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    size = 0.55 * len(names) + 1.6
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (label, R) in zip(axes.flat, matrices.items()):
        m = np.array([[np.nan if v is None else v for v in row] for row in R], dtype=float)
        ax.imshow(m, cmap="viridis", vmin=0, vmax=1)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if m[i, j] > 0.6 else "white")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel(f"{value} on phase", fontsize=8)
        ax.set_ylabel("after training on", fontsize=8)
        ax.set_title(_wrap(label, int(size * 9)), fontsize=9)
    _save(fig, path, title or f"R[i][j] ({value})")


def _wrap(label: str, width: int) -> str:
    """A panel title on as many lines as it needs, so that long model labels do not run into the
    neighbouring panel's title; ``model / strategy`` breaks at the slash first."""
    return "\n".join(textwrap.fill(part, max(width, 10)) for part in label.split(" / "))


def timeline_png(path: Path, series: Mapping[str, Sequence[tuple[float, float]]], changes: Sequence[tuple[float, str]],
                 xlabel: str, ylabel: str, title: str = "") -> None:
    """Lines over time with each phase change marked by a dashed line and its name."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, pts in series.items():
        pts = [(x, y) for x, y in pts if y is not None and np.isfinite(y)]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", label=label)
    for x, name in changes:
        ax.axvline(x, color="grey", ls="--", lw=0.8)
        ax.text(x, 1.01, name, rotation=0, fontsize=7, ha="left", va="bottom", transform=ax.get_xaxis_transform())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    _save(fig, path, title)


MODE_STYLES: dict[str, tuple[object, str, bool]] = {
    "full": ("-", "o", True), "head": ("--", "s", False),
    "target": (":", "^", False), "source+target": ("-.", "D", True),
}
"""Line style, marker and filled marker per adaptation mode, so modes differ in all three (a short
dash in a legend is easily read as a solid line; the marker tells it apart)."""
EXTRA_STYLES: list[tuple[object, str, bool]] = [((0, (5, 1, 1, 1, 1, 1)), "v", True), ((0, (1, 1)), "P", False),
                                                ((0, (8, 2)), "X", True), ((0, (3, 3)), "*", False)]
"""Styles for modes not in :data:`MODE_STYLES`, handed out in order of appearance."""

ZERO_SHOT = "zero-shot"
"""The budget with no target labels: one point per model, whatever the mode."""

SeriesKey = Union[str, tuple[str, str]]


def split_series(key: str | tuple[str, str]) -> tuple[str, str]:
    """``(model, mode)`` of a series: a tuple as is; ``"pretrained LLM (smollm2-135m) (full)"`` split
    at its last parenthesis, so a model label may hold parentheses of its own."""
    if isinstance(key, tuple):
        return key
    if key.endswith(")") and " (" in key:
        model, mode = key.rsplit(" (", 1)
        return model, mode[:-1]
    return key, ""


def mode_styles(modes: Sequence[str]) -> dict[str, tuple[object, str, bool]]:
    extra = iter(EXTRA_STYLES * (1 + len(modes) // len(EXTRA_STYLES)))
    return {m: MODE_STYLES[m] if m in MODE_STYLES else next(extra) for m in modes}


def _budget_order(series: Mapping) -> list[str]:
    order: list[str] = []
    for pts in series.values():
        order.extend(b for b, _ in pts if b not in order)
    return order


def _budget_panel(ax, panel: str, series: Mapping, colours: dict, styles: dict) -> None:
    """One held-out dataset: each series at its budgets, nudged sideways per model so that
    markers at the same budget stay apart; a model's zero-shot score (shared by its modes, no
    adaptation) is one star, where its mode lines start."""
    order = _budget_order(series)
    models = list(colours)
    for key, pts in series.items():
        model, mode = split_series(key)
        ls, marker, filled = styles[mode]
        nudge = (models.index(model) - (len(models) - 1) / 2) * 0.04
        xs = [order.index(b) + nudge for b, _ in pts]
        first = 1 if pts and pts[0][0] == ZERO_SHOT else 0
        ax.plot(xs, [v for _, v in pts], linestyle=ls, marker=marker, markevery=list(range(first, len(pts))),
                markersize=5, lw=1.4, color=colours[model], markerfacecolor=colours[model] if filled else "white",
                label=f"{model} ({mode})" if mode else model)
        if first:
            ax.plot(xs[:1], [pts[0][1]], linestyle="", marker="*", markersize=10, color=colours[model],
                    markeredgecolor="black", markeredgewidth=0.5, label=f"{model} ({ZERO_SHOT})")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
    ax.set_title(f"held out: {panel}")
    ax.set_xlabel("labelled target windows")
    ax.grid(alpha=0.3)


def _budget_legends(fig: Figure, colours: dict, styles: dict, zero_shot: bool) -> None:
    """Two legends right of the panels: the colour of each model, the line and marker of each mode."""
    model_handles = [Line2D([], [], color=c, lw=3) for c in colours.values()]
    fig.legend(model_handles, list(colours), title="model (colour)", fontsize=8, title_fontsize=8,
               loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False)
    mode_handles = [Line2D([], [], color="0.25", linestyle=ls, marker=mk, markerfacecolor="0.25" if filled else "white",
                           markersize=6, lw=1.4) for ls, mk, filled in styles.values()]
    labels = [m or "(none)" for m in styles]
    if zero_shot:
        mode_handles.append(Line2D([], [], linestyle="", marker="*", markersize=10, color="0.25",
                                   markeredgecolor="black", markeredgewidth=0.5))
        labels.append(f"{ZERO_SHOT} (none)")
    fig.legend(mode_handles, labels, title="adapted (line, marker)", fontsize=8,
               title_fontsize=8, loc="lower left", bbox_to_anchor=(1.0, 0.15), frameon=False, handlelength=4.5)


def budget_curves_figure(panels: Mapping[str, Mapping[SeriesKey, Sequence[tuple[str, float]]]], title: str = "") -> Figure:
    """One panel per held-out dataset: score against label budget (categorical x), one line per
    series ``(model, mode)`` (or ``"model (mode)"``): colour per model, line style and marker per mode."""
    keys = [split_series(k) for series in panels.values() for k in series]
    models = list(dict.fromkeys(m for m, _ in keys))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    styles = mode_styles(list(dict.fromkeys(mode for _, mode in keys)))
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.4), squeeze=False, sharey=True)
    for ax, (panel, series) in zip(axes[0], panels.items()):
        _budget_panel(ax, panel, series, colours, styles)
    axes[0][0].set_ylabel("macro-F1")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    zero_shot = any(pts and pts[0][0] == ZERO_SHOT for series in panels.values() for pts in series.values())
    _budget_legends(fig, colours, styles, zero_shot)
    return fig


def budget_curves_png(path: Path, panels: Mapping[str, Mapping[SeriesKey, Sequence[tuple[str, float]]]],
                      title: str = "") -> None:
    """:func:`budget_curves_figure` as a PNG (widened to hold the legends right of the panels)."""
    fig = budget_curves_figure(panels, title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def gain_distribution_png(path: Path, gains: Mapping[str, Sequence[float]], title: str = "") -> None:
    """Per-client gains (personalised minus global score), one box + points per strategy."""
    names = list(gains)
    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(names), 4.0))
    data = [np.asarray(gains[n], dtype=float) for n in names]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=12, alpha=0.7)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("macro-F1 gain over the global model")
    ax.set_title(title or "per-client personalisation gain")
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def sweep_png(path: Path, rows: Sequence[Mapping], xlabel: str, log_x: bool = False, title: str = "") -> None:
    """Macro-F1, trainable parameters and training seconds against the swept value, per model."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        xs = [float(r["value"]) for r in mine]
        for ax, key in zip(axes, ("macro_f1", "trainable_params", "train_seconds")):
            ax.plot(xs, [r[key] for r in mine], marker="o", label=variant)
    for ax, name in zip(axes, ("macro-F1", "trainable parameters", "training seconds")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        if log_x:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    _save(fig, path, title)


def grouped_bars_png(path: Path, groups: Mapping[str, Mapping[str, float]], ylabel: str, title: str = "") -> None:
    """One group of bars per key of ``groups`` (e.g. a home), one bar per inner key (e.g. a model)."""
    names: list[str] = []
    for g in groups.values():
        names.extend(n for n in g if n not in names)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) * max(1, len(names)) / 3), 4.2))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(groups))]
        ax.bar(xs, [g.get(name, 0.0) for g in groups.values()], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], list(groups))
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _save(fig, path)


def errorbars_png(path: Path, series: Mapping[str, Sequence[tuple[str, float, float]]], ylabel: str, title: str = "") -> None:
    """Mean ± std over seeds: one line per series across categorical x (groups such as label
    budgets), or bars with error bars when every series has a single point."""
    xs = list(dict.fromkeys(x for pts in series.values() for x, _, _ in pts))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(xs) + 3 if len(xs) > 1 else 0.9 * len(series) + 3), 4.2))
    if len(xs) <= 1:
        names = list(series)
        means = [series[n][0][1] for n in names]
        stds = [series[n][0][2] for n in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=5, color="#4c78a8")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    else:
        for i, (name, pts) in enumerate(series.items()):
            pos = {x: xs.index(x) + (i - len(series) / 2) * 0.03 for x, _, _ in pts}  # small dodge: bars stay apart
            ax.errorbar([pos[x] for x, _, _ in pts], [m for _, m, _ in pts], yerr=[s for _, _, s in pts], marker="o",
                        capsize=3, label=name)
        ax.set_xticks(range(len(xs)), xs, rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=7, loc="best")
    ax.set_ylabel(f"{ylabel} (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    _save(fig, path, title)
