"""Requests parked for a human: an allow that carries the ``approval`` obligation (from a
policy, or from a playbook's ``require_approval``) waits, its record already durable, until
the agent's owner or an approver approves it (then it is forwarded), denies it, or its time
runs out (both answered 403 with the decision id, and recorded as a deny)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from warden.enforce.exchange import Refused
from warden.identity.spiffe_id import SpiffeId
from warden.policy.model import Decision, DecisionRequest

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

POLL_S = 0.2


def approval_timeout(decision: Decision, default_s: float) -> float | None:
    """The parking time an allow asks for (``approval`` or ``approval:<seconds>``), or None
    when it needs no approval."""
    for obligation in decision.obligations:
        if obligation == "approval":
            return default_s
        if obligation.startswith("approval:"):
            try:
                return max(1.0, min(float(obligation.split(":", 1)[1]), 86_400.0))
            except ValueError:
                return default_s
    return None


async def park(gateway: Gateway, decision: Decision, request: DecisionRequest) -> None:
    """Wait for the approval ``decision`` needs; raises :class:`Refused` unless approved."""
    timeout_s = approval_timeout(decision, gateway.authority.settings.approval_timeout_s)
    if timeout_s is None or not decision.allowed:
        return
    if gateway.response is None:
        raise Refused(403, "approval_unavailable", "nobody can approve here")
    approvals = gateway.response.approvals
    snapshot = gateway.engine.snapshot
    facts = snapshot.agents.get(request.subject_id) if snapshot is not None else None
    approval = await asyncio.to_thread(
        approvals.park,
        agent=SpiffeId.parse(request.subject_id).name or request.subject_id,
        action=request.action,
        resource=f"{request.resource.type}:{request.resource.id}",
        decision_id=decision.decision_id,
        detail={"spiffe_id": request.subject_id, "owner": facts.owner if facts else ""},
        timeout_s=timeout_s,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        current = await asyncio.to_thread(approvals.get, approval.id)
        if current.status == "approved":
            return
        if current.status != "pending":
            raise Refused(403, f"approval_{current.status}", f"approval {approval.id}")
    if await asyncio.to_thread(approvals.time_out, approval.id):
        raise Refused(403, "approval_timed_out", f"approval {approval.id}: no decision in time")
    current = await asyncio.to_thread(approvals.get, approval.id)  # decided at the last moment
    if current.status != "approved":
        raise Refused(403, f"approval_{current.status}", f"approval {approval.id}")
