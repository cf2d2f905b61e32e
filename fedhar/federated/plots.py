"""The two plots of a federated run: scores per round (from round 0, the initial model) and the
bytes sent so far beside what full-model FL would have sent. Headless (Agg), saved as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import math  # noqa: E402

from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

SCORES = {"accuracy": "held-out accuracy (global model)", "macro_f1": "held-out macro-F1 (global model)",
          "fed_macro_f1": "clients' local macro-F1 (mean)"}
"""Score keys of a round row and how the legend names them."""


def _points(rows: Sequence[Mapping], key: str) -> tuple[list[int], list[float]]:
    pts = [(int(r["round"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])


def _rounds_axis(ax, last: int) -> None:
    ax.set_xlim(-0.2, max(1, last) + 0.2)
    ax.set_xlabel("round (0 = initial model)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _save(fig, path: Path, title: str) -> None:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rounds_png(path: Path, rows: Sequence[Mapping], title: str = "") -> None:
    """Scores and the clients' mean training loss per round; ``rows`` start at round 0 when the
    initial model was evaluated (it has no training loss and no clients' score)."""
    fig, (score, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in SCORES.items():
        xs, ys = _points(rows, key)
        if xs:
            score.plot(xs, ys, marker="o", label=label)
    score.set_ylabel("score")
    score.legend(fontsize=8)
    xs, ys = _points(rows, "train_loss")
    if xs:
        loss.plot(xs, ys, marker="o", color="tab:red", label="clients' training loss (mean)")
        loss.legend(fontsize=8)
    loss.set_ylabel("training loss")
    last = max((int(r["round"]) for r in rows), default=1)
    for ax in (score, loss):
        _rounds_axis(ax, last)
    _save(fig, path, title)


def cumulative_mb(rows: Sequence[Mapping], full_model_bytes: int) -> tuple[list[int], list[float], list[float]]:
    """(rounds from 0, MB sent so far up and down, MB full-model FL would have sent for the same messages)."""
    xs, sent, full = [0], [0.0], [0.0]
    for r in sorted((r for r in rows if int(r["round"]) > 0), key=lambda r: int(r["round"])):
        messages = int(r.get("messages_up") or 0) + int(r.get("messages_down") or 0)
        xs.append(int(r["round"]))
        sent.append(sent[-1] + ((r.get("bytes_up") or 0) + (r.get("bytes_down") or 0)) / 1e6)
        full.append(full[-1] + messages * full_model_bytes / 1e6)
    return xs, sent, full


def bytes_png(path: Path, rows: Sequence[Mapping], full_model_bytes: int, title: str = "") -> None:
    """Cumulative MB sent (up + down) per round beside full-model FL's, on a log scale (linear near 0,
    so round 0 shows) because the two differ by orders of magnitude."""
    xs, sent, full = cumulative_mb(rows, full_model_bytes)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(xs, full, marker="s", linestyle="--", color="tab:gray",
            label=f"full-model FL (all {full_model_bytes / 1e6:.1f} MB of weights per message)")
    ax.plot(xs, sent, marker="o", color="tab:blue", label="this run: trainable state only (up + down)")
    positive = [v for v in sent + full if v > 0]
    if positive:
        ax.set_yscale("symlog", linthresh=10 ** math.floor(math.log10(min(positive))))
        ax.set_ylim(0, 10 ** math.ceil(math.log10(max(positive))))  # a labelled decade above the top
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("MB sent so far (log scale)")
    _rounds_axis(ax, xs[-1])
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path, title)
