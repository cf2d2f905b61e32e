"""Turn real HAPT streams and a drift scenario into a sequence of windowed experiences.

Per subject, the recordings are laid end to end in experiment (time) order into one timeline;
phase k takes the next ``duration_s`` of it. Each slice is rotated to the phase's placement, run
through the phase's device, resampled to the scenario rate and windowed. A recording boundary
inside a slice splits it: windows never straddle two recordings or two phases. Each subject's
windows in a phase are split chronologically (by default per class: HAPT's protocol runs its
activities in a fixed order, so "the last 30 % of the phase" would hold other classes than the
first 70 %); train windows overlapping a test window are dropped.

Randomness is derived from ``scenario.seed``: mounting per (phase, subject); noise and jitter
per (phase, subject, recording); the device instance (gain, bias, drift) per (subject, device
name), so the same phone keeps its calibration errors and its bias drift continues across
phases, while a re-mounted phone gets a new orientation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders.hapt import HaptStreams, SensorStream
from fedhar.data.streams import cut_windows, label_windows, resample_stream, window_starts
from fedhar.data.vocab import canonical_name
from fedhar.drift.devices import DeviceProfile, apply_device, device_profile
from fedhar.drift.placements import Placement, placement, rotate, rotation_matrix
from fedhar.drift.scenario import Scenario
from fedhar.exceptions import DataError

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("g",) * 3 + ("rad/s",) * 3
_MOUNT, _NOISE, _MIX, _DEVICE = 1, 2, 3, 4  # rng stream tags


@dataclass
class Experience:
    """One phase of the scenario: its train and test windows and what produced them."""

    index: int
    name: str
    train: WindowDataset
    test: WindowDataset
    info: dict = field(default_factory=dict)


@dataclass
class _Setting:
    device: DeviceProfile
    place: Placement
    phase_index: int


@dataclass
class _Windows:
    """Candidate windows of one subject in one phase (before class filtering and split)."""

    X: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    keep: list[np.ndarray] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    device: list[np.ndarray] = field(default_factory=list)
    place: list[np.ndarray] = field(default_factory=list)
    experiment: list[np.ndarray] = field(default_factory=list)

    def cat(self, key: str) -> np.ndarray:
        return np.concatenate(getattr(self, key))


def _timeline(streams: HaptStreams, subject: int) -> list[tuple[SensorStream, int]]:
    """The subject's recordings with their start sample on the subject's timeline."""
    out, offset = [], 0
    for s in streams.for_subject(subject):
        out.append((s, offset))
        offset += len(s)
    return out


def _render(
    st: _Setting, stream: SensorStream, lo: int, hi: int, t0_s: float, subject: int, k: int, seg: int, version: int,
    src_rate: float, scn: Scenario,
) -> tuple[np.ndarray, np.ndarray]:
    """One recording slice as this setting's device would give it, at the scenario rate: ``(T, 6)``."""
    R = rotation_matrix(st.place, np.random.default_rng([scn.seed, _MOUNT, st.phase_index, subject]))
    acc, gyro = rotate(stream.acc[lo:hi], stream.gyro[lo:hi], R)
    dev_key = zlib.crc32(st.device.name.encode())
    sig = apply_device(
        acc, gyro, stream.label[lo:hi], src_rate, st.device,
        rng=np.random.default_rng([scn.seed, _NOISE, k, subject, seg, version]), t0_s=t0_s,
        instance_rng=np.random.default_rng([scn.seed, _DEVICE, subject, dev_key]),
    )
    g = sig.gyro if sig.gyro is not None else np.zeros_like(sig.acc)
    both = np.concatenate([sig.acc, g], axis=1).astype(np.float32)
    x, lab = resample_stream(both, sig.label, sig.rate_hz, scn.rate_hz)
    if sig.gyro is None:
        x[:, 3:] = 0.0  # exactly absent, whatever the resampler did
    return x, lab


def build_experiences(streams: HaptStreams, scenario: Scenario) -> list[Experience]:
    """One :class:`Experience` per phase of ``scenario``, cut from ``streams``.

    All experiences share the channels ``acc_x..gyro_z`` (g, rad/s; the gyroscope is 0.0 for a
    device without one) and the class list ``scenario.classes``. ``extras["t_start"]`` holds each
    window's start in seconds on its subject's timeline.
    """
    scn, src_rate = scenario, float(streams.rate_hz)
    remap = np.full(len(streams.classes), -1, dtype=np.int64)
    for i, c in enumerate(streams.classes):
        canon = canonical_name(c)
        if canon in scn.classes:
            remap[i] = scn.classes.index(canon)
    missing = [c for i, c in enumerate(scn.classes) if i not in remap]
    if missing:
        raise DataError(
            f"scenario `{scn.name}`: class(es) {', '.join(missing)} do not occur in {streams.source} "
            f"(classes: {', '.join(streams.classes)})."
        )
    window, step = round(scn.window_s * scn.rate_hz), round(scn.step_s * scn.rate_hz)
    timelines = {s: _timeline(streams, s) for s in streams.subjects}
    cursor = dict.fromkeys(timelines, 0)
    settings = [_Setting(device_profile(ph.device, f"phases[{k}].device"), placement(ph.placement, f"phases[{k}].placement"), k)
                for k, ph in enumerate(scn.phases)]
    out = []
    for k, ph in enumerate(scn.phases):
        label = f"scenario phase '{ph.name}' (#{k + 1})"
        subjects = list(ph.subjects) if ph.subjects is not None else list(timelines)
        unknown = [s for s in subjects if s not in timelines]
        if unknown:
            raise DataError(f"{label}: subject(s) {unknown} are not in {streams.source} (subjects: {list(timelines)}).")
        allowed = np.zeros(len(scn.classes) + 1, dtype=bool)  # last slot: class outside the scenario
        allowed[[scn.classes.index(c) for c in (ph.classes or scn.classes)]] = True
        versions = [settings[k]] + ([settings[k - 1]] if ph.transition == "gradual" else [])
        parts_tr, parts_te, seconds = [], [], {}
        for subj in subjects:
            total = sum(len(s) for s, _ in timelines[subj])
            a = cursor[subj]
            b = total if ph.duration_s is None else min(total, a + int(round(ph.duration_s * src_rate)))
            cursor[subj] = b
            seconds[subj] = (b - a) / src_rate
            mix = np.random.default_rng([scn.seed, _MIX, k, subj])
            w = _Windows()
            for seg, (stream, off) in enumerate(timelines[subj]):
                lo, hi = max(a, off) - off, min(b, off + len(stream)) - off
                if hi - lo <= 0:
                    continue
                t0 = (off + lo) / src_rate
                rendered = [
                    _render(v, stream, lo, hi, t0, subj, k, seg, j, src_rate, scn) for j, v in enumerate(versions)
                ]
                starts = window_starts(min(len(x) for x, _ in rendered), window, step)
                t = t0 + starts / scn.rate_hz
                pick = np.zeros(len(starts), dtype=np.int64)
                if len(versions) > 1:
                    p_prev = np.clip(1.0 - (t - a / src_rate) / ph.transition_s, 0.0, 1.0)
                    pick = (mix.random(len(starts)) < p_prev).astype(np.int64)
                X = np.empty((len(starts), len(CHANNELS), window), dtype=np.float32)
                y = np.empty(len(starts), dtype=np.int64)
                keep = np.empty(len(starts), dtype=bool)
                for j, (x, lab) in enumerate(rendered):
                    sel = pick == j
                    yj, kj = label_windows(lab, starts[sel], window, len(streams.classes), 1.0)
                    X[sel], y[sel], keep[sel] = cut_windows(x, starts[sel], window), yj, kj
                w.X.append(X)
                w.y.append(remap[y])
                w.keep.append(keep)
                w.t.append(t)
                w.device.append(np.array([versions[j].device.name for j in pick], dtype=str))
                w.place.append(np.array([versions[j].place.name for j in pick], dtype=str))
                w.experiment.append(np.full(len(starts), stream.experiment, dtype=np.int64))
            if not w.X:
                continue
            y = w.cat("y")
            keep = w.cat("keep") & allowed[y]  # y == -1 indexes the "outside" slot
            tr, te = chronological_split(w.cat("t")[keep], y[keep], scn.test_fraction, scn.window_s, scn.split)
            rows = {
                "X": w.cat("X")[keep], "y": y[keep], "t": w.cat("t")[keep], "device": w.cat("device")[keep],
                "place": w.cat("place")[keep], "experiment": w.cat("experiment")[keep],
                "subject": np.full(int(keep.sum()), subj, dtype=np.int64),
            }
            parts_tr.append({key: v[tr] for key, v in rows.items()})
            parts_te.append({key: v[te] for key, v in rows.items()})
        n_tr = sum(len(p["y"]) for p in parts_tr)
        n_te = sum(len(p["y"]) for p in parts_te)
        if n_tr + n_te == 0:
            raise DataError(
                f"{label}: no window of {scn.window_s} s covered by one of its classes "
                f"({', '.join(ph.classes or scn.classes)}) in the {sum(seconds.values()):.1f} s of stream left "
                f"for subjects {subjects}; the streams may be used up by earlier phases."
            )
        st = settings[k]
        name = f"{scn.name}/{ph.name}"
        out.append(Experience(
            index=k, name=ph.name,
            train=_dataset(parts_tr, scn, window, f"{name}/train"),
            test=_dataset(parts_te, scn, window, f"{name}/test"),
            info={
                "phase": ph.name, "device": st.device.name, "placement": st.place.name,
                "sensors": list(st.device.sensors), "subjects": subjects, "classes": list(ph.classes or scn.classes),
                "seconds": float(sum(seconds.values())), "seconds_per_subject": seconds,
                "windows": {"train": n_tr, "test": n_te}, "transition": ph.transition,
                "transition_s": ph.transition_s, "like": ph.like, "split": scn.split,
            },
        ))
    return out


def chronological_split(
    t: np.ndarray, y: np.ndarray, test_fraction: float, window_s: float, mode: str = "per_class"
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices of one subject's windows in one phase, test after train.

    ``time``: the last ``test_fraction`` of the windows are test. ``per_class``: the last
    ``test_fraction`` of each class's windows, so test has the phase's class mix even though a
    recording protocol runs its activities in a fixed order. Either way, train windows that
    overlap a test window are dropped, so no sample is in both.
    """
    groups = [np.arange(len(t))] if mode == "time" else [np.flatnonzero(y == c) for c in np.unique(y)]
    train, test = [], []
    for idx in groups:
        idx = idx[np.argsort(t[idx], kind="stable")]
        n_test = int(round(test_fraction * len(idx)))
        train.append(idx[: len(idx) - n_test])
        test.append(idx[len(idx) - n_test :])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    if len(test):
        t_test = np.sort(t[test])
        nxt = np.searchsorted(t_test, t[train])  # first test window starting at or after each train one
        gap_next = np.where(nxt < len(t_test), t_test[np.minimum(nxt, len(t_test) - 1)] - t[train], np.inf)
        gap_prev = np.where(nxt > 0, t[train] - t_test[np.maximum(nxt - 1, 0)], np.inf)
        train = train[(gap_next >= window_s - 1e-9) & (gap_prev >= window_s - 1e-9)]
    return train, test


def _dataset(parts: list[dict], scn: Scenario, window: int, name: str) -> WindowDataset:
    def cat(key: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else empty

    return WindowDataset(
        X=cat("X", np.zeros((0, len(CHANNELS), window), np.float32)), y=cat("y", np.zeros(0, np.int64)),
        subject=cat("subject", np.zeros(0, np.int64)), channels=CHANNELS, units=UNITS, rate_hz=scn.rate_hz,
        classes=tuple(scn.classes), name=name, device=cat("device", np.zeros(0, str)),
        placement=cat("place", np.zeros(0, str)),
        extras={"t_start": cat("t", np.zeros(0)).astype(np.float64),
                "experiment": cat("experiment", np.zeros(0, np.int64))},
    )
