"""Labelled budgets on a target dataset: ``k5`` (exactly 5 windows per class) or ``10%``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from fedhar.data.dataset import WindowDataset
from fedhar.data.splits import label_budget
from fedhar.exceptions import ConfigError


@dataclass(frozen=True)
class Budget:
    label: str
    k_per_class: int | None = None
    fraction: float | None = None

    def sample(self, ds: WindowDataset, seed: int = 0) -> WindowDataset:
        """The labelled windows of ``ds`` this budget allows (reproducible for a seed). A class
        with fewer than k windows (a dataset capped by ``lodo.max_windows``) gives all it has; the
        study records the windows each budget got."""
        if self.fraction == 1.0:
            return ds
        return label_budget(ds, self.k_per_class, self.fraction, seed, short="all", where="lodo.budgets")


def parse_budget(spec: object, where: str = "budget") -> Budget:
    """``"k5"`` / ``"5-shot"`` -> 5 per class; ``"10%"`` or ``0.1`` -> a fraction."""
    text = str(spec).strip().lower()
    with contextlib.suppress(ValueError):  # not a number where one belongs: refused below
        if text.startswith("k") or text.endswith("-shot"):
            k = int(text[1:] if text.startswith("k") else text[:-5])
            if k >= 1:
                return Budget(f"k={k}", k_per_class=k)
        elif text.endswith("%"):
            f = float(text[:-1]) / 100
            if 0 < f <= 1:
                return Budget(f"{float(text[:-1]):g}%", fraction=f)
        elif isinstance(spec, float) and 0 < spec <= 1:
            return Budget(f"{spec * 100:g}%", fraction=float(spec))
    raise ConfigError(f"`{where}`: {spec!r} is not a label budget; use kN (N windows per class, e.g. k5) or N% (e.g. 10%).")
