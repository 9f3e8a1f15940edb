"""Reading the decision log: decisions by agent, time and outcome; one decision with its
inclusion proof; the newest checkpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from warden.audit.checkpoint import VerifierKey
from warden.audit.checkpoint import verify as verify_checkpoint
from warden.audit.reader import LogReader
from warden.identity.authority import IdentityAuthority
from warden.policy.admin import AdminAuthorizer
from warden.server.auth import require

CONTROL_PLANE = ("ControlPlane", "warden")


def audit_router(authority: IdentityAuthority, authorizer: AdminAuthorizer) -> APIRouter:
    router = APIRouter()
    reader = LogReader(authority.store)

    @router.get("/v1/decisions")
    def decisions(
        request: Request,
        agent: Annotated[str | None, Query(max_length=2048, description="SPIFFE ID")] = None,
        decision: Annotated[str | None, Query(pattern="^(allow|deny)$")] = None,
        since: datetime | None = None,
        before: Annotated[int | None, Query(ge=0, description="entries before this seq")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        require(request, authority, authorizer, "audit.read", CONTROL_PLANE)
        entries = reader.search(
            agent=agent,
            decision=decision,
            kind="decision",
            since=since,
            before_seq=before,
            limit=limit,
        )
        return {"decisions": entries, "next": entries[-1]["seq"] if len(entries) == limit else None}

    @router.get("/v1/decisions/{decision_id}")
    def one(request: Request, decision_id: str) -> dict[str, Any]:
        require(request, authority, authorizer, "audit.read", CONTROL_PLANE)
        entry = reader.decision(decision_id)
        if entry is None:
            raise HTTPException(404, {"error": "not_found"})
        return entry

    @router.get("/v1/decisions/{decision_id}/proof")
    def proof(request: Request, decision_id: str) -> dict[str, Any]:
        require(request, authority, authorizer, "audit.read", CONTROL_PLANE)
        note = reader.latest_checkpoint_note()
        if note is None:
            raise HTTPException(409, {"error": "no_checkpoint_yet"})
        key = VerifierKey.parse(authority.ca.log_keys().verifier_key)
        found = reader.prove_decision(decision_id, verify_checkpoint(note, key))
        return {**found.to_dict(), "verifier_key": authority.ca.log_keys().verifier_key}

    @router.get("/v1/audit/checkpoint")
    def latest(request: Request) -> dict[str, Any]:
        require(request, authority, authorizer, "audit.read", CONTROL_PLANE)
        note = reader.latest_checkpoint_note()
        if note is None:
            raise HTTPException(404, {"error": "no_checkpoint_yet"})
        return {"checkpoint": note, "verifier_key": authority.ca.log_keys().verifier_key}

    return router
