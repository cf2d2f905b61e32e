"""Plots people would rather look at than read; headless (Agg) and saved as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path, title: str = "", **layout) -> None:
    """Title the figure (when given), lay it out, write the PNG and free it."""
    if title:
        fig.suptitle(title)
    fig.tight_layout(**layout)
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


def curves_png(path: Path, rows: Sequence[Mapping], x: str, series: Mapping[str, Sequence[str]], title: str = "") -> None:
    """One panel per group in ``series`` (``{"loss": ["train_loss", "test_loss"], ...}``)."""
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
    for ax, (panel, keys) in zip(axes[0], series.items()):
        for key in keys:
            pts = [(r[x], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=key)
        ax.set_xlabel(x)
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path, title)


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
        ax.set_title(label, fontsize=9)
    _save(fig, path, title or f"R[i][j] ({value})")


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


def budget_curves_png(path: Path, panels: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]], title: str = "") -> None:
    """One panel per held-out dataset: score against label budget (categorical x), one line per
    series ``"model (mode)"``: one colour per model, dashed for ``(head)`` and ``(target)``."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.6), squeeze=False, sharey=True)
    models: list[str] = []
    for series in panels.values():
        models.extend(m for m in (name.split(" (")[0] for name in series) if m not in models)
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    for ax, (panel, series) in zip(axes[0], panels.items()):
        order: list[str] = []
        for pts in series.values():
            order.extend(b for b, _ in pts if b not in order)
        for name, pts in series.items():
            xs = [order.index(b) for b, _ in pts]
            style = "--" if name.endswith(("(head)", "(target)")) else "-"
            ax.plot(xs, [v for _, v in pts], style, marker="o", markersize=3, color=colours[name.split(" (")[0]], label=name)
        ax.set_xticks(range(len(order)), order, rotation=30, fontsize=8)
        ax.set_title(f"held out: {panel}")
        ax.set_xlabel("labelled target windows")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("macro-F1")
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = max(1, min(len(labels), 2 * n))
    rows = -(-len(labels) // ncol)
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=ncol)
    _save(fig, path, title, rect=(0, 0.02 + 0.045 * rows, 1, 1))


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
