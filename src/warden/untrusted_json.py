"""JSON from agents, servers and upstreams, read one way everywhere on the request path.

orjson reads it; what orjson refuses and JSON (as Python reads it) allows (NaN, lone
surrogates, UTF-16) goes to the standard library, and so does a document with a run of 19
digits, which may be an integer past 64 bits that orjson would read as a float: an account
number a policy compares must be the number the upstream reads. So both read the same
documents the same way (a duplicate key: the last one counts, in both). Anything that is not
JSON raises ValueError, and so does a document nested deeper than :data:`MAX_DEPTH`: orjson
reads 1,024 levels but writes only 254, and Warden's own walks over a document (masking,
redaction, classification) recurse, so a deeper one would fail the request with a
RecursionError, which escapes every ``except ValueError``, instead of being refused.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_DEPTH = 254  # as deep as orjson writes
# A run of 19 digits, found as 19 zeros once every digit is a zero and every other byte a
# space: a C search, where the regular expression [0-9]{19} takes 25 ns a byte (30 us for a
# 1 KB answer, 25 ms for a megabyte). UTF-8 puts no other character's bytes in 0x30-0x39.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def loads(data: bytes | str) -> Any:
    """The document in ``data``; ValueError when it is not JSON or is nested too deep."""
    if _has_long_run(data):
        return _by_the_standard_library(data)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _by_the_standard_library(data)
    if _brackets(data) > MAX_DEPTH:  # it could be that deep: orjson writes it only if not
        try:
            orjson.dumps(document)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    return document


def _has_long_run(data: bytes | str) -> bool:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZEROS)


def _by_the_standard_library(data: bytes | str) -> Any:
    try:
        document = json.loads(data)
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc
    if _brackets(data) > MAX_DEPTH and _depth(document) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return document


def _brackets(data: bytes | str) -> int:
    """How many arrays and objects ``data`` could open: at least as many as it is deep."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _depth(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in node)
    return deepest
