"""What a log entry says. A decision entry tells the whole story of one decision; secrets and
the arguments a route marks sensitive are masked before anything is written, and the entry
says what was masked.

Masking replaces a value with ``masked:<keyed fingerprint>``: the value never reaches the
store, while equal values still match each other (the same routing number twice, or a new
one), which an investigation needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from warden.audit.canonical import is_plain
from warden.clock import isoformat
from warden.policy.model import Decision, DecisionRequest

ENTRY_VERSION = 1
# Argument and context names masked wherever they appear (compared in lower case).
DEFAULT_MASKED = (
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
    "ssn",
    "card_number",
    "cvv",
    "pin",
)
# Context keys the gateway uses to tell the log, not the policy: who exactly, and what to mask.
CREDENTIAL = "credential"
MASK = "mask"


@dataclass(frozen=True)
class Masking:
    """Which names are masked (``keys``, lower case) and how a masked value is written."""

    keys: frozenset[str]
    fingerprint: Callable[[bytes], str]

    @classmethod
    def of(cls, names: Iterable[str], fingerprint: Callable[[bytes], str]) -> Masking:
        return cls(frozenset(n.lower() for n in names), fingerprint)

    def apply(self, value: Any, path: str, extra: frozenset[str], masked: list[str]) -> Any:
        """``value`` with every masked name's value replaced; the paths go to ``masked``.
        Raises :class:`NotPlain` when ``value`` holds anything JCS writes differently from
        plain JSON, so the caller checks it and masks in one walk."""
        kind = type(value)
        if kind is dict:
            out = {}
            keys = self.keys
            for key, inner in value.items():
                if type(key) is not str or not (key.isascii() or _bmp(key)):
                    raise NotPlain()
                if key.lower() in keys or key in extra:
                    masked.append(f"{path}.{key}")
                    out[key] = "masked:" + self.fingerprint(repr(inner).encode())
                    continue
                inner_kind = type(inner)
                if inner_kind is str or inner_kind is bool or inner is None:
                    out[key] = inner  # the common case: no path is built
                elif inner_kind is int and -_MAX_SAFE <= inner <= _MAX_SAFE:
                    out[key] = inner
                else:
                    out[key] = self.apply(inner, f"{path}.{key}", extra, masked)
            return out
        if kind is list or kind is tuple:
            return [self.apply(v, f"{path}[{i}]", extra, masked) for i, v in enumerate(value)]
        if kind is str or kind is bool or value is None:
            return value
        if kind is int and -_MAX_SAFE <= value <= _MAX_SAFE:
            return value
        raise NotPlain()

    def apply_any(self, value: Any, path: str, extra: frozenset[str], masked: list[str]) -> Any:
        """As :meth:`apply`, for values that may not be plain (floats, odd keys)."""
        if isinstance(value, dict):
            out = {}
            for key, inner in value.items():
                if str(key).lower() in self.keys or key in extra:
                    masked.append(f"{path}.{key}")
                    out[key] = "masked:" + self.fingerprint(repr(inner).encode())
                else:
                    out[key] = self.apply_any(inner, f"{path}.{key}", extra, masked)
            return out
        if isinstance(value, (list, tuple)):
            return [self.apply_any(v, f"{path}[{i}]", extra, masked) for i, v in enumerate(value)]
        return value


class NotPlain(Exception):
    """A value JCS writes differently from plain JSON: the slow, exact path serialises it."""


_MAX_SAFE = 2**53 - 1


def _bmp(key: str) -> bool:
    return all(ord(c) <= 0xFFFF for c in key)


def _masked(
    masking: Masking, value: Any, path: str, extra: frozenset[str], masked: list[str]
) -> tuple[Any, bool]:
    mark = len(masked)
    try:
        return masking.apply(value, path, extra, masked), True
    except NotPlain:
        del masked[mark:]
        return masking.apply_any(value, path, extra, masked), False


def decision_entry(
    decision: Decision, request: DecisionRequest, enforcement_point: str, masking: Masking
) -> tuple[dict[str, Any], bool]:
    """Everything about one decision, masked; and whether it is plain JSON (the parts a
    caller gives, the context and the resource's properties, are checked: Warden's own parts
    are strings, integers and flags)."""
    context = dict(request.context)
    credential = context.pop(CREDENTIAL, None)
    extra = context.pop(MASK, None) or ()
    masked: list[str] = []
    context, plain_context = _masked(masking, context, "context", frozenset(extra), masked)
    properties, plain_properties = _masked(
        masking, request.resource.properties, "resource.properties", frozenset(), masked
    )
    plain = plain_context and plain_properties and is_plain(decision.risk)
    return {
        "v": ENTRY_VERSION,
        "kind": "decision",
        "decision_id": decision.decision_id,
        "at": isoformat(decision.at),
        "enforcement_point": enforcement_point,
        "subject": {
            "type": request.subject_type,
            "id": request.subject_id,
            "credential": credential,
            "authn": context.get("authn"),
        },
        "action": request.action,
        "resource": {
            "type": request.resource.type,
            "id": request.resource.id,
            "properties": properties,
        },
        "context": context,
        "decision": decision.decision,
        "reasons": [r.to_dict() for r in decision.reasons],
        "obligations": list(decision.obligations),
        "risk": decision.risk,
        "health": decision.health,
        "work_order": decision.work_order,
        "policy_revision": decision.policy_revision,
        "errors": list(decision.errors),
        "masked": masked,
    }, plain


def event_entry(kind: str, at: str, body: dict[str, Any]) -> dict[str, Any]:
    """An identity, policy or response event."""
    return {"v": ENTRY_VERSION, "kind": kind, "at": at, **body}
