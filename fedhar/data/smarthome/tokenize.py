"""Texts to token ids with the backbone's own tokenizer, as int64 windows ``(N, 1, L)``.

The embedded SmolLM2 GGUF carries its tokenizer; it is cached with the fp32 weights
(:func:`fedhar.hub.resolve_pretrained`). ``bytes`` is a byte-level tokenizer for the
random ``tiny-llama`` test backbone (vocabulary 256), so tests need no model files.
Padding is ``-1``: the model builds its attention mask and pooling from it. Texts longer than
``max_tokens`` keep their *end* (the most recent events, where the label is decided); a ``prefix``
(the line describing the home) is always kept in front, so long windows never lose it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from fedhar.exceptions import ModelError

PAD = -1


class ByteTokenizer:
    """UTF-8 bytes as token ids: a dependency-free tokenizer for tests and tiny models."""

    vocab_size = 256

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    """The tokenizer of backbone ``name``: ``bytes``, ``tiny-llama`` (bytes), the embedded
    SmolLM2 (from its cache, written from the GGUF when missing), or any HF id / folder."""
    if name in ("bytes", "tiny-llama"):
        return ByteTokenizer()
    from transformers import AutoTokenizer

    from fedhar.hub import EMBEDDED, embedded_gguf, resolve_pretrained

    source = resolve_pretrained(name)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        if name not in EMBEDDED:
            raise ModelError(f"Could not load the tokenizer of `{name}`: {str(exc).splitlines()[0]}.") from None
    # A weight cache written before tokenizers were cached: add the tokenizer from the GGUF.
    gguf = embedded_gguf(name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(source)
    return tok


def encode_texts(texts: Sequence[str], tokenizer, max_tokens: int = 128, prefix: str = "") -> np.ndarray:
    """``(N, 1, L)`` int64 ids, right-padded with :data:`PAD`; ``L`` = longest text, at most ``max_tokens``.

    ``prefix`` is encoded once and put before every text; the text is cut from its start to fit the
    rest of ``max_tokens``, so the prefix survives truncation.
    """
    if max_tokens <= 0:
        raise ModelError(f"`max_tokens` must be positive; got {max_tokens}.")
    head = tokenizer.encode(prefix, add_special_tokens=False) if prefix else []
    room = max_tokens - len(head)
    if room <= 0:
        raise ModelError(f"the prefix {prefix[:60]!r} takes {len(head)} tokens, leaving none of `max_tokens` ({max_tokens}) "
                         "for the text.")
    rows = [head + tokenizer.encode(t, add_special_tokens=False)[-room:] for t in texts]
    width = max((len(r) for r in rows), default=1) or 1
    out = np.full((len(rows), 1, width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, 0, : len(r)] = r
    return out
