"""Seeds derived from the run seed. Light (stdlib only), so the config can check tiers without torch."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int | str) -> int:
    """A 31-bit seed from (run seed, client id, round, ...), independent of execution order."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
