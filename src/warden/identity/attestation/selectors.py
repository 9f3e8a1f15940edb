"""Selectors: ``type:key:value`` facts about a workload that an agent's registration requires.

An agent matches a caller when every one of its selectors is among the caller's. Registration
refuses a selector set that equals, contains or is contained in another agent's, so no caller can
ever match two agents; an agent with no selectors matches no caller.
"""

from __future__ import annotations

from collections.abc import Iterable

from warden.identity.errors import InvalidSelector, SelectorConflict

KNOWN = {
    "unix": {"uid", "gid", "path", "sha256", "cgroup"},
}
MAX_SELECTORS = 32
MAX_LENGTH = 1024


def parse_selector(value: str) -> str:
    """Validate one selector and return it."""
    kind, sep1, rest = value.partition(":")
    key, sep2, data = rest.partition(":")
    if not (sep1 and sep2) or not data:
        raise InvalidSelector(value, "use TYPE:KEY:VALUE")
    if len(value) > MAX_LENGTH or any(ord(c) < 0x20 for c in value):
        raise InvalidSelector(value, "too long or holds control characters")
    if kind not in KNOWN:
        raise InvalidSelector(value, f"unknown type {kind!r}; known: {', '.join(KNOWN)}")
    if key not in KNOWN[kind]:
        raise InvalidSelector(value, f"unknown key {key!r} for {kind}")
    if kind == "unix" and key in ("uid", "gid") and not data.isdigit():
        raise InvalidSelector(value, f"{key} is a number")
    if kind == "unix" and key == "sha256" and (len(data) != 64 or data.strip("0123456789abcdef")):
        raise InvalidSelector(value, "sha256 is 64 lowercase hex digits")
    return value


def parse_selectors(values: Iterable[str], *, strict: bool = True) -> frozenset[str]:
    """``strict=False`` (what a provisioning client sends): a value outside the selector
    grammar is kept as given. No attestor ever presents it, so an agent that requires it
    matches no caller: it fails closed, and the client reads back what it wrote."""
    selectors = frozenset(parse_selector(v) if strict else _opaque(v) for v in values)
    if len(selectors) > MAX_SELECTORS:
        raise InvalidSelector(",".join(sorted(selectors))[:200], f"at most {MAX_SELECTORS}")
    return selectors


def _opaque(value: str) -> str:
    try:
        return parse_selector(value)
    except InvalidSelector:
        if not value or len(value) > MAX_LENGTH or any(ord(c) < 0x20 for c in value):
            raise
        return value


def check_no_overlap(new: frozenset[str], others: Iterable[tuple[str, frozenset[str]]]) -> None:
    """Raise :class:`SelectorConflict` if ``new`` equals, contains or is inside another set."""
    if not new:
        return
    for name, existing in others:
        if existing and (new <= existing or existing <= new):
            raise SelectorConflict(name)


def matches(required: frozenset[str], presented: frozenset[str]) -> bool:
    """An agent with ``required`` selectors matches a caller presenting ``presented``."""
    return bool(required) and required <= presented
