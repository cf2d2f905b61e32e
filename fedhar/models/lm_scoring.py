"""Zero-shot classification by a causal LM's likelihood: no training, the LLM's own language model decides.

Each class phrase is scored by its mean per-token log-likelihood after a window's text and a
prompt (``"...\\nThe resident is"`` + ``" sleeping"``); the best-scoring allowed class wins. The
calibrated variant first subtracts each phrase's score after the prompt alone (its prior); the
domain-calibrated one subtracts its mean score over unlabelled in-domain texts (:func:`domain_prior`,
the domain-conditional PMI of Holtzman et al. 2021). The text is run once per window and its key/value cache is reused for every candidate phrase, so the
cost is about one forward pass per window instead of one per class.

Generic on purpose: the smart-home texts (:mod:`fedhar.smarthome.zero_shot`) and the inertial
readings written as text (:mod:`fedhar.transfer.text_zero_shot`) both use it with their own
prompt and phrases.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from fedhar.exceptions import ModelError


def load_causal_lm(name: str, layers: int | None = None, seed: int = 0):
    """The backbone with its language-model head (the embedded SmolLM2, tiny-llama or a HF id)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    if name == "tiny-llama":
        torch.manual_seed(seed)
        cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
        return AutoModelForCausalLM.from_config(cfg).eval()
    from fedhar.hub import resolve_pretrained

    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_pretrained(name), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Could not load `{name}` as a language model: {str(exc).splitlines()[0]}.") from None
    if layers is not None:
        from fedhar.models.backbones import truncate_blocks

        truncate_blocks(model.model, layers)
    return model.eval()


NORMALIZATIONS = ("mean", "sum", "first")
"""How a phrase's per-token log-likelihoods become its score: their mean (no penalty for length, but
a long phrase whose later tokens follow from its first ones scores high), their sum (the phrase's
log-probability: long phrases pay for every token), or the first token's alone."""


def reduce_token_logps(logp: np.ndarray, valid: np.ndarray, how: str) -> np.ndarray:
    """``(..., K)`` phrase scores from ``(..., K, width)`` per-token log-probabilities under ``how``."""
    if how not in NORMALIZATIONS:
        raise ModelError(f"unknown phrase normalisation {how!r}; choose one of {', '.join(NORMALIZATIONS)}.")
    if how == "first":
        return logp[..., 0]
    total = (logp * valid).sum(-1)
    return total if how == "sum" else total / valid.sum(-1)


class ZeroShotScorer:
    """``scores(texts)`` -> ``(N, K)`` score of each class phrase after ``text + prompt``: the mean
    per-token log-likelihood, or another of :data:`NORMALIZATIONS` (``normalize``).

    ``phrases`` says how a class is written after the prompt (others: the name with spaces)."""

    def __init__(self, lm, tokenizer, classes: Sequence[str], prompt: str,
                 phrases: Mapping[str, str] | None = None, precision: str = "bf16", normalize: str = "mean") -> None:
        self.lm, self.tok, self.classes, self.prompt = lm, tokenizer, tuple(classes), prompt
        phrases = dict(phrases or {})
        self.candidates = []
        for c in self.classes:
            phrase = phrases.get(c, c.replace("_", " "))
            ids = tokenizer.encode(" " + phrase, add_special_tokens=False) if phrase.strip() else []
            if len(ids) == 0:
                raise ModelError(f"class `{c}`: its phrase {phrase!r} tokenised to nothing; give it a phrase in `phrases`.")
            self.candidates.append(ids)
        reduce_token_logps(np.zeros((1, 1)), np.ones((1, 1), bool), normalize)  # a bad name fails here, not after scoring
        self.precision, self.normalize = precision, normalize
        self.width = max(len(c) for c in self.candidates)
        self.valid = np.zeros((len(self.candidates), self.width), dtype=bool)
        for k, c in enumerate(self.candidates):
            self.valid[k, : len(c)] = True
        self.seconds = 0.0

    @torch.inference_mode()
    def token_logps(self, text: str) -> np.ndarray:
        """``(K, width)`` log-probability of each phrase token after ``text + prompt`` (0 past a phrase's end)."""
        prefix = torch.tensor([self.tok.encode(text + self.prompt, add_special_tokens=False)])
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else torch.autocast("cpu", enabled=False)
        with ctx:
            out = self.lm(input_ids=prefix, use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)  # the next token after the prompt
        K, width = len(self.candidates), self.width
        cand = torch.full((K, width), 0, dtype=torch.long)
        valid = torch.from_numpy(self.valid)
        for k, c in enumerate(self.candidates):
            cand[k, : len(c)] = torch.tensor(c)
        logp = torch.zeros((K, width))
        logp[:, 0] = first[cand[:, 0]]
        if width > 1:
            cache = out.cache if "cache" in out else out.past_key_values
            cache.batch_repeat_interleave(K)
            attn = torch.cat([torch.ones((K, prefix.shape[1]), dtype=torch.long), valid[:, :-1].long()], 1)
            with ctx:
                nxt = self.lm(input_ids=cand[:, :-1], attention_mask=attn, cache=cache, use_cache=True)
            rest = torch.log_softmax(nxt.logits.float(), -1).gather(-1, cand[:, 1:, None])[..., 0]  # [K, width-1]
            logp[:, 1:] = rest * valid[:, 1:]
        return logp.numpy()

    def _score_one(self, text: str) -> np.ndarray:
        return reduce_token_logps(self.token_logps(text), self.valid, self.normalize)

    def calibration(self) -> np.ndarray:
        """Each class phrase's score after the prompt alone, with no window text: the LLM's prior
        for the phrase. Subtracting it is contextual calibration (Zhao et al. 2021), which stops
        the most generic phrase from winning every window."""
        return self._score_one("").astype(np.float32)

    def all_token_logps(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """``(N, K, width)`` :meth:`token_logps` of every text: every normalisation from one pass."""
        t0 = time.perf_counter()
        out = np.stack([self.token_logps(t) for t in tqdm(texts, desc="zero-shot", disable=None if progress else True,
                                                           leave=False)]) if len(texts) else np.zeros((0,) + self.valid.shape)
        self.seconds += time.perf_counter() - t0
        return out.astype(np.float32)

    def scores(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        return reduce_token_logps(self.all_token_logps(texts, progress), self.valid, self.normalize).astype(np.float32)


def domain_prior(token_logps: np.ndarray, valid: np.ndarray, how: str = "mean") -> np.ndarray:
    """``(K,)`` each phrase's mean score over unlabelled in-domain texts (``(M, K, width)`` from
    :meth:`ZeroShotScorer.all_token_logps`): how much the LM favours a phrase after any text of the
    domain, whatever the text says. Subtracting it leaves what the text itself adds (domain-conditional
    PMI), so a phrase the LM likes everywhere no longer wins every window."""
    if len(token_logps) == 0:
        raise ModelError("domain_prior needs at least one in-domain text.")
    return reduce_token_logps(token_logps, valid, how).mean(0).astype(np.float32)
