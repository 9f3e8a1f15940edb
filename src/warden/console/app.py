"""The console: a live, server-rendered view of agents, decisions, flows, incidents and
policies at ``/console`` on the control plane.

Pages are Jinja2 templates; htmx (vendored, pinned: static/VENDORED.md) refreshes the overview
and appends live decisions from a Server-Sent Events stream of the log's tail. Who may see and
do what is :mod:`warden.console.access`; sessions are :mod:`warden.console.sessions`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from warden.console.access import Console, ConsoleUser, Refused
from warden.console.agent_pages import agent_routes
from warden.console.log_pages import log_routes
from warden.console.pages import HERE, Pages, is_partial, secured
from warden.console.response_pages import response_routes
from warden.console.sign_in import sign_in_routes

__all__ = ["Console", "create_console"]


def create_console(console: Console) -> FastAPI:
    """The console's ASGI application, to mount at ``/console``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    pages = Pages(console)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if exc.to_login and request.method == "GET" and not is_partial(request):
            return secured(RedirectResponse("/console/login", status_code=303))
        return pages.page(
            request, "refused.html", None, exc.status, title=exc.title, detail=exc.detail
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return pages.page(request, "refused.html", None, exc.status_code, title=str(exc.detail))

    # -- overview ------------------------------------------------------------------------------

    def overview_values(user: ConsoleUser) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if console.may(user, "agent.read").allowed:
            values["statuses"] = console.views.agents_by_status()
        if console.may(user, "audit.read").allowed:
            values["rates"] = console.views.decision_rates()
            values["checkpoint"] = console.views.checkpoint()
        if console.response is not None and console.may(user, "incident.read").allowed:
            values["incidents"] = console.response.incidents.list(status="open", limit=10)
        if console.response is not None and console.may(user, "approval.read").allowed:
            values["approvals"] = console.response.approvals.list(status="pending", limit=10)
        return values

    @app.get("", response_class=HTMLResponse)
    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        user = console.user(request)
        console.require(user, "console.use")
        return pages.page(request, "overview.html", user, **overview_values(user))

    @app.get("/overview/live", response_class=HTMLResponse)
    def overview_live(request: Request) -> HTMLResponse:
        user = console.user(request)
        console.require(user, "console.use")
        return pages.page(request, "_overview_stats.html", user, **overview_values(user))

    for router in (
        sign_in_routes(console, pages),
        agent_routes(console, pages),
        log_routes(console, pages),
        response_routes(console, pages),
    ):
        app.include_router(router)
    return app
