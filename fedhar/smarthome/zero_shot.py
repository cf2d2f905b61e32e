"""Zero-shot activity recognition from a home's event text: no training, the LLM's own language
model decides which activity name follows the events.

The scorer itself is generic and lives in :mod:`fedhar.models.lm_scoring` (the inertial
readings-as-text rows use it too); this module adds the smart-home prompt and activity phrases,
and keeps the names its callers import (``load_causal_lm``, ``ZeroShotScorer``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from fedhar.data.smarthome.tokenize import PAD
from fedhar.models import lm_scoring
from fedhar.models.lm_scoring import load_causal_lm

__all__ = ["PHRASES", "PROMPT", "ZeroShotScorer", "load_causal_lm", "texts_of"]

PHRASES = {
    "sleeping": "sleeping", "toileting": "using the toilet", "showering": "taking a shower",
    "grooming": "grooming", "preparing_breakfast": "preparing breakfast", "preparing_lunch": "preparing lunch",
    "preparing_dinner": "preparing dinner", "snack_or_drink": "having a snack or a drink",
    "leaving": "out of the house", "relaxing": "relaxing", "other": "doing something else",
}
"""How each canonical home activity is said after the prompt (others: the name with spaces)."""
PROMPT = "\nThe resident is"


class ZeroShotScorer(lm_scoring.ZeroShotScorer):
    """:class:`fedhar.models.lm_scoring.ZeroShotScorer` with the smart-home prompt and phrases as
    defaults (``phrases`` given here are added to :data:`PHRASES`)."""

    def __init__(self, lm, tokenizer, classes: Sequence[str], prompt: str = PROMPT,
                 phrases: Mapping[str, str] | None = None, precision: str = "bf16") -> None:
        super().__init__(lm, tokenizer, classes, prompt, {**PHRASES, **(phrases or {})}, precision)


def texts_of(X: np.ndarray, tokenizer) -> list[str]:
    """Token-id windows back to their texts (for scoring with a causal LM)."""
    return [tokenizer.decode([int(i) for i in row.reshape(-1) if i != PAD]) for row in X]
