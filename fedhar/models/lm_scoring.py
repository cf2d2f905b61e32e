"""Zero-shot classification by a causal LM's likelihood: no training, the LLM's own language model decides.

Each class phrase is scored by its mean per-token log-likelihood after a window's text and a
prompt (``"...\\nThe resident is"`` + ``" sleeping"``); the best-scoring allowed class wins. The
calibrated variant first subtracts each phrase's score after the prompt alone (its prior). The
text is run once per window and its key/value cache is reused for every candidate phrase, so the
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


class ZeroShotScorer:
    """``scores(texts)`` -> ``(N, K)`` mean log-likelihood of each class phrase after ``text + prompt``.

    ``phrases`` says how a class is written after the prompt (others: the name with spaces)."""

    def __init__(self, lm, tokenizer, classes: Sequence[str], prompt: str,
                 phrases: Mapping[str, str] | None = None, precision: str = "bf16") -> None:
        self.lm, self.tok, self.classes, self.prompt = lm, tokenizer, tuple(classes), prompt
        phrases = dict(phrases or {})
        self.candidates = []
        for c in self.classes:
            phrase = phrases.get(c, c.replace("_", " "))
            ids = tokenizer.encode(" " + phrase, add_special_tokens=False) if phrase.strip() else []
            if len(ids) == 0:
                raise ModelError(f"class `{c}`: its phrase {phrase!r} tokenised to nothing; give it a phrase in `phrases`.")
            self.candidates.append(ids)
        self.precision = precision
        self.seconds = 0.0

    @torch.inference_mode()
    def _score_one(self, text: str) -> np.ndarray:
        prefix = torch.tensor([self.tok.encode(text + self.prompt, add_special_tokens=False)])
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else torch.autocast("cpu", enabled=False)
        with ctx:
            out = self.lm(input_ids=prefix, use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)  # the next token after the prompt
        K, width = len(self.candidates), max(len(c) for c in self.candidates)
        cand = torch.full((K, width), 0, dtype=torch.long)
        valid = torch.zeros((K, width), dtype=torch.bool)
        for k, c in enumerate(self.candidates):
            cand[k, : len(c)] = torch.tensor(c)
            valid[k, : len(c)] = True
        total = first[cand[:, 0]].clone()
        if width > 1:
            cache = out.cache if "cache" in out else out.past_key_values
            cache.batch_repeat_interleave(K)
            attn = torch.cat([torch.ones((K, prefix.shape[1]), dtype=torch.long), valid[:, :-1].long()], 1)
            with ctx:
                nxt = self.lm(input_ids=cand[:, :-1], attention_mask=attn, cache=cache, use_cache=True)
            logp = torch.log_softmax(nxt.logits.float(), -1).gather(-1, cand[:, 1:, None])[..., 0]  # [K, width-1]
            total = total + (logp * valid[:, 1:]).sum(1)
        return (total / valid.sum(1)).numpy()

    def calibration(self) -> np.ndarray:
        """Each class phrase's score after the prompt alone, with no window text: the LLM's prior
        for the phrase. Subtracting it is contextual calibration (Zhao et al. 2021), which stops
        the most generic phrase from winning every window."""
        return self._score_one("").astype(np.float32)

    def scores(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.stack([self._score_one(t) for t in tqdm(texts, desc="zero-shot", disable=None if progress else True,
                                                          leave=False)]) if len(texts) else np.zeros((0, len(self.classes)))
        self.seconds += time.perf_counter() - t0
        return out.astype(np.float32)
