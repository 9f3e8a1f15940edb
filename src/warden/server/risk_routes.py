"""An agent's risk: its score, the factors behind it in plain words, what the default
playbooks would do about it, and a summary of its baseline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from warden.identity.authority import IdentityAuthority
from warden.policy.admin import AdminAuthorizer
from warden.risk.engine import RiskEngine
from warden.server.auth import require


def risk_router(
    authority: IdentityAuthority, authorizer: AdminAuthorizer, risk: RiskEngine
) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/agents/{name}/risk")
    def read(request: Request, name: str) -> dict[str, Any]:
        require(request, authority, authorizer, "agent.read", ("Agent", name))
        spiffe_id = authority.agents.get(name).spiffe_id
        found = risk.assessment(spiffe_id)
        baseline = risk.baseline(spiffe_id)
        return {
            "agent": name,
            "score": found.score,
            "level": found.level,
            "factors": [{"words": w, "points": p} for w, p in found.factors],
            "would_contain": found.contain,
            "baseline": None if baseline is None else risk.summary(spiffe_id),
        }

    return router
