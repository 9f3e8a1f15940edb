"""The wire types of the policy decision point: a decision request and a decision.

Both have the shapes in ARCHITECTURE.md, used alike by the Python API, ``/v1/decide`` and the
AuthZEN evaluation API. A denial is a value: :class:`Decision` always comes back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from warden.clock import isoformat
from warden.errors import UntrustedInputError

MAX_ID_LENGTH = 2048
MAX_CONTEXT_KEYS = 64


class InvalidDecisionRequest(UntrustedInputError):
    code = "invalid_decision_request"
    public_message = "invalid decision request"


@dataclass(frozen=True, slots=True)
class Resource:
    type: str
    id: str
    properties: dict[str, Any] = field(default_factory=dict)
    # The attributes policies see, as a hashable key for Warden's memo (computed once).
    key: tuple[Any, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        props = self.properties
        object.__setattr__(self, "key", tuple((k, _hashable(props.get(k))) for k in RESOURCE_KEYS))


RESOURCE_KEYS = ("classification", "region", "domain", "tags")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """Who (``subject_id``, a SPIFFE ID) does what (``action``) to what (``resource``), and in
    which circumstances (``context``: authn, source_ip, tool, args, destination_region, ...)."""

    subject_type: str
    subject_id: str
    action: str
    resource: Resource
    context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> DecisionRequest:
        """Parse the JSON shape; :class:`InvalidDecisionRequest` says what is wrong."""
        if not isinstance(data, dict):
            raise InvalidDecisionRequest("a decision request is a JSON object")
        subject = _object(data, "subject")
        action = _object(data, "action")
        resource = _object(data, "resource")
        context = data.get("context", {})
        if not isinstance(context, dict) or len(context) > MAX_CONTEXT_KEYS:
            raise InvalidDecisionRequest(f"context is an object of at most {MAX_CONTEXT_KEYS} keys")
        properties = resource.get("properties", {})
        if not isinstance(properties, dict):
            raise InvalidDecisionRequest("resource.properties is an object")
        return cls(
            subject_type=_string(subject, "type", "subject"),
            subject_id=_string(subject, "id", "subject"),
            action=_string(action, "name", "action"),
            resource=Resource(
                _string(resource, "type", "resource"),
                _string(resource, "id", "resource"),
                properties,
            ),
            context=context,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "action": {"name": self.action},
            "resource": {
                "type": self.resource.type,
                "id": self.resource.id,
                "properties": self.resource.properties,
            },
            "context": self.context,
        }


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise InvalidDecisionRequest(f"{key} is a required object")
    return value


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidDecisionRequest(f"{where}.{key} is a required non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class Reason:
    policy: str
    effect: Literal["permit", "forbid"]
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "effect": self.effect, "message": self.message}


@dataclass(frozen=True)
class Decision:
    """The outcome of one request, with everything needed to explain it."""

    decision_id: str
    decision: Literal["allow", "deny"]
    reasons: tuple[Reason, ...]
    obligations: tuple[str, ...]
    risk: dict[str, Any]
    policy_revision: str
    work_order: str | None
    at: datetime
    errors: tuple[str, ...] = ()
    health: dict[str, Any] = field(default_factory=dict)  # the workload's, at that instant

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "decision": self.decision,
            "reasons": [r.to_dict() for r in self.reasons],
            "obligations": list(self.obligations),
            "risk": self.risk,
            "policy_revision": self.policy_revision,
            "work_order": self.work_order,
            "health": self.health,
            "at": isoformat(self.at),
        }


def new_decision_id() -> str:
    """A UUIDv7 (RFC 9562): sortable by time, unique without coordination."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
