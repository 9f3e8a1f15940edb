"""What the gateway's two protocols share: the request as it arrived, the headers that never
cross, refusals as recorded denials, and the short answers a refused caller gets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from warden import untrusted_json
from warden.clock import utcnow
from warden.identity.verifier import VerifiedCredential
from warden.policy.model import Decision, DecisionRequest, Reason, Resource, new_decision_id

# Identity headers a client might send to pose as someone it is not: refused outright.
SPOOFABLE = (
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-ssl-client-cert",
    "x-ssl-client-s-dn",
    "ssl-client-cert",
    "x-client-verify",
)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Towards the upstream: no hop-by-hop headers, and never the agent's own credential.
NOT_FORWARDED = frozenset({*HOP_BY_HOP, "authorization"})
# The rest of an unread body is not read on: the connection ends with the answer.
CLOSE = {"connection": "close"}


class Refused(Exception):
    """Ends a request with a deny that is recorded, then answered with ``status``."""

    def __init__(
        self, status: int, policy: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.policy, self.message = status, policy, message
        self.headers = headers or {}


class RecordFailed(Exception):
    """A decision could not be made durable."""


RECORD_FAILED = Refused(503, "record_failed", "the decision could not be recorded")
INTERNAL_ERROR = Refused(500, "internal_error", "the gateway failed on this request")


@dataclass
class Incoming:
    """A request as the gateway read it, and who sent it once authenticated."""

    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    host: str
    client: str
    authn: str = "none"
    subject: str = "unauthenticated"
    credential: VerifiedCredential | None = None
    oversize: bool = False
    timed_out: bool = False
    # What the answer gave the agent, for the risk engine: records and data classes, or why
    # the gateway blocked it.
    records: int = 0
    classes: tuple[str, ...] = ()
    blocked: str = ""
    # The body read as JSON (or why it is not), once for every step that reads it.
    _document: Any = field(default=None, init=False, repr=False, compare=False)
    _read: bool = field(default=False, init=False, repr=False, compare=False)

    def body_json(self) -> Any:
        """The body as JSON, parsed once however many steps ask; ValueError if it is not."""
        if not self._read:
            try:
                self._document = untrusted_json.loads(self.body)
            except ValueError as exc:
                self._document = exc
            self._read = True
        if isinstance(self._document, ValueError):
            raise ValueError(str(self._document))
        return self._document

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


def forwarded_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The agent's headers for the upstream, names in lower case: without hop-by-hop headers,
    those the agent's ``Connection`` header names (RFC 9110 7.6.1), and its own credential."""
    dropped = set(NOT_FORWARDED)
    for key, value in headers:
        if key == b"connection":
            dropped.update(t.strip().lower() for t in value.decode("latin-1").split(","))
    return {
        name: v.decode("latin-1")
        for k, v in headers
        if (name := k.decode("latin-1").lower()) not in dropped
    }


def relayed_headers(upstream_headers: Any) -> list[tuple[bytes, bytes]]:
    """An upstream's response headers for the agent, without hop-by-hop headers."""
    return [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in upstream_headers.items()
        if k.lower() not in HOP_BY_HOP
    ]


def anonymous_request(incoming: Incoming) -> DecisionRequest:
    """What a refusal before the request could be described is recorded against."""
    return DecisionRequest(
        subject_type="Agent",
        subject_id=incoming.subject,
        action=f"http:{incoming.method.upper()}"[:128],
        resource=Resource("Endpoint", incoming.raw_path.decode("latin-1")[:512]),
        context={"authn": incoming.authn, "source_ip": incoming.client},
    )


def refusal(policy: str, message: str) -> Decision:
    """A deny made by the gateway itself (a bound, a bad credential, a broken component)."""
    return Decision(
        decision_id=new_decision_id(),
        decision="deny",
        reasons=(Reason(policy, "forbid", message[:500]),),
        obligations=(),
        risk={"score": 1000, "level": "unknown", "factors": []},
        policy_revision="",
        work_order=None,
        at=utcnow(),
    )


async def answer(
    send: Any, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    """A whole JSON answer in one write."""
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def answer_deny(
    send: Any,
    decision: Decision,
    status: int,
    headers: dict[str, str] | None = None,
    reason: str | None = None,
) -> None:
    """Short and identical in shape: the decision id to look up, and one reason code."""
    body = json.dumps(
        {"decision_id": decision.decision_id, "reason": reason or decision.reasons[0].policy}
    ).encode()
    await answer(send, status, body, headers)
