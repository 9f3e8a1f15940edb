"""Canonical JSON is exactly RFC 8785, whichever path writes it."""

from __future__ import annotations

import json
from typing import Any

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from warden.audit.canonical import canonical_json

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # valid Unicode
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)


@given(json_values)
def test_matches_the_reference(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_order_by_utf16_code_units() -> None:
    value = {"\U0001f600": 1, "\ue000": 2, "a": 3}  # U+E000 sorts after the emoji in UTF-16
    assert canonical_json(value) == rfc8785.dumps(value)
    assert list(json.loads(canonical_json(value))) == ["a", "\U0001f600", "\ue000"]


def test_what_json_cannot_hold_is_still_written() -> None:
    written = json.loads(canonical_json({"arg": "\ud800", "big": 2**70, "nan": float("nan")}))
    assert written == {"arg": "\ufffd", "big": str(2**70), "nan": "nan"}
