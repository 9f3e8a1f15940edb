"""Workload health: ingest an agent's vulnerability reports, read its health."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from warden.identity.authority import IdentityAuthority
from warden.policy.admin import AdminAuthorizer
from warden.server.auth import require
from warden.trust.health import HealthBook
from warden.trust.reports import InvalidReport


def health_router(
    authority: IdentityAuthority, authorizer: AdminAuthorizer, book: HealthBook
) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/agents/{name}/health")
    def ingest(
        request: Request,
        name: str,
        body: Annotated[dict[str, Any], Body(description="a report, or {reports: [...]}")],
    ) -> dict[str, Any]:
        by = require(request, authority, authorizer, "agent.update", ("Agent", name))
        documents = body.get("reports") if set(body) == {"reports"} else [body]
        if not isinstance(documents, list) or not documents or len(documents) > 8:
            raise InvalidReport("send one report, or {reports: [1 to 8 reports]}")
        health = book.ingest(name, [json.dumps(d).encode() for d in documents], by=by.spiffe_id)
        return {"agent": name, **health.to_dict()}

    @router.get("/v1/agents/{name}/health")
    def read(request: Request, name: str) -> dict[str, Any]:
        require(request, authority, authorizer, "agent.read", ("Agent", name))
        return {"agent": name, **book.of_name(name).to_dict()}

    return router
