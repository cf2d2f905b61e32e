"""Smart-home event data as text windows: the ``smarthome`` data format.

Reads homes in their published layouts (:mod:`fedhar.data.smarthome`), cuts windows of K
consecutive events, writes each as text (:mod:`fedhar.data.smarthome.serialize`) and tokenises it with the
backbone's tokenizer. The result is an ordinary :class:`WindowDataset` whose ``X`` holds token
ids ``(N, 1, L)``, so splits, partitions, the training loop and the Flower layer need nothing new.

Per window it also carries, in ``extras``: ``day`` (days since 1970, for chronological splits),
``hour``, ``home``, ``event_counts`` (activations of every sensor of every home in the window, plus
the hour as sin/cos: the classical baseline's features) and ``label_mask`` (the classes the
window's home has, so a home is never trained or scored on classes it lacks).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import ConfigError, DataError, ModelError
from fedhar.schema import from_mapping

COUNTS_KEY = "event_counts"


def home_windows(path: str | Path, homes, k: int, stride: int, span_seconds, unlabelled: str):
    """``[(home, EventWindows)]`` for the named homes of the smart-home folder ``path``."""
    from fedhar.data.smarthome import HOMES, event_windows, read_home

    names = list(homes) if homes else list(HOMES)
    if not names:
        raise ConfigError("`data.options.homes` is empty; name some of " + ", ".join(HOMES) + ".")
    out = []
    for name in names:
        rec = read_home(path, name)
        step = stride.get(name, 1) if isinstance(stride, dict) else stride
        out.append((name, event_windows(rec, k, span_seconds=span_seconds, stride=int(step), unlabelled=unlabelled)))
    return out


def load_smarthome(
    path: str | Path,
    *,
    homes: list[str] | None = None,
    k: int = 10,
    stride: int | dict[str, int] = 1,
    span_seconds: float | None = None,
    unlabelled: str = "drop",
    tokenizer: str = "smollm2-135m",
    max_tokens: int = 128,
    text: dict[str, Any] | None = None,
    max_windows_per_home: int | None = None,
    seed: int = 0,
) -> WindowDataset:
    """Text windows of smart-home events from the folder that holds ``ordonez/``, ``kasteren2008/``...

    Parameters
    ----------
    homes : list of str, optional
        Homes to read, e.g. ``[ordonez_a, ordonez_b]`` (default: all six).
    k, stride, span_seconds, unlabelled
        Windowing (:func:`fedhar.data.smarthome.event_windows`); ``stride`` may be a per-home mapping.
    tokenizer : str
        Backbone whose tokenizer writes the ids (``bytes`` for tests).
    max_tokens : int
        Longer texts keep their last tokens (the most recent events); the header line, when the
        template has one, is always kept in front.
    text : dict, optional
        :class:`fedhar.data.smarthome.EventTextTemplate` fields (``line``, ``time_format``, ``header``).
    max_windows_per_home : int, optional
        Seeded subsample per home (in time order), for homes with very chatty sensors.
    """
    from fedhar.data.smarthome import HOME_ACTIVITIES, count_features
    from fedhar.data.smarthome.serialize import EventTextTemplate, home_header, hour_of, serialize_windows
    from fedhar.data.smarthome.tokenize import encode_texts, load_tokenizer

    if max_windows_per_home is not None and max_windows_per_home <= 0:
        raise ConfigError(f"`data.options.max_windows_per_home` must be positive; got {max_windows_per_home}.")
    template = from_mapping(EventTextTemplate, text or {}, "data.options.text")
    body = dataclasses.replace(template, header=None)  # the header is the tokens' fixed prefix
    tok = load_tokenizer(tokenizer)
    per_home = home_windows(path, homes, k, stride, span_seconds, unlabelled)
    rng = np.random.default_rng(seed)
    sensor_ids = [f"{h}:{s}" for h, w in per_home for s in sorted(w.recording.sensors)]
    classes = [c for c in (*HOME_ACTIVITIES, "other") if any(c in set(w.label.tolist()) for _, w in per_home)]
    parts = []
    for idx, (home, w) in enumerate(per_home):
        if len(w) == 0:
            raise DataError(f"home `{home}` ({w.recording.source}) gives no labelled windows with k={k}.")
        if max_windows_per_home is not None and len(w) > max_windows_per_home:
            w = w.subset(np.sort(rng.choice(len(w), max_windows_per_home, replace=False)))
        unknown = sorted(set(w.label.tolist()) - set(classes))
        if unknown:
            raise DataError(f"home `{home}`: labels {unknown} are not canonical home activities.")
        header = home_header(w.recording, template)
        prefix = header + template.joiner if header else ""
        try:
            ids = encode_texts(serialize_windows(w, body), tok, max_tokens, prefix=prefix)
        except ModelError as e:  # the header fills max_tokens: name the home and the keys to change
            raise ConfigError(f"home `{home}`: {e} Raise `data.options.max_tokens` or shorten "
                              "`data.options.text.header`.") from e
        own = [f"{home}:{s}" for s in sorted(w.recording.sensors)]
        counts = np.zeros((len(w), len(sensor_ids) + 2), np.float32)
        feats = count_features(w, sorted(w.recording.sensors))
        cols = [sensor_ids.index(s) for s in own]
        counts[:, cols] = feats[:, :-2]
        counts[:, -2:] = feats[:, -2:]
        has = np.array([c in set(w.label.tolist()) for c in classes])
        parts.append(dict(ids=ids, y=np.array([classes.index(c) for c in w.label], np.int64),
                          subject=np.full(len(w), idx, np.int64), home=np.full(len(w), home),
                          day=w.day().astype("datetime64[D]").astype(np.int64), hour=hour_of(w),
                          counts=counts, mask=np.tile(has, (len(w), 1))))
    width = max(p["ids"].shape[2] for p in parts)
    X = np.concatenate([np.pad(p["ids"], ((0, 0), (0, 0), (0, width - p["ids"].shape[2])), constant_values=-1)
                        for p in parts])
    cat = lambda key: np.concatenate([p[key] for p in parts])  # noqa: E731
    from fedhar.data.vocab import MASK_KEY

    return WindowDataset(
        X=X, y=cat("y"), subject=cat("subject"), channels=("token",), units=("id",), rate_hz=1.0,
        classes=tuple(classes), name="smarthome:" + "+".join(h for h, _ in per_home), device=cat("home"),
        extras={"day": cat("day"), "hour": cat("hour"), "home": cat("home"), COUNTS_KEY: cat("counts"),
                MASK_KEY: cat("mask")},
    )
