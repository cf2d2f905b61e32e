"""Inertial windows written as short text and each class name scored by a causal LLM's likelihood
(HARGPT-style zero-shot): no training, no labels, only what the LLM learnt from language.

Two renderings of a window ``(C, T)``: ``readings`` (the values of each sensor, block-averaged
down to ~2 Hz and rounded to 2 decimals) and ``stats`` (per sensor: magnitude mean / std / min /
max, per-axis means, dominant frequency in numbers and words). Texts stay short (a 2.56 s window
is ~5 rows per sensor) so scoring with SmolLM2 on a CPU stays well under a second per window.
A sensor whose channels are all exactly zero was not recorded (pooled datasets zero-fill a
missing gyroscope) and is written as "No gyroscope." rather than as readings.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from fedhar.data.dataset import sensor_of
from fedhar.exceptions import ConfigError, DataError

STYLES = ("stats", "readings")
PRECISIONS = ("bf16", "fp32")
PROMPT = "\nThe person wearing the sensor is"
HAR_PHRASES = {
    "walking": "walking", "walking_upstairs": "walking upstairs", "walking_downstairs": "walking downstairs",
    "sitting": "sitting", "standing": "standing", "lying": "lying down", "jogging": "jogging", "running": "running",
    "biking": "riding a bicycle", "jumping": "jumping", "elevator_up": "riding an elevator up",
    "elevator_down": "riding an elevator down", "stand_to_sit": "sitting down", "sit_to_stand": "standing up",
    "sit_to_lie": "lying down from sitting", "lie_to_sit": "sitting up from lying",
    "stand_to_lie": "lying down from standing", "lie_to_stand": "getting up from lying",
}
"""How each canonical HAR class is said after :data:`PROMPT` (others: the name with spaces)."""
DEFAULT_UNITS = {"acc": "g", "gyro": "rad/s"}
"""Units per sensor (or sensor family ``acc`` / ``gyro``); ``standardised`` for z-scored data."""
SENSOR_NAMES = {"acc": "Accelerometer", "body_acc": "Body accelerometer", "total_acc": "Total accelerometer",
                "gyro": "Gyroscope", "body_gyro": "Body gyroscope", "mag": "Magnetometer"}
RHYTHM_WORDS = ((0.5, "very slow"), (1.5, "slow"), (2.5, "moderate"), (4.0, "fast"), (float("inf"), "very fast"))
"""Upper frequency bound (Hz) -> the word for a dominant rhythm below it."""
MAX_RHYTHM_HZ = 8.0
"""Human movement sits below this; higher spectral peaks are sensor noise, not a rhythm."""


def _num(v: float) -> str:
    s = f"{v:.2f}"
    return "0.00" if s == "-0.00" else s


def _family(sensor: str) -> str:
    return "acc" if sensor.endswith("acc") else "gyro" if sensor.endswith("gyro") else sensor


def _groups(channels: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Sensors in order of first appearance, each with its channel indices."""
    out: dict[str, list[int]] = {}
    for i, ch in enumerate(channels):
        out.setdefault(sensor_of(ch), []).append(i)
    return list(out.items())


def _label(sensor: str, units: Mapping[str, str]) -> str:
    name = SENSOR_NAMES.get(sensor, sensor.replace("_", " ").capitalize())
    unit = units.get(sensor, units.get(_family(sensor)))
    return f"{name} ({unit})" if unit else name


def _blocks(x: np.ndarray, rate_hz: float, downsample_hz: float) -> np.ndarray:
    """``(C, T)`` -> ``(C, R)``: means over ~``rate_hz / downsample_hz`` samples (all samples used)."""
    T = x.shape[1]
    rows = min(T, max(1, round(T * downsample_hz / rate_hz)))
    return np.stack([b.mean(1) for b in np.array_split(x, rows, axis=1)], 1)


def _rhythm(mag: np.ndarray, rate_hz: float) -> str:
    d = mag - mag.mean()
    if len(d) < 4 or float(np.abs(d).max()) < 1e-6:
        return "no rhythm"
    freqs, spec = np.fft.rfftfreq(len(d), 1.0 / rate_hz), np.abs(np.fft.rfft(d))
    band = (freqs > 0) & (freqs <= MAX_RHYTHM_HZ)
    if not band.any():
        return "no rhythm"
    f = float(freqs[band][int(spec[band].argmax())])
    word = next(w for bound, w in RHYTHM_WORDS if f < bound)
    return f"dominant rhythm {f:.1f} Hz ({word})"


def render_window(x: np.ndarray, channels: Sequence[str], rate_hz: float, style: str = "stats",
                  downsample_hz: float = 2.0, units: Mapping[str, str] | None = None) -> str:
    """One window ``(C, T)`` as compact text (see the module docstring); ``units`` maps a sensor
    (``acc``, ``body_acc``) or family (``acc``, ``gyro``) to its unit, over :data:`DEFAULT_UNITS`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(channels) or x.shape[1] == 0:
        raise DataError(f"a window must be (C, T) with C = {len(channels)} channels and T > 0; got shape {x.shape}.")
    if style not in STYLES:
        raise ConfigError(f"`lodo.text_zero_shot.style` must be one of {', '.join(STYLES)}; got {style!r}.")
    if not rate_hz > 0:
        raise ConfigError(f"`rate_hz` must be positive; got {rate_hz}.")
    if not downsample_hz > 0:
        raise ConfigError(f"`lodo.text_zero_shot.downsample_hz` must be positive; got {downsample_hz}.")
    units = {**DEFAULT_UNITS, **(units or {})}
    T = x.shape[1]
    lines = [f"{T / rate_hz:.3g} s of wearable motion sensor data."]
    for sensor, idx in _groups(channels):
        v = x[idx]
        label = _label(sensor, units)
        if not v.any():
            lines.append(f"No {SENSOR_NAMES.get(sensor, sensor.replace('_', ' ')).lower()}.")
            continue
        axes = ",".join(channels[i].rpartition("_")[2] if sensor_of(channels[i]) != channels[i] else channels[i]
                        for i in idx)
        if style == "readings":
            b = _blocks(v, rate_hz, downsample_hz)
            hz = b.shape[1] / (T / rate_hz)
            rows = "; ".join(",".join(_num(c) for c in b[:, t]) for t in range(b.shape[1]))
            lines.append(f"{label} {axes} at {hz:.2g} Hz: {rows}")
        else:
            mag = np.sqrt((v ** 2).sum(0))
            means = ",".join(_num(m) for m in v.mean(1))
            lines.append(f"{label} magnitude mean {_num(mag.mean())}, std {_num(mag.std())}, min {_num(mag.min())}, "
                         f"max {_num(mag.max())}; mean {axes} {means}; {_rhythm(mag, rate_hz)}.")
    return "\n".join(lines)


class ReadingsZeroShot:
    """Zero-shot HAR from windows written as text (:func:`render_window`), scored by a causal LM.

    Scores are cached per class set and window text, so scoring a subset of already scored
    windows again (the shared-classes row after the all-classes row) costs nothing. ``seconds``
    (wall time spent scoring) and ``mean_tokens`` (prompt tokens per scored window) feed the
    cost columns; both are 0 until something was scored."""

    def __init__(self, backbone: str = "smollm2-135m", layers: int | None = None, seed: int = 0,
                 style: str = "stats", precision: str = "bf16", calibrate: bool = True, downsample_hz: float = 2.0,
                 units: Mapping[str, str] | None = None, phrases: Mapping[str, str] | None = None,
                 prompt: str = PROMPT, progress: bool = True) -> None:
        if style not in STYLES:
            raise ConfigError(f"`lodo.text_zero_shot.style` must be one of {', '.join(STYLES)}; got {style!r}.")
        if precision not in PRECISIONS:
            raise ConfigError(f"`train.precision` must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
        if not downsample_hz > 0:
            raise ConfigError(f"`lodo.text_zero_shot.downsample_hz` must be positive; got {downsample_hz}.")
        from fedhar.data.smarthome.tokenize import load_tokenizer
        from fedhar.models.lm_scoring import load_causal_lm

        self.lm, self.tok = load_causal_lm(backbone, layers, seed), load_tokenizer(backbone)
        self.style, self.precision, self.calibrate, self.downsample_hz = style, precision, calibrate, downsample_hz
        self.units, self.phrases, self.prompt = dict(units or {}), {**HAR_PHRASES, **(phrases or {})}, prompt
        self.progress = progress
        self.seconds = 0.0
        self.mean_tokens = 0.0
        self._scored = 0
        self._by_classes: dict[tuple[str, ...], tuple] = {}

    def texts(self, X: np.ndarray, channels: Sequence[str], rate_hz: float) -> list[str]:
        """Each window of ``X`` ``(N, C, T)`` as text."""
        X = np.asarray(X)
        if X.ndim != 3:
            raise DataError(f"windows must be (N, C, T); got shape {X.shape}.")
        return [render_window(x, channels, rate_hz, self.style, self.downsample_hz, self.units) for x in X]

    def _entry(self, classes: tuple[str, ...]) -> tuple:
        """(scorer, text -> raw scores, prior) for one class set, built on first use."""
        if classes not in self._by_classes:
            from fedhar.models.lm_scoring import ZeroShotScorer

            scorer = ZeroShotScorer(self.lm, self.tok, classes, self.prompt, self.phrases, self.precision)
            prior = scorer.calibration() if self.calibrate else np.zeros(len(classes), np.float32)
            self._by_classes[classes] = (scorer, {}, prior)
        return self._by_classes[classes]

    def scores(self, X: np.ndarray, channels: Sequence[str], rate_hz: float, classes: Sequence[str]) -> np.ndarray:
        """``(N, K)`` mean log-likelihood of each class phrase (minus its prior when calibrated)."""
        if len(classes) == 0:
            raise ConfigError("`classes` must name at least one class to score.")
        t0 = time.perf_counter()
        texts = self.texts(X, channels, rate_hz)
        scorer, memo, prior = self._entry(tuple(classes))
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, scorer.scores(todo, progress=self.progress)))
            tokens = sum(len(self.tok.encode(t + self.prompt, add_special_tokens=False)) for t in todo)
            self.mean_tokens = (self.mean_tokens * self._scored + tokens) / (self._scored + len(todo))
            self._scored += len(todo)
        raw = np.stack([memo[t] for t in texts]) if texts else np.zeros((0, len(classes)), np.float32)
        self.seconds += time.perf_counter() - t0
        return (raw - prior).astype(np.float32)

    def predict(self, X: np.ndarray, channels: Sequence[str], rate_hz: float, classes: Sequence[str],
                mask: np.ndarray | None = None) -> np.ndarray:
        """``(N,)`` class indices into ``classes``: the best-scoring class among those ``mask`` allows."""
        K = len(classes)
        allowed = np.ones(K, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
        if allowed.shape != (K,):
            raise ConfigError(f"the label mask must have one entry per class ({K}); got shape {np.shape(mask)}.")
        if not allowed.any():
            raise ConfigError("the label mask allows no class; at least one class must be allowed.")
        s = self.scores(X, channels, rate_hz, classes)
        return np.where(allowed[None, :], s, -np.inf).argmax(1).astype(np.int64)
