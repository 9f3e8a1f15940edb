"""RFC 8785 (JCS) canonical JSON for log entries.

Entries are mostly strings, integers, booleans and nulls with keys inside the Basic
Multilingual Plane; for those, orjson with sorted keys writes exactly the JCS form (the tests
hold it to the reference implementation), about a hundred times faster than a general JCS
serialiser. Anything else (a float, an integer past 2^53, a key beyond U+FFFF, whose JCS order
is by UTF-16 code units) goes through ``rfc8785``, the reference implementation. Strings that
are not valid Unicode (lone surrogates an agent can put in a JSON argument) are replaced,
character by character, with U+FFFD: an entry is always writable, so no caller can make
recording fail.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import rfc8785

_MAX_SAFE = 2**53 - 1


def _encode(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_json(value: Any) -> bytes:
    """The JCS bytes of ``value`` (dicts with str keys, lists, str, int, float, bool, None)."""
    try:
        if _plain(value):
            return _encode(value)
        return rfc8785.dumps(value)
    except (UnicodeError, orjson.JSONEncodeError, rfc8785.CanonicalizationError):
        return canonical_json(_sanitised(value))


def canonical_json_plain(value: Any) -> bytes:
    """The JCS bytes of ``value`` that the caller knows to be plain (see :func:`is_plain`):
    no check walks it first."""
    try:
        return _encode(value)
    except orjson.JSONEncodeError:  # a lone surrogate an agent sent: written replaced
        return canonical_json(value)


def is_plain(value: Any) -> bool:
    """Whether Python's encoder writes ``value`` exactly as JCS does."""
    return _plain(value)


def _plain(value: Any) -> bool:
    """No float, no integer beyond IEEE-754's exact range, no key outside the BMP."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, inner in item.items():
                if type(key) is not str or not _bmp(key):
                    return False
                stack.append(inner)
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is int:
            if not -_MAX_SAFE <= item <= _MAX_SAFE:
                return False
        elif kind is float or not (kind is str or kind is bool or item is None):
            return False
    return True


def _bmp(key: str) -> bool:
    # Without characters beyond U+FFFF, code point order is UTF-16 code unit order.
    return key.isascii() or all(ord(c) <= 0xFFFF for c in key)


def _sanitised(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_sanitised(str(k)): _sanitised(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitised(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_SAFE:
        return str(value)  # JCS numbers are IEEE-754 doubles: keep big integers exact as text
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    return value
