"""The agents' pages: the list with risk trends and health, one agent in full, and the
confirmed actions quarantine, release and revoke."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from warden.console.access import AGENT_ACTIONS, Console, Refused
from warden.console.pages import Pages, secured
from warden.console.views import decision_row


def agent_routes(console: Console, pages: Pages) -> APIRouter:
    router = APIRouter()

    # -- agents --------------------------------------------------------------------------------

    @router.get("/agents", response_class=HTMLResponse)
    def agents(request: Request, status: str = "") -> HTMLResponse:
        user = console.user(request)
        console.require(user, "agent.read")
        found = console.authority.agents.list(
            status=status or None,  # type: ignore[arg-type]
            limit=500,
        )
        activity = console.views.activity()
        rows = []
        for agent in found:
            seen = activity.get(agent.spiffe_id)
            health = console.health.of_name(agent.name).status if console.health else "unknown"
            rows.append({"agent": agent, "seen": seen, "health": health})
        return pages.page(request, "agents.html", user, rows=rows, status_filter=status)

    @router.get("/agents/{name}", response_class=HTMLResponse)
    def agent(request: Request, name: str) -> HTMLResponse:
        user = console.user(request)
        resource, attrs, spiffe_id = console.agent_attrs(name)
        console.require(user, "agent.read", resource, attrs)
        found = console.authority.agents.get(name)
        orders = (
            console.engine.work_orders.list(agent=spiffe_id)
            if console.engine is not None and console.may(user, "workorder.read").allowed
            else None
        )
        # What the decision log says of the agent, for roles that may read the log.
        reads_log = console.may(user, "audit.read").allowed
        views = console.views
        seen = views.activity(spiffe_id).get(spiffe_id) if reads_log else None
        decisions = (
            [decision_row(e) for e in views.recent(subject=spiffe_id, limit=25)]
            if reads_log
            else None
        )
        trust = views.recent(subject=spiffe_id, kind="trust", limit=10) if reads_log else []
        return pages.page(
            request,
            "agent.html",
            user,
            agent=found,
            seen=seen,
            baseline=console.views.baseline(spiffe_id),
            decisions=decisions,
            credentials=views.credentials_seen(spiffe_id) if reads_log else [],
            revoked=console.views.revoked_serials(spiffe_id),
            orders=orders,
            health=console.health.of_name(name) if console.health else None,
            report=console.views.health_report(name),
            trust=trust,
            actions={
                key: console.may(user, action, resource, attrs).allowed
                for key, (action, _, _) in AGENT_ACTIONS.items()
            },
        )

    @router.get("/agents/{name}/{change}", response_class=HTMLResponse)
    def confirm_change(request: Request, name: str, change: str) -> HTMLResponse:
        user = console.user(request)
        if change not in AGENT_ACTIONS:
            raise Refused(404, "Not found")
        resource, attrs, _ = console.agent_attrs(name)
        action, label, effect = AGENT_ACTIONS[change]
        console.require(user, action, resource, attrs)
        return pages.page(
            request,
            "confirm.html",
            user,
            agent=console.authority.agents.get(name),
            change=change,
            label=label,
            effect=effect,
        )

    @router.post("/agents/{name}/{change}")
    async def change_agent(request: Request, name: str, change: str) -> Response:
        form = await request.form()
        user = await asyncio.to_thread(pages.checked_post, request, form)
        if change not in AGENT_ACTIONS:
            raise Refused(404, "Not found")
        resource, attrs, spiffe_id = await asyncio.to_thread(console.agent_attrs, name)
        action, label, _ = AGENT_ACTIONS[change]
        reason = str(form.get("reason") or "")[:2000] or f"{label} in the console"
        method = getattr(console.authority.agents, change)
        await asyncio.to_thread(
            console.act,
            user,
            action,
            resource,
            lambda: method(name, f"{reason} (by {user.principal.spiffe_id})"),
            attrs=attrs,
            detail={"reason": reason},
            subject=spiffe_id,
        )
        return secured(RedirectResponse(f"/console/agents/{name}", status_code=303))

    return router
