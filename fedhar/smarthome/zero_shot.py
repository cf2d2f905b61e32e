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

__all__ = ["PHRASES", "PROMPT", "ZeroShotScorer", "investigate", "load_causal_lm", "texts_of"]

PHRASES = {
    "sleeping": "sleeping", "toileting": "using the toilet", "showering": "taking a shower",
    "grooming": "grooming", "preparing_breakfast": "preparing breakfast", "preparing_lunch": "preparing lunch",
    "preparing_dinner": "preparing dinner", "snack_or_drink": "having a snack or a drink",
    "leaving": "out of the house", "relaxing": "relaxing", "other": "doing something else",
}
"""How each canonical home activity is said after the prompt (others: the name with spaces)."""
PROMPT = "\nThe resident is"
CALIBRATIONS = ("none", "content-free", "domain")
"""No calibration; minus the phrase's score after the prompt alone; minus its mean score after
unlabelled training texts of the home (:func:`fedhar.models.lm_scoring.domain_prior`)."""
ROWS = {"zero-shot": "none", "zero-shot calibrated": "content-free", "zero-shot domain-calibrated": "domain"}
"""The study's main-table rows: the first prompt, mean per-token normalisation, each calibration."""


class ZeroShotScorer(lm_scoring.ZeroShotScorer):
    """:class:`fedhar.models.lm_scoring.ZeroShotScorer` with the smart-home prompt and phrases as
    defaults (``phrases`` given here are added to :data:`PHRASES`)."""

    def __init__(self, lm, tokenizer, classes: Sequence[str], prompt: str = PROMPT,
                 phrases: Mapping[str, str] | None = None, precision: str = "bf16", normalize: str = "mean") -> None:
        super().__init__(lm, tokenizer, classes, prompt, {**PHRASES, **(phrases or {})}, precision, normalize)


def texts_of(X: np.ndarray, tokenizer) -> list[str]:
    """Token-id windows back to their texts (for scoring with a causal LM)."""
    return [tokenizer.decode([int(i) for i in row.reshape(-1) if i != PAD]) for row in X]


def score_variants(test_logps: np.ndarray, empty_logps: np.ndarray, domain_logps: np.ndarray,
                   valid: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """``{(normalisation, calibration): (N, K) scores}`` from one scoring pass: the test texts'
    per-token log-probabilities, the prompt alone's, and those of unlabelled in-domain texts."""
    out = {}
    for how in lm_scoring.NORMALIZATIONS:
        raw = lm_scoring.reduce_token_logps(test_logps, valid, how)
        priors = {"none": 0.0, "content-free": lm_scoring.reduce_token_logps(empty_logps, valid, how),
                  "domain": lm_scoring.domain_prior(domain_logps, valid, how)}
        out.update({(how, cal): raw - prior for cal, prior in priors.items()})
    return out


def investigate(lm, tokenizer, train, test, prompts: Sequence[str], domain_windows: int, precision: str,
                seed: int = 0) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Why zero-shot scoring does what it does: every prompt x phrase normalisation x calibration,
    each with macro-F1, accuracy and how often its most-predicted class is predicted (a scorer
    that names one activity for every window is the failure this looks for). The domain prior
    uses ``domain_windows`` training windows, labels unused. Returns the rows and the main rows'
    scores (:data:`ROWS`, first prompt, mean normalisation)."""
    from fedhar.distill.compare import score
    from fedhar.training.loop import apply_label_mask, label_mask_of

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train), size=min(domain_windows, len(train)), replace=False))
    test_texts, domain_texts = texts_of(test.X, tokenizer), texts_of(train.X[pick], tokenizer)
    mask = label_mask_of(test)
    rows, main = [], {}
    for prompt in prompts:
        scorer = ZeroShotScorer(lm, tokenizer, train.classes, prompt=prompt, precision=precision)
        variants = score_variants(scorer.all_token_logps(test_texts), scorer.token_logps(""),
                                  scorer.all_token_logps(domain_texts, progress=False), scorer.valid)
        for (how, cal), s in variants.items():
            pred = apply_label_mask(s, mask).argmax(1)
            top = np.bincount(pred, minlength=len(train.classes))
            rows.append({"prompt": prompt.strip(), "normalisation": how, "calibration": cal, **score(test, pred),
                         "top_class": train.classes[int(top.argmax())], "top_share": float(top.max() / max(1, len(pred))),
                         "classes_predicted": int((top > 0).sum()), "seconds": scorer.seconds})
            if prompt == prompts[0] and how == "mean":
                main[cal] = s
    return rows, main
