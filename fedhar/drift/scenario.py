"""Drift scenarios: a timeline of phases, each with its own device, placement, subjects and classes.

Each phase consumes the next ``duration_s`` seconds of every active subject's (time-ordered)
stream, so the timeline is real time and phases never reuse a sample. A change of settings
between phases is abrupt by default; ``transition: gradual`` mixes it in over ``transition_s``
seconds; a phase ``like`` an earlier one recurs with its settings (a recurring drift).

Example (``configs/continual_placement.yaml``)::

    name: continual_placement
    rate_hz: 50            # model input rate: every device is resampled to it
    window_s: 2.56
    step_s: 1.28
    test_fraction: 0.3     # last 30 % of each subject's windows of each class in a phase: test
    split: per_class       # or `time`: the last 30 % of all its windows
    seed: 0
    classes: [walking, walking_upstairs, walking_downstairs, sitting, standing, lying]
    phases:
      - name: waist
        duration_s: 180
        device: reference
        placement: waist
        classes: [walking, walking_upstairs, walking_downstairs, sitting, standing]
      - name: pocket
        duration_s: 180
        placement: trouser_pocket
        transition: gradual
        transition_s: 30
        classes: [walking, walking_upstairs, walking_downstairs, sitting, standing]
      - name: budget_wrist
        duration_s: 180
        device: budget_phone          # no gyroscope: gyro channels become 0
        placement: wrist
        classes: [walking, walking_upstairs, walking_downstairs, sitting, standing]
      - name: new_class
        like: waist                   # back to the waist phone (recurring) ...
        classes: [walking, walking_upstairs, walking_downstairs, sitting, standing, lying]
        duration_s: null              # ... for the rest of each stream, now with `lying`

``device`` and ``placement`` take a built-in name or a mapping (``{base: budget_phone,
adc_bits: 8}``; see :func:`~fedhar.drift.devices.device_profile`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fedhar.data.vocab import CANONICAL, canonical_name
from fedhar.drift.devices import device_profile
from fedhar.drift.placements import placement
from fedhar.exceptions import ConfigError
from fedhar.schema import from_mapping

HAPT_BASIC = ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying")
TRANSITIONS = ("abrupt", "gradual")
SPLITS = ("per_class", "time")
_LIKE_COPIES = ("duration_s", "device", "placement", "subjects", "classes")


@dataclass
class Phase:
    """One stretch of the timeline.

    ``like`` copies the settings a phase leaves out (duration, device, placement, subjects,
    classes; not the transition) from an earlier phase. It is resolved by :func:`load_scenario`,
    which knows which keys were written; a Scenario built in Python gets phases as written.
    """

    name: str
    duration_s: float | None = None
    """Seconds of each active subject's stream; None: the rest of it."""
    device: str | dict = "reference"
    placement: str | dict = "waist"
    subjects: list[int] | None = None
    """None: all subjects."""
    classes: list[str] | None = None
    """None: all scenario classes."""
    transition: str = "abrupt"
    transition_s: float = 0.0
    """gradual: over this span at the phase start, each window comes from the previous phase's
    device and placement with probability falling linearly from 1 to 0."""
    like: str | None = None


@dataclass
class Scenario:
    """A drift timeline over real streams, and how its windows are cut."""

    name: str
    phases: list[Phase]
    rate_hz: float = 50.0
    """Model input rate: device streams are resampled to it after the device effects."""
    window_s: float = 2.56
    step_s: float = 1.28
    test_fraction: float = 0.3
    """Share of each subject's windows in a phase held out as test: the latest ones (see ``split``)."""
    split: str = "per_class"
    """``per_class``: the last ``test_fraction`` of each class's windows; ``time``: of all windows."""
    classes: list[str] | None = None
    """The one class list every experience shares (canonical names); default HAPT's six basic."""
    seed: int = 0

    def __post_init__(self) -> None:
        where = f"scenario `{self.name}`"
        for key, low in (("rate_hz", 0.0), ("window_s", 0.0), ("step_s", 0.0)):
            v = getattr(self, key)
            if not _number(v) or v <= low:
                raise ConfigError(f"{where}: `{key}` must be a number > 0; got {v!r}.")
        if not _number(self.test_fraction) or not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"{where}: `test_fraction` must be in [0, 1); got {self.test_fraction!r}.")
        if self.split not in SPLITS:
            raise ConfigError(f"{where}: `split` must be one of {', '.join(SPLITS)}; got {self.split!r}.")
        if round(self.window_s * self.rate_hz) < 2:
            raise ConfigError(f"{where}: `window_s` ({self.window_s}) is under 2 samples at {self.rate_hz} Hz.")
        if round(self.step_s * self.rate_hz) < 1:
            raise ConfigError(f"{where}: `step_s` ({self.step_s}) is under 1 sample at {self.rate_hz} Hz.")
        names = list(HAPT_BASIC if self.classes is None else self.classes)
        self.classes = _canonical_classes(names, f"{where}: `classes`")
        if not self.classes:
            raise ConfigError(f"{where}: `classes` is empty.")
        if not self.phases:
            raise ConfigError(f"{where}: no phases; list at least one under `phases`.")
        seen: dict[str, int] = {}
        for i, ph in enumerate(self.phases):
            if not isinstance(ph, Phase):
                raise ConfigError(f"{where}: phase #{i + 1} must be a Phase; got {type(ph).__name__}.")
            _check_phase(ph, i, seen, self)
            seen[ph.name] = i
        self._check_rest_phases()

    def _check_rest_phases(self) -> None:
        """A phase that takes the rest of a stream leaves nothing for later phases of those subjects."""
        for i, ph in enumerate(self.phases):
            if ph.duration_s is not None:
                continue
            for later in self.phases[i + 1 :]:
                if ph.subjects is None or later.subjects is None or set(ph.subjects) & set(later.subjects):
                    raise ConfigError(
                        f"{_label(ph, i)}: `duration_s` is null (the rest of each stream), so later phase "
                        f"'{later.name}' would get no data for the subjects they share; give a duration."
                    )


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _label(ph: Phase, i: int) -> str:
    return f"scenario phase '{ph.name}' (#{i + 1})"


def _canonical_classes(names: list[str], where: str, allowed: list[str] | None = None) -> list[str]:
    out = []
    for c in names:
        canon = canonical_name(str(c))
        valid = allowed if allowed is not None else list(CANONICAL)
        if canon is None or canon not in valid:
            raise ConfigError(f"{where}: unknown class {c!r}; valid: {', '.join(valid)}.")
        if canon in out:
            raise ConfigError(f"{where}: class {c!r} is listed twice.")
        out.append(canon)
    return out


def _check_phase(ph: Phase, i: int, seen: dict[str, int], scn: Scenario) -> None:
    label = _label(ph, i)
    if not isinstance(ph.name, str) or not ph.name.strip():
        raise ConfigError(f"scenario phase #{i + 1}: `name` must be a non-empty string; got {ph.name!r}.")
    if ph.name in seen:
        raise ConfigError(f"{label}: duplicate phase name (phase #{seen[ph.name] + 1} has it too).")
    if ph.duration_s is not None and (not _number(ph.duration_s) or ph.duration_s <= 0):
        raise ConfigError(f"{label}: duration_s must be > 0; got {ph.duration_s!r}.")
    if ph.like is not None and ph.like not in seen:
        later = [p.name for p in scn.phases[i + 1 :]]
        what = "a later phase" if ph.like in later or ph.like == ph.name else "no phase"
        raise ConfigError(
            f"{label}: `like` names {what} ({ph.like!r}); it must name an earlier phase: "
            f"{', '.join(seen) or 'none before this one'}."
        )
    try:
        device_profile(ph.device, f"phases[{i}].device")
        placement(ph.placement, f"phases[{i}].placement")
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc.reason}") from None
    if ph.subjects is not None:
        if not isinstance(ph.subjects, (list, tuple)) or not ph.subjects:
            raise ConfigError(
                f"{label}: `subjects` must be a non-empty list of subject ids or null; got {ph.subjects!r}."
            )
        bad = [s for s in ph.subjects if isinstance(s, bool) or not isinstance(s, int)]
        if bad:
            raise ConfigError(f"{label}: `subjects` must be integers; got {bad[0]!r}.")
        if len(set(ph.subjects)) != len(ph.subjects):
            raise ConfigError(f"{label}: `subjects` lists a subject twice: {ph.subjects!r}.")
    if ph.classes is not None:
        if not ph.classes:
            raise ConfigError(f"{label}: `classes` is empty; omit it for all scenario classes.")
        ph.classes = _canonical_classes(list(ph.classes), f"{label}: `classes`", scn.classes)
    if ph.transition not in TRANSITIONS:
        raise ConfigError(f"{label}: `transition` must be one of {', '.join(TRANSITIONS)}; got {ph.transition!r}.")
    if not _number(ph.transition_s) or ph.transition_s < 0:
        raise ConfigError(f"{label}: `transition_s` must be a number >= 0; got {ph.transition_s!r}.")
    if ph.transition == "gradual":
        if ph.transition_s <= 0:
            raise ConfigError(f"{label}: a gradual transition needs `transition_s` > 0; got {ph.transition_s!r}.")
        if i == 0:
            raise ConfigError(f"{label}: the first phase cannot be gradual (there is no previous phase).")
        if ph.duration_s is not None and ph.transition_s > ph.duration_s:
            raise ConfigError(
                f"{label}: `transition_s` ({ph.transition_s}) is longer than `duration_s` ({ph.duration_s})."
            )
    elif ph.transition_s:
        raise ConfigError(
            f"{label}: `transition_s` applies to gradual transitions only; this one is {ph.transition!r}."
        )


def load_scenario(source: str | Path | Mapping[str, Any], where: str = "scenario") -> Scenario:
    """A Scenario from a YAML file or a mapping (optionally wrapped in a top-level ``scenario:``).

    Errors are ConfigErrors naming the phase and key, prefixed with the file when there is one.
    """
    if isinstance(source, (str, Path)):
        where = str(source)
    try:
        return _load(source, where)
    except ConfigError as exc:
        reason = exc.reason
        prefix = f"In `{where}`: "
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
        if where != "scenario" and not reason.startswith("`" + where):
            reason = prefix + reason
        raise ConfigError(reason) from None


def _load(source: str | Path | Mapping[str, Any], where: str) -> Scenario:
    name_default = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError("no such scenario file.")
        import yaml

        try:
            source = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
        name_default = path.stem
    if not isinstance(source, Mapping):
        raise ConfigError(f"`{where}` must be a mapping with `phases`; got {type(source).__name__}.")
    raw = dict(source)
    if set(raw) == {"scenario"} and isinstance(raw["scenario"], Mapping):
        raw = dict(raw["scenario"])
    if name_default and "name" not in raw:
        raw["name"] = name_default
    phases_raw = raw.get("phases")
    if not isinstance(phases_raw, list) or not phases_raw:
        raise ConfigError(f"`{where}.phases` must be a non-empty list of phases; got {phases_raw!r}.")
    phases: list[Phase] = []
    by_name: dict[str, dict] = {}
    for i, p in enumerate(phases_raw):
        if isinstance(p, Phase):
            phases.append(p)
            continue
        if not isinstance(p, Mapping):
            raise ConfigError(f"scenario phase #{i + 1}: must be a mapping of phase settings; got {p!r}.")
        p = dict(p)
        label = f"scenario phase '{p.get('name', '?')}' (#{i + 1})"
        like = p.get("like")
        if like is not None:
            if like not in by_name:
                later = [q.get("name") for q in phases_raw[i:] if isinstance(q, Mapping)]
                what = "a later phase" if like in later else "no phase"
                raise ConfigError(
                    f"{label}: `like` names {what} ({like!r}); it must name an earlier phase: "
                    f"{', '.join(map(str, by_name)) or 'none before this one'}."
                )
            p = {**{k: by_name[like][k] for k in _LIKE_COPIES if k in by_name[like]}, **p}
        try:
            phases.append(from_mapping(Phase, p, f"phases[{i}]"))
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc.reason}") from None
        by_name.setdefault(str(p.get("name")), p)
    raw["phases"] = phases
    return from_mapping(Scenario, raw, where)

