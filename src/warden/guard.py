"""``warden.guard``: decide tools that agent frameworks call in process, exactly like the
gateway decides HTTP requests: authenticate the caller's credential, decide, reserve, record
durably, and only then run the tool.

    guard = Guard(authority, engine, recorder, enforcement_point="spiffe://.../svc/guard")

    @guard.tool("export_customers", properties={"domain": "finance", "classification": "pii"})
    def export_customers(rows: int, destination: str) -> str: ...

    with guard.acting_as(svid_chain):          # or a JWT-SVID for the guard's SPIFFE ID
        export_customers(rows=100, destination="s3://finance-exports")

A denial raises :class:`ToolDenied` carrying the decision; the tool never runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from cryptography import x509

from warden.audit.recorder import DecisionRecorder
from warden.clock import utcnow
from warden.errors import EnforcementError, WardenError
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import CredentialRejected
from warden.policy.engine import PolicyEngine
from warden.policy.model import Decision, DecisionRequest, Reason, Resource, new_decision_id

P = ParamSpec("P")
R = TypeVar("R")
Credential = Sequence[x509.Certificate] | str
_current: ContextVar[Credential | None] = ContextVar("warden_guard_credential", default=None)


class ToolDenied(EnforcementError):
    """The guard denied a tool call; ``decision`` says why (and is on record)."""

    code = "tool_denied"

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"denied by {decision.reasons[0].policy} ({decision.decision_id})")
        self.decision = decision


class Guard:
    def __init__(
        self,
        authority: IdentityAuthority,
        engine: PolicyEngine,
        recorder: DecisionRecorder,
        *,
        enforcement_point: str,
    ) -> None:
        self._authority = authority
        self._engine = engine
        self._recorder = recorder
        self.enforcement_point = enforcement_point

    @contextmanager
    def acting_as(self, credential: Credential) -> Iterator[None]:
        """Calls inside are made as the holder of ``credential`` (an X.509-SVID chain, or a
        JWT-SVID whose audience is this guard)."""
        token = _current.set(credential)
        try:
            yield
        finally:
            _current.reset(token)

    def check(
        self, action: str, resource: Resource, *, tool: str = "", args: dict[str, Any] | None = None
    ) -> Decision:
        """Authenticate, decide, reserve and record; the decision if allowed, else raise."""
        credential = _current.get()
        subject, authn = "unauthenticated", "none"
        request = DecisionRequest(
            "Agent", subject, action, resource, {"authn": authn, "tool": tool, "args": args or {}}
        )
        try:
            if credential is None:
                raise _Refusal("no_credential", "no credential: call inside acting_as()")
            if isinstance(credential, str):
                verified = self._authority.verifier.verify_jwt(credential, self.enforcement_point)
                authn = "jwt"
            else:
                verified = self._authority.verifier.verify_x509(list(credential))
                authn = "mtls"
            subject = str(verified.spiffe_id)
            request = DecisionRequest(
                "Agent",
                subject,
                action,
                resource,
                {"authn": authn, "tool": tool, "args": args or {}},
            )
            decision = self._engine.reserve(self._engine.decide(request))
        except CredentialRejected as exc:
            decision = _deny(f"credential_{exc.code}", exc.detail)
        except _Refusal as exc:
            decision = _deny(exc.policy, exc.message)
        except WardenError as exc:  # stale status view, store down: fail closed
            decision = _deny(exc.code, exc.message)
        self._recorder.record(decision, request, enforcement_point=self.enforcement_point)
        if not decision.allowed:
            raise ToolDenied(decision)
        return decision

    def tool(
        self, name: str, *, action: str = "mcp:tools/call", properties: dict[str, Any] | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a tool: every call is decided with its keyword arguments as ``args``."""
        resource = Resource("Tool", name, dict(properties or {}))

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(function)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
                self.check(action, resource, tool=name, args=dict(kwargs))
                return function(*args, **kwargs)

            return guarded

        return decorate


class _Refusal(Exception):
    def __init__(self, policy: str, message: str) -> None:
        super().__init__(message)
        self.policy, self.message = policy, message


def _deny(policy: str, message: str) -> Decision:
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
