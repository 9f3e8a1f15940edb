"""HMAC-SHA256 (RFC 2104) from a key's inner and outer hash states, made once.

A copy of ``hmac``'s keyed object costs about as much as the MAC itself; two ``hashlib`` copies
of the padded states cost about half. The decision log seals every entry and its verifier
checks every seal, so that half counts. Standard library only: the verifier's worker processes
import it.
"""

from __future__ import annotations

import hashlib

_BLOCK = 64  # SHA-256's block size


class HmacSha256:
    """HMAC-SHA256 under one key."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = (key if len(key) <= _BLOCK else hashlib.sha256(key).digest()).ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, data: bytes) -> bytes:
        inner, outer = self._inner.copy(), self._outer.copy()
        inner.update(data)
        outer.update(inner.digest())
        return outer.digest()
