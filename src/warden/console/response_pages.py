"""Incidents and approvals (approve or deny a parked request, resolve an incident), and the
policies page."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from warden.console.access import CONTROL_PLANE, Console, Refused
from warden.console.pages import Pages, secured
from warden.errors import NotFoundError
from warden.policy.engine import shadow_report


def response_routes(console: Console, pages: Pages) -> APIRouter:
    router = APIRouter()

    # -- incidents and approvals ---------------------------------------------------------------

    @router.get("/incidents", response_class=HTMLResponse)
    def incidents(request: Request) -> HTMLResponse:
        user = console.user(request)
        if console.response is None:
            raise Refused(404, "Automated response is not running here")
        may_incidents = console.may(user, "incident.read").allowed
        may_approvals = console.may(user, "approval.read").allowed
        if not (may_incidents or may_approvals):
            console.require(user, "incident.read")
        engine = console.response
        return pages.page(
            request,
            "incidents.html",
            user,
            incidents=engine.incidents.list(limit=50) if may_incidents else None,
            approvals=engine.approvals.list(limit=50) if may_approvals else None,
        )

    @router.post("/approvals/{approval_id}/{verdict}")
    async def decide_approval(request: Request, approval_id: str, verdict: str) -> Response:
        form = await request.form()
        user = await asyncio.to_thread(pages.checked_post, request, form)
        engine = console.response
        if engine is None or verdict not in ("approve", "deny"):
            raise Refused(404, "Not found")
        try:
            approval = await asyncio.to_thread(engine.approvals.get, approval_id[:64])
        except NotFoundError as exc:
            raise Refused(404, "No such approval") from exc
        resource, attrs, spiffe_id = await asyncio.to_thread(console.agent_attrs, approval.agent)
        reason = str(form.get("reason") or "")[:2000]
        await asyncio.to_thread(
            console.act,
            user,
            "approval.decide",
            resource,
            lambda: engine.decide_approval(
                approval.id,
                approve=verdict == "approve",
                by=user.principal.spiffe_id,
                reason=reason or f"{verdict} in the console",
            ),
            attrs=attrs,
            detail={"approval": approval.id, "verdict": verdict, "reason": reason},
            subject=spiffe_id,
        )
        return secured(RedirectResponse("/console/incidents", status_code=303))

    @router.post("/incidents/{incident_id}/resolve")
    async def resolve(request: Request, incident_id: str) -> Response:
        form = await request.form()
        user = await asyncio.to_thread(pages.checked_post, request, form)
        engine = console.response
        if engine is None:
            raise Refused(404, "Not found")
        resolution = str(form.get("resolution") or "").strip()[:4000]
        if not resolution:
            raise Refused(400, "Say how it was resolved", "The resolution is required.")
        await asyncio.to_thread(
            console.act,
            user,
            "incident.resolve",
            CONTROL_PLANE,
            lambda: engine.resolve_incident(
                incident_id[:64], by=user.principal.spiffe_id, resolution=resolution
            ),
            detail={"incident": incident_id[:64], "resolution": resolution},
        )
        return secured(RedirectResponse("/console/incidents", status_code=303))

    # -- policies ------------------------------------------------------------------------------

    @router.get("/policies", response_class=HTMLResponse)
    def policies(request: Request) -> HTMLResponse:
        user = console.user(request)
        console.require(user, "policy.read")
        admin = console.engine.administrator if console.engine is not None else None
        return pages.page(
            request,
            "policies.html",
            user,
            active=admin.active if admin else None,
            shadow=admin.shadow if admin else None,
            flips=shadow_report(console.authority.store, limit=10),
            failure=console.views.last_failure(),
            events=console.views.policy_events(),
        )

    return router
