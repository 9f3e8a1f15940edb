"""Who is using the console and what they may do: the operator behind a session, the admin
pack's decision on each page and action, and the decision-log entry every action leaves.

A person signs in with a one-time link or OpenID Connect and becomes the operator the sign-in
names; every page and action is then decided by the admin pack for that operator, exactly as
the API decides for the operator's SVID. Every action (allowed or refused) and every sign-in
is a durable entry of the decision log before the answer is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from warden.audit.recorder import DecisionRecorder
from warden.console.oidc import OidcLogin
from warden.console.sessions import ConsoleSession, ConsoleSessions
from warden.console.views import ConsoleViews
from warden.errors import NotFoundError, WardenError
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import OperatorNotFound
from warden.policy.admin import AdminAuthorizer, AdminDecision, AdminPrincipal
from warden.policy.engine import PolicyEngine
from warden.response.engine import ResponseEngine
from warden.risk.setup import learning_of
from warden.trust.health import HealthBook

log = logging.getLogger("warden.console")
COOKIE = "__Host-warden-console"
CONTROL_PLANE = ("ControlPlane", "warden")
AGENT_ACTIONS = {
    "quarantine": ("agent.quarantine", "Quarantine", "every request is refused until released"),
    "release": ("quarantine.release", "Release", "the quarantine is lifted"),
    "revoke": ("agent.revoke", "Revoke", "its credentials stop working at the next request"),
}


@dataclass(frozen=True)
class ConsoleUser:
    """The person behind a live session, as the operator the admin pack decides for."""

    session: ConsoleSession
    principal: AdminPrincipal
    role: str

    @property
    def name(self) -> str:
        return self.principal.name


class Refused(Exception):
    """Answer with a page: 401 (no session), 403 (not permitted), 404, 400. ``to_login``:
    a page asked for without a session, which sends the browser to sign in instead."""

    def __init__(self, status: int, title: str, detail: str = "", *, to_login: bool = False):
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail
        self.to_login = to_login


@dataclass
class Console:
    """The parts the console reads and acts through."""

    authority: IdentityAuthority
    authorizer: AdminAuthorizer
    recorder: DecisionRecorder | None
    engine: PolicyEngine | None = None
    response: ResponseEngine | None = None
    health: HealthBook | None = None
    oidc: OidcLogin | None = None

    def __post_init__(self) -> None:
        self.sessions = ConsoleSessions(
            self.authority.store, self.authority.operators, self.authority.settings
        )
        self.views = ConsoleViews(
            self.authority.store,
            self.authority.ca.log_keys().verifier_key,
            learning_of(self.authority.settings),
        )

    @staticmethod
    def link_for(authority: IdentityAuthority, operator: str, *, by: str) -> str:
        """A one-time login token for ``operator`` (for a link: /console/login?token=)."""
        sessions = ConsoleSessions(authority.store, authority.operators, authority.settings)
        return sessions.create_link(operator, by=by)

    # -- who -----------------------------------------------------------------------------------

    def user(self, request: Request) -> ConsoleUser:
        """The signed-in operator; 401 without a live session or an active operator."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise Refused(401, "Sign in first", "This page needs a console session.", to_login=True)
        try:
            operator = self.authority.operators.get(session.operator)
        except OperatorNotFound:
            operator = None
        if operator is None or operator.status != "active":
            self.sessions.close_all(session.operator)
            raise Refused(
                401, "Sign in first", "The operator of this session is not active.", to_login=True
            )
        principal = AdminPrincipal(
            "Operator",
            operator.name,
            operator.spiffe_id,
            {"role": operator.role, "name": operator.name},
        )
        return ConsoleUser(session, principal, operator.role)

    def may(
        self,
        user: ConsoleUser,
        action: str,
        resource: tuple[str, str] = CONTROL_PLANE,
        attrs: dict[str, str | bool] | None = None,
    ) -> AdminDecision:
        return self.authorizer.authorize(user.principal, action, resource, attrs)

    def require(
        self,
        user: ConsoleUser,
        action: str,
        resource: tuple[str, str] = CONTROL_PLANE,
        attrs: dict[str, str | bool] | None = None,
    ) -> None:
        """Refuse (and record the refusal) unless the admin pack permits ``action``."""
        self._decided(user, action, resource, attrs)

    def _decided(
        self,
        user: ConsoleUser,
        action: str,
        resource: tuple[str, str],
        attrs: dict[str, str | bool] | None,
        detail: dict[str, Any] | None = None,
        subject: str | None = None,
    ) -> AdminDecision:
        """The admin pack's decision; a refusal is recorded and answered 403."""
        decision = self.may(user, action, resource, attrs)
        if not decision.allowed:
            self.record(user, action, resource, decision, "refused", detail, subject)
            raise Refused(
                403,
                "Not permitted",
                f"The {user.role} role may not {action} on {resource[0]} {resource[1]}.",
            )
        return decision

    def act(
        self,
        user: ConsoleUser,
        action: str,
        resource: tuple[str, str],
        do: Callable[[], Any],
        *,
        attrs: dict[str, str | bool] | None = None,
        detail: dict[str, Any] | None = None,
        subject: str | None = None,
    ) -> Any:
        """Decide, do, and record a console action; the record is durable before the answer."""
        decision = self._decided(user, action, resource, attrs, detail, subject)
        try:
            result = do()
        except WardenError as exc:
            self.record(user, action, resource, decision, f"failed: {exc.code}", detail, subject)
            raise Refused(409, "Could not do that", exc.message) from exc
        self.record(user, action, resource, decision, "done", detail, subject)
        return result

    def record(
        self,
        user: ConsoleUser,
        action: str,
        resource: tuple[str, str],
        decision: AdminDecision,
        outcome: str,
        detail: dict[str, Any] | None = None,
        subject: str | None = None,
    ) -> None:
        if self.recorder is None:
            return
        self.recorder.append(
            "console",
            {
                "by": user.principal.spiffe_id,
                "operator": user.name,
                "role": user.role,
                "via": user.session.via,
                "action": action,
                "resource": {"type": resource[0], "id": resource[1]},
                "allowed": decision.allowed,
                "policies": list(decision.policies),
                "reasons": [r for r in decision.reasons if r],
                "outcome": outcome,
                "detail": detail or {},
            },
            subject=subject,
        )

    def record_sign_in(self, operator: str, via: str, outcome: str, reason: str = "") -> None:
        if self.recorder is not None:
            self.recorder.append(
                "console",
                {
                    "operator": operator,
                    "via": via,
                    "action": "console.sign_in",
                    "outcome": outcome,
                    "reason": reason,
                },
            )

    def agent_attrs(self, name: str) -> tuple[tuple[str, str], dict[str, str | bool], str]:
        """An agent as the admin pack sees it (with its owner) and its SPIFFE ID; 404."""
        try:
            agent = self.authority.agents.get(name)
        except NotFoundError as exc:
            raise Refused(404, "No such agent", name[:63]) from exc
        return ("Agent", name), {"owner": agent.owner}, agent.spiffe_id
