"""What the risk engine learns from: one observation per request an enforcement point decided
(and answered), and the trust events about an agent (its workload's health, DLP breaches)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from warden.policy.model import Decision, DecisionRequest

# Arguments whose values identify where money or data goes: a change is worth a look.
PAYMENT_ARGS = frozenset(
    {"routing_number", "iban", "account_number", "bank_account", "swift", "bic", "sort_code"}
)
# What a payment argument belongs to (a vendor's routing number, not routing numbers at large).
OWNER_ARGS = ("vendor", "payee", "beneficiary", "customer", "employee", "account_id")
# Arguments naming a destination: a new one is worth a look.
DESTINATION_ARGS = frozenset(
    {"to", "to_domain", "recipient", "destination", "url", "webhook", "email", "channel"}
)


@dataclass(slots=True)
class Observation:
    """One request as the risk engine sees it (``at``: seconds since the epoch, from whatever
    clock the caller runs on; a simulator drives its own)."""

    agent: str  # SPIFFE ID
    at: float
    action: str
    target: str  # "Endpoint:ledger/invoices", "Tool:finance-tools/tools/add"
    source_ip: str = ""
    outcome: str = "allow"  # allow | deny | error
    reason: str = ""  # the policy (or refusal) behind a deny
    classes: tuple[str, ...] = ()  # data classes the answer carried
    records: int = 0  # records the agent got
    size: int = 0  # bytes the agent got
    args: Mapping[str, Any] = field(default_factory=dict)
    work_order: str | None = None  # the work order the request acted under
    outbound_records: int = 0  # records the request sent out
    outbound_sensitive: int = 0  # of which PII, PHI or PCI
    network: str = ""  # the source's /24 or /64, filled in by the engine


@dataclass(frozen=True, slots=True)
class Signal:
    """A trust event about an agent: ``kind`` is ``health_changed`` (``detail["to"]``: the
    new status), ``dlp_window_exceeded``, ``residency_breach`` or ``bulk_export``."""

    agent: str
    at: float
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def from_decision(
    request: DecisionRequest,
    decision: Decision,
    at: float,
    *,
    source_ip: str = "",
    records: int = 0,
    classes: tuple[str, ...] = (),
    blocked: str = "",
) -> Observation:
    """The observation of one decided request (``blocked``: why its allowed answer was
    refused after all, by DLP or a bound)."""
    context = request.context
    outbound = context.get("outbound") or {}
    if not decision.allowed:
        outcome, reason = "deny", decision.reasons[0].policy if decision.reasons else ""
    else:
        outcome, reason = ("deny", blocked) if blocked else ("allow", "")
    return Observation(
        agent=request.subject_id,
        at=at,
        action=request.action,
        target=f"{request.resource.type}:{request.resource.id}",
        source_ip=source_ip or str(context.get("source_ip", "")),
        outcome=outcome,
        reason=reason,
        classes=classes,
        records=records,
        args=context.get("args") or {},
        work_order=decision.work_order,
        outbound_records=int(outbound.get("records", 0)),
        outbound_sensitive=sum(int(outbound.get(k, 0)) for k in ("pii", "phi", "pci")),
    )
