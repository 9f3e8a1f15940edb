"""Decisions to log, and a log over a test store."""

from __future__ import annotations

from typing import Any

from warden.audit.checkpoint import VerifierKey
from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority
from warden.policy.model import Decision, DecisionRequest, Reason, Resource, new_decision_id

AGENT = "spiffe://example.org/agent/invoice-bot"
GATEWAY = "spiffe://example.org/svc/gateway"


def a_decision(allow: bool = True, **context: Any) -> tuple[Decision, DecisionRequest]:
    decision = Decision(
        decision_id=new_decision_id(),
        decision="allow" if allow else "deny",
        reasons=(
            Reason("finance-agents-use-finance-apis", "permit", "finance agents may")
            if allow
            else Reason("payroll-only-hr", "forbid", "invoice agents never read payroll"),
        ),
        obligations=(),
        risk={"score": 120, "level": "low", "factors": [["off_hours", 100]]},
        policy_revision="sha256:" + "ab" * 32,
        work_order=None,
        at=utcnow(),
        health={"status": "healthy", "critical_vulns": 0, "high_vulns": 0},
    )
    request = DecisionRequest(
        "Agent",
        AGENT,
        "http:GET",
        Resource(
            "Endpoint", "ledger/invoices", {"domain": "finance", "classification": "internal"}
        ),
        {"authn": "mtls", "source_ip": "10.1.2.3", "args": {"limit": 10}, **context},
    )
    return decision, request


def log_key(authority: IdentityAuthority) -> VerifierKey:
    return VerifierKey.parse(authority.ca.log_keys().verifier_key)
