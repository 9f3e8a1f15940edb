"""Automated response over the control plane's API: incidents, approvals, playbooks and
their runs, and triggering a playbook by hand."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from warden.identity.authority import IdentityAuthority
from warden.policy.admin import AdminAuthorizer
from warden.response.engine import ResponseEngine
from warden.server.auth import require

CONTROL_PLANE = ("ControlPlane", "warden")


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: str = Field(min_length=1, max_length=4000)


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str = Field(min_length=1, max_length=63)
    reason: str = Field(min_length=1, max_length=500)


def response_router(
    authority: IdentityAuthority, authorizer: AdminAuthorizer, response: ResponseEngine
) -> APIRouter:
    router = APIRouter()

    def for_agent(request: Request, action: str, name: str) -> Any:
        """Authorised on the agent as the admin pack sees it: with its owner, who may decide
        for it."""
        owner: dict[str, str | bool] = {"owner": authority.agents.get(name).owner}
        return require(request, authority, authorizer, action, ("Agent", name), attrs=owner)

    # -- incidents -------------------------------------------------------------------------------

    @router.get("/v1/incidents")
    def list_incidents(
        request: Request,
        status: Literal["open", "resolved"] | None = None,
        agent: Annotated[str | None, Query(max_length=63)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        require(request, authority, authorizer, "incident.read", CONTROL_PLANE)
        found = response.incidents.list(status=status, agent=agent, limit=limit)
        return {"incidents": [i.to_dict() for i in found]}

    @router.get("/v1/incidents/{incident_id}")
    def read_incident(request: Request, incident_id: str) -> dict[str, Any]:
        require(request, authority, authorizer, "incident.read", CONTROL_PLANE)
        return response.incidents.get(incident_id).to_dict()

    @router.post("/v1/incidents/{incident_id}/resolve")
    def resolve_incident(request: Request, incident_id: str, body: Resolve) -> dict[str, Any]:
        by = require(request, authority, authorizer, "incident.resolve", CONTROL_PLANE)
        resolved = response.resolve_incident(
            incident_id, by=by.spiffe_id, resolution=body.resolution
        )
        return resolved.to_dict()

    # -- approvals -------------------------------------------------------------------------------

    @router.get("/v1/approvals")
    def list_approvals(
        request: Request,
        status: Literal["pending", "approved", "denied", "timed_out"] | None = None,
        agent: Annotated[str | None, Query(max_length=63)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        require(request, authority, authorizer, "approval.read", CONTROL_PLANE)
        found = response.approvals.list(status=status, agent=agent, limit=limit)
        return {"approvals": [a.to_dict() for a in found]}

    @router.get("/v1/approvals/{approval_id}")
    def read_approval(request: Request, approval_id: str) -> dict[str, Any]:
        require(request, authority, authorizer, "approval.read", CONTROL_PLANE)
        return response.approvals.get(approval_id).to_dict()

    def decide(request: Request, approval_id: str, body: Verdict, approve: bool) -> dict[str, Any]:
        approval = response.approvals.get(approval_id)
        by = for_agent(request, "approval.decide", approval.agent)
        decided = response.decide_approval(
            approval_id, approve=approve, by=by.spiffe_id, reason=body.reason
        )
        return decided.to_dict()

    @router.post("/v1/approvals/{approval_id}/approve")
    def approve(request: Request, approval_id: str, body: Verdict) -> dict[str, Any]:
        return decide(request, approval_id, body, True)

    @router.post("/v1/approvals/{approval_id}/deny")
    def deny(request: Request, approval_id: str, body: Verdict) -> dict[str, Any]:
        return decide(request, approval_id, body, False)

    # -- playbooks -------------------------------------------------------------------------------

    @router.get("/v1/playbooks")
    def list_playbooks(request: Request) -> dict[str, Any]:
        require(request, authority, authorizer, "playbook.read", CONTROL_PLANE)
        bundle = response.active
        if bundle is None:
            return {"active": None, "playbooks": []}
        return {
            "active": {"name": bundle.name, "version": bundle.version, "revision": bundle.revision},
            "playbooks": [p.model_dump(mode="json") for p in bundle.playbooks],
        }

    @router.get("/v1/playbooks/runs")
    def list_runs(
        request: Request,
        agent: Annotated[str | None, Query(max_length=63)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        require(request, authority, authorizer, "playbook.read", CONTROL_PLANE)
        return {"runs": response.runs.list(agent=agent, limit=limit)}

    @router.post("/v1/playbooks/{name}/trigger")
    def trigger(request: Request, name: str, body: Trigger) -> dict[str, Any]:
        by = for_agent(request, "playbook.trigger", body.agent)
        return response.trigger(name, body.agent, by=by.spiffe_id, reason=body.reason).to_dict()

    return router
