"""Untrusted JSON: read as Python reads JSON, refused with ValueError when it is not JSON or
is nested past what Warden's walks over a document can take."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.untrusted_json import MAX_DEPTH, loads

documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=30,
)


@given(documents)
def test_it_reads_what_the_standard_library_reads(document: object) -> None:
    text = json.dumps(document)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@given(st.integers() | st.integers(min_value=2**63 - 10, max_value=2**64 + 10).map(lambda i: -i))
def test_integers_of_any_size_are_read_exactly(number: int) -> None:
    assert loads(json.dumps({"account": number, "in": ["x", number]})) == {
        "account": number,
        "in": ["x", number],
    }
    assert type(loads(str(number))) is int


def test_what_orjson_refuses_and_json_allows_is_read_the_same() -> None:
    for text in ('{"n": 123456789012345678901234567890}', "[NaN, Infinity, 1e400]", '["\\ud800"]'):
        assert repr(loads(text)) == repr(json.loads(text))
    # A long integer among other characters, a lone surrogate in text given as str.
    for text in (r'["\u00e9t\u00e9", 123456789012345678901]', r'["\ud800", -12345678901234567890]'):
        assert repr(loads(text)) == repr(loads(text.encode())) == repr(json.loads(text))
    assert loads('["été", 99999999999999999999999]') == ["été", 99999999999999999999999]
    assert loads('["\ud800", 99999999999999999999999]') == ["\ud800", 99999999999999999999999]
    assert loads('{"a": 1, "a": 2}') == {"a": 2}  # the last duplicate counts, as in json
    assert loads('{"a": [1]}'.encode("utf-16")) == {"a": [1]}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 1024, 1025, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    for data in (b"[" * depth + b"]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(ValueError, match="nested"):
            loads(data)
    big = "[" * depth + "123456789012345678901234567890" + "]" * depth  # the stdlib's path
    with pytest.raises(ValueError, match="nested"):
        loads(big)


def test_as_deep_as_the_limit_and_wide_documents_are_read() -> None:
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    wide = json.dumps([{"id": i, "tags": [[i]]} for i in range(2000)])  # many brackets, shallow
    assert len(loads(wide)) == 2000
    assert len(loads(wide.replace("]]}", ", 123456789012345678901234567890]]}"))) == 2000


@pytest.mark.parametrize("data", [b"", b"{", b"nope", b"\xff\xfe\xfa", "[1,]"])
def test_what_is_not_json_is_a_value_error(data: bytes | str) -> None:
    with pytest.raises(ValueError):
        loads(data)
