"""The prompt prefix: what is known about a window, written as text, before the sensor tokens.

A template (``model.prompt.template``) is filled with the data's channels, sensors, sampling rate,
window length and units, the user's ``model.prompt.fields`` (dataset, device, placement, ...) and,
with ``model.prompt.stats``, summary statistics of each *raw* window in words and numbers (before
the model's normaliser, so they keep their physical units). Numbers are rounded so texts repeat.

The text is tokenised with the backbone's own tokenizer and embedded with the backbone's frozen
token embeddings, so the LLM reads it as it reads any text. Token ids are cached per distinct
text (without stats every window has the same text, tokenised once). Prefixes of different
length in one batch are left-padded and masked, so every row's sensor tokens end the sequence.
With RoPE (Llama-style backbones) left padding leaves a row's result unchanged; models with
learned absolute positions (GPT-2) see the sensor tokens shifted by the padding.

The embedding table belongs to the backbone: the prefix keeps it out of its own module tree, so
it adds no parameter, buffer or state key to the model (nothing new is exchanged or saved).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from fedhar.data.dataset import sensor_of
from fedhar.data.smarthome.tokenize import load_tokenizer
from fedhar.exceptions import ConfigError, ModelError
from fedhar.models.backbones import Backbone, HFBackbone
from fedhar.models.config import PromptConfig

BUILTIN_FIELDS = ("channels", "sensors", "rate_hz", "seconds", "units", "stats")
"""Template fields filled from the data (``stats``: per window); ``model.prompt.fields`` adds more."""

RATE_FIELDS = ("rate_hz", "seconds")
SENSOR_WORDS = {"acc": "accelerometer", "gyro": "gyroscope", "mag": "magnetometer"}
DEFAULT_UNITS = {"acc": "g", "gyro": "rad/s", "mag": "uT"}
"""Units when the data's are not given: what :func:`fedhar.data.harmonize.harmonize` produces by default."""

NO_UNIT = ("standardized", "unknown", "absent", "")
MAX_CACHE = 65536
"""Distinct texts whose token ids are kept; the cache starts afresh beyond it (stats texts vary)."""


@dataclass(frozen=True)
class Sensor:
    """One sensor of the data: its channel indices, its name in words and its unit ("" unknown)."""

    name: str
    word: str
    unit: str
    index: tuple[int, ...]


def _kind(sensor: str) -> str:
    return sensor.rpartition("_")[2]


def sensors_of(channels: Sequence[str], units: Sequence[str] | None = None) -> list[Sensor]:
    """Channels grouped by sensor (``acc_x, acc_y, acc_z`` -> ``acc``), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, ch in enumerate(channels):
        groups.setdefault(sensor_of(ch), []).append(i)
    out = []
    for name, idx in groups.items():
        prefix, _, kind = name.rpartition("_")
        word = " ".join(p for p in (prefix.replace("_", " "), SENSOR_WORDS.get(kind, kind)) if p)
        given = [units[i] for i in idx if units[i] != "absent"] if units is not None else []
        unit = given[0] if given else DEFAULT_UNITS.get(kind, "")
        out.append(Sensor(name, word, "" if unit in NO_UNIT else unit, tuple(idx)))
    return out


def template_fields(template: str, valid: Sequence[str]) -> list[str]:
    """The fields ``template`` uses; an unknown one (or a malformed template) raises ConfigError."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"`model.prompt.template` is not a valid template ({exc}): {template!r}.") from None
    used = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        base = re.split(r"[.\[]", field, maxsplit=1)[0]
        if base not in valid:
            raise ConfigError(f"`model.prompt.template` uses the unknown field `{{{field}}}`; valid fields: "
                              f"{', '.join('{' + v + '}' for v in valid)} (add others with `model.prompt.fields`).")
        used.append(base)
    return used


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _with_unit(value: float, unit: str) -> str:
    return f"{value:.2f} {unit}" if unit else f"{value:.2f}"


@torch.no_grad()
def window_stats(raw: torch.Tensor, sensors: Sequence[Sensor], rate_hz: float) -> list[str]:
    """Per window of ``raw`` ``[B, C, T]``: e.g. ``mean |acc| 1.02 g, std |acc| 0.31 g, dominant
    frequency 1.9 Hz, mean |gyro| 0.40 rad/s``; an all-zero sensor is ``no gyroscope``.

    The first accelerometer (else the first sensor) gets mean, std and the dominant frequency of
    its magnitude (mean removed; "no dominant frequency" when it is constant); the others their
    mean magnitude. Magnitudes to 2 decimals, the frequency to 1.
    """
    x = raw.detach().float()
    main = next((i for i, s in enumerate(sensors) if _kind(s.name) == "acc"), 0)
    parts: list[list[str]] = [[] for _ in range(x.shape[0])]
    for i, s in enumerate(sensors):
        mag = x[:, list(s.index)].pow(2).sum(1).sqrt()  # [B, T]
        present = x[:, list(s.index)].ne(0).flatten(1).any(1).tolist()
        mean = mag.mean(1).tolist()
        if i == main:
            std_t = mag.std(1, unbiased=False)
            spec = torch.fft.rfft(mag - mag.mean(1, keepdim=True), dim=1).abs()  # [B, T//2+1]
            peak = (spec[:, 1:].argmax(1) + 1).tolist() if spec.shape[1] > 1 else [0] * x.shape[0]
            flat = (std_t <= 1e-6 * mag.mean(1).clamp(min=1.0)).tolist()
            std = std_t.tolist()
        for b in range(x.shape[0]):
            if not present[b]:
                parts[b].append(f"no {s.word}")
                continue
            parts[b].append(f"mean |{s.name}| {_with_unit(mean[b], s.unit)}")
            if i == main:
                parts[b].append(f"std |{s.name}| {_with_unit(std[b], s.unit)}")
                freq = peak[b] * rate_hz / x.shape[-1]
                periodic = not flat[b] and peak[b]
                parts[b].append(f"dominant frequency {freq:.1f} Hz" if periodic else "no dominant frequency")
    return [", ".join(p) for p in parts]


class PromptText:
    """Renders the prompt of each window: the static fields once, ``{stats}`` per window."""

    def __init__(self, cfg: PromptConfig, channels: Sequence[str], window_length: int, rate_hz: float | None,
                 units: Sequence[str] | None = None) -> None:
        if not isinstance(cfg.fields, dict):
            raise ConfigError(f"`model.prompt.fields` must be a mapping {{name: text}}; got {cfg.fields!r}.")
        clash = sorted(set(cfg.fields) & set(BUILTIN_FIELDS))
        if clash:
            raise ConfigError(f"`model.prompt.fields.{clash[0]}` would hide the built-in template field "
                              f"`{{{clash[0]}}}`; built-in fields: {', '.join(BUILTIN_FIELDS)}. Rename it.")
        if units is not None and len(units) != len(channels):
            raise ModelError(f"prompt: {len(units)} units for {len(channels)} channels.")
        if not cfg.template.strip() and not cfg.stats:
            raise ConfigError("`model.prompt.template` is empty; write what is known about the windows, e.g. "
                              "`Sensor data, {channels} at {rate_hz:g} Hz.`")
        used = template_fields(cfg.template, (*BUILTIN_FIELDS, *map(str, cfg.fields)))
        if "stats" in used and not cfg.stats:
            raise ConfigError("`model.prompt.template` uses `{stats}` but `model.prompt.stats` is false; set it to "
                              "true or drop `{stats}` from the template.")
        self.template = cfg.template
        if cfg.stats and "stats" not in used:
            self.template = f"{cfg.template.rstrip()} Statistics: {{stats}}.".lstrip()
        self.stats = cfg.stats
        rate = cfg.rate_hz if cfg.rate_hz is not None else rate_hz
        needs = [f for f in RATE_FIELDS if f in used]
        needs += ["the dominant frequency of `model.prompt.stats`"] if self.stats else []
        if rate is None and needs:
            raise ConfigError(f"`model.prompt.rate_hz` is needed for {', '.join(needs)} but it is null and the data's "
                              "sampling rate is not known here; set it, e.g. `model.prompt.rate_hz: 50`.")
        if rate is not None and not rate > 0:
            raise ConfigError(f"`model.prompt.rate_hz` must be positive; got {rate}.")
        self.rate_hz = None if rate is None else float(rate)
        self.sensors = sensors_of(channels, units)
        with_units = [f"{s.word} in {s.unit}" for s in self.sensors if s.unit]
        self.values: dict[str, object] = {
            "channels": ", ".join(channels),
            "sensors": _join([s.word for s in self.sensors]),
            "rate_hz": self.rate_hz if self.rate_hz is not None else float("nan"),
            "seconds": window_length / self.rate_hz if self.rate_hz else float("nan"),
            "units": ", ".join(with_units) if with_units else "unknown units",
            **{str(k): str(v) for k, v in cfg.fields.items()},
        }
        try:  # a bad format spec (e.g. `{channels:d}`) fails here, not in the first batch
            self._fill("mean |acc| 1.00 g")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ConfigError(f"`model.prompt.template` cannot be filled ({exc}): {cfg.template!r}.") from None

    def _fill(self, stats: str) -> str:
        return self.template.format_map({**self.values, "stats": stats})

    def __call__(self, raw: torch.Tensor) -> list[str]:
        """One text per window of ``raw`` ``[B, C, T]``."""
        if not self.stats:
            return [self._fill("")] * raw.shape[0]
        return [self._fill(s) for s in window_stats(raw, self.sensors, self.rate_hz)]


class PromptPrefix(nn.Module):
    """``raw [B, C, T] -> (embeds [B, P, d], mask [B, P])``: the left-padded, embedded prompt texts.

    Holds no parameters or buffers: the backbone (and its frozen embedding table) is kept in a
    plain tuple, outside the module tree, so it is neither registered twice nor in any state.
    """

    def __init__(self, text: PromptText, tokenizer, backbone: HFBackbone) -> None:
        super().__init__()
        self.text = text
        self.tokenizer = tokenizer
        self._backbone = (backbone,)
        self.cache: dict[str, list[int]] = {}
        self.windows_seen = 0
        self.mean_tokens = 0.0
        """Running mean of prefix tokens per window over every forward (for cost reporting)."""

    @property
    def embedding(self) -> nn.Embedding:
        """The backbone's token embedding (through a PEFT wrapper if any)."""
        return self._backbone[0].model.get_input_embeddings()

    def texts(self, raw: torch.Tensor) -> list[str]:
        return self.text(raw)

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text``, tokenised once per distinct text."""
        ids = self.cache.get(text)
        if ids is None:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            rows = self.embedding.num_embeddings
            if ids and max(ids) >= rows:
                raise ModelError(f"prompt: the tokenizer gave id {max(ids)} but the backbone embeds only {rows} "
                                 "tokens; the tokenizer does not belong to this backbone.")
            if len(self.cache) >= MAX_CACHE:
                self.cache.clear()
            self.cache[text] = ids
        return ids

    def tokens_per_window(self, raw: torch.Tensor) -> float:
        """Mean prefix length over the windows of ``raw``."""
        rows = [self.ids(t) for t in self.texts(raw)]
        return sum(map(len, rows)) / max(len(rows), 1)

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.ids(t) for t in self.texts(raw)]
        weight = self.embedding.weight
        width = max((len(r) for r in rows), default=0)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for b, r in enumerate(rows):  # left padding: every prefix ends where the sensor tokens start
            if r:
                ids[b, width - len(r):] = torch.tensor(r, dtype=torch.long)
                mask[b, width - len(r):] = 1
        ids, mask = ids.to(weight.device), mask.to(weight.device)
        embeds = self.embedding(ids) * mask[..., None].to(weight.dtype)  # padded rows: zeros, and masked
        n = len(rows)
        self.mean_tokens = (self.mean_tokens * self.windows_seen + float(mask.sum())) / max(self.windows_seen + n, 1)
        self.windows_seen += n
        return embeds, mask


def build_prompt(cfg: PromptConfig, backbone: Backbone, backbone_name: str, channels: Sequence[str],
                 window_length: int, rate_hz: float | None, units: Sequence[str] | None = None) -> PromptPrefix:
    """The prompt prefix for windows of ``channels`` x ``window_length`` sampled at ``rate_hz``
    (``model.prompt.rate_hz`` wins when set); ``units``, one per channel, where the data knows them."""
    if not isinstance(backbone, HFBackbone):
        raise ModelError(f"model.prompt needs an LLM backbone; `{backbone_name}` ({type(backbone).__name__}) has no "
                         "token embeddings. Use smollm2-135m, tiny-llama or a Hugging Face model, or set "
                         "`model.prompt.enabled: false`.")
    text = PromptText(cfg, channels, window_length, rate_hz, units)
    return PromptPrefix(text, load_tokenizer(backbone_name), backbone)
