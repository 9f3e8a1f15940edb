"""What the gateway tells the risk engine: each decided request of an authenticated agent,
as an observation, once its answer is known (what it carried, or why it was refused)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from warden.enforce.exchange import Incoming
from warden.policy.model import Decision, DecisionRequest
from warden.risk.observation import from_decision

if TYPE_CHECKING:
    from warden.enforce.gateway import Gateway

log = logging.getLogger("warden.gateway")


def observe(
    gateway: Gateway, incoming: Incoming, request: DecisionRequest, decision: Decision
) -> None:
    """Score the request; never fails it (the answer has gone: a fault here is logged)."""
    risk = gateway.risk
    if risk is None or incoming.credential is None:
        return  # no agent to learn about
    try:
        risk.observe(
            from_decision(
                request,
                decision,
                risk.clock(),
                source_ip=incoming.client,
                records=incoming.records,
                classes=incoming.classes,
                blocked=incoming.blocked,
            )
        )
    except Exception:
        log.exception("risk: an observation of %s was lost", incoming.subject)
