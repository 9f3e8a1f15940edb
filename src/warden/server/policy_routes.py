"""Work orders, the active policy bundle, shadow reports and enforcement points."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from warden.identity.authority import IdentityAuthority
from warden.identity.spiffe_id import SpiffeId
from warden.policy.admin import AdminAuthorizer
from warden.policy.engine import PolicyEngine, shadow_report
from warden.policy.workorders import Constraint
from warden.server.auth import require

CONTROL_PLANE = ("ControlPlane", "warden")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstraintBody(_Body):
    arg: str = Field(max_length=64)
    op: str
    value: Any


class WorkOrderBody(_Body):
    agent: str = Field(max_length=2048, description="agent name or SPIFFE ID")
    ticket: str = Field(max_length=128)
    actions: list[str] = Field(min_length=1, max_length=32)
    resources: list[str] = Field(min_length=1, max_length=64)
    constraints: list[ConstraintBody] = Field(default_factory=list, max_length=32)
    ttl_s: int = 3600
    max_uses: int = 1
    reason: str = Field(default="", max_length=2000)


class CloseBody(_Body):
    reason: str = Field(default="", max_length=2000)


class EnforcementPointBody(_Body):
    name: str = Field(max_length=63)


def policy_router(
    authority: IdentityAuthority, authorizer: AdminAuthorizer, engine: PolicyEngine
) -> APIRouter:
    router = APIRouter()

    def agent_name(value: str) -> str:
        if value.startswith("spiffe://"):
            parsed = SpiffeId.parse(value)
            return parsed.name or value
        return value

    @router.post("/v1/workorders", status_code=201)
    def create(request: Request, body: WorkOrderBody) -> dict[str, Any]:
        name = agent_name(body.agent)
        by = require(request, authority, authorizer, "workorder.issue", ("Agent", name))
        agent = authority.agents.get(name)
        order = engine.work_orders.create(
            agent=agent.spiffe_id,
            ticket=body.ticket,
            actions=body.actions,
            resources=body.resources,
            constraints=[Constraint(c.arg, c.op, c.value) for c in body.constraints],  # type: ignore[arg-type]
            ttl_s=body.ttl_s,
            max_uses=body.max_uses,
            issued_by=by.spiffe_id,
            reason=body.reason,
        )
        engine.reload_work_orders()
        return order.to_dict()

    @router.get("/v1/workorders")
    def list_orders(
        request: Request,
        agent: str | None = None,
        open_only: Annotated[bool, Query(alias="open")] = False,
    ) -> dict[str, Any]:
        require(request, authority, authorizer, "workorder.read", CONTROL_PLANE)
        spiffe_id = authority.agents.get(agent_name(agent)).spiffe_id if agent else None
        orders = engine.work_orders.list(agent=spiffe_id, open_only=open_only)
        return {"work_orders": [o.to_dict() for o in orders]}

    @router.get("/v1/workorders/{order_id}")
    def show(request: Request, order_id: str) -> dict[str, Any]:
        require(request, authority, authorizer, "workorder.read", CONTROL_PLANE)
        return engine.work_orders.get(order_id).to_dict()

    @router.post("/v1/workorders/{order_id}/close")
    def close(request: Request, order_id: str, body: CloseBody | None = None) -> dict[str, Any]:
        order = engine.work_orders.get(order_id)
        name = SpiffeId.parse(order.agent).name or order.agent
        by = require(request, authority, authorizer, "workorder.issue", ("Agent", name))
        closed = engine.work_orders.close(
            order_id, (body.reason if body else "") or f"closed by {by.spiffe_id}"
        )
        engine.reload_work_orders()
        return closed.to_dict()

    @router.get("/v1/policy")
    def policy(request: Request) -> dict[str, Any]:
        require(request, authority, authorizer, "policy.read", CONTROL_PLANE)
        admin = engine.administrator

        def describe(bundle: Any) -> dict[str, Any] | None:
            if bundle is None:
                return None
            return {
                "name": bundle.name,
                "version": bundle.version,
                "revision": bundle.revision,
                "policies": len(bundle.meta),
                "source": bundle.source,
            }

        return {"active": describe(admin.active), "shadow": describe(admin.shadow)}

    @router.get("/v1/policy/shadow")
    def shadow(request: Request) -> dict[str, Any]:
        require(request, authority, authorizer, "policy.read", CONTROL_PLANE)
        return shadow_report(authority.store)

    @router.post("/v1/enforcement-points", status_code=201)
    def add_enforcement_point(request: Request, body: EnforcementPointBody) -> dict[str, Any]:
        by = require(request, authority, authorizer, "enforcement_point.manage", CONTROL_PLANE)
        point = authority.enforcement_points.add(body.name, created_by=by.spiffe_id)
        return {"name": point.name, "spiffe_id": point.spiffe_id, "status": point.status}

    return router
