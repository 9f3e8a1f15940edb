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
        """``value`` with every masked name's value replaced; the paths go to ``masked``."""
        if isinstance(value, dict):
            out = {}
            for key, inner in value.items():
                where = f"{path}.{key}"
                if str(key).lower() in self.keys or key in extra:
                    masked.append(where)
                    out[key] = "masked:" + self.fingerprint(repr(inner).encode())
                else:
                    out[key] = self.apply(inner, where, extra, masked)
            return out
        if isinstance(value, list):
            return [self.apply(v, f"{path}[{i}]", extra, masked) for i, v in enumerate(value)]
        return value


def decision_entry(
    decision: Decision, request: DecisionRequest, enforcement_point: str, masking: Masking
) -> dict[str, Any]:
    """Everything about one decision, masked."""
    context = dict(request.context)
    credential = context.pop(CREDENTIAL, None)
    extra = context.pop(MASK, None) or ()
    masked: list[str] = []
    context = masking.apply(context, "context", frozenset(extra), masked)
    properties = masking.apply(
        request.resource.properties, "resource.properties", frozenset(), masked
    )
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
    }


def event_entry(kind: str, at: str, body: dict[str, Any]) -> dict[str, Any]:
    """An identity, policy or response event."""
    return {"v": ENTRY_VERSION, "kind": kind, "at": at, **body}
