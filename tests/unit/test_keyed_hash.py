"""HMAC-SHA256 from padded states is HMAC-SHA256, for keys shorter and longer than a block."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from warden.keyed_hash import HmacSha256


@given(st.binary(max_size=150), st.binary(max_size=100))
def test_it_is_hmac_sha256(key: bytes, message: bytes) -> None:
    keyed = HmacSha256(key)
    assert keyed.digest(message) == hmac.digest(key, message, "sha256")
    assert keyed.digest(message + b"!") == hmac.digest(key, message + b"!", "sha256")  # reusable
