"""How the console answers: its templates, security headers, and the checks every state
change passes (a live session, its CSRF token, a same-origin request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from warden import __version__
from warden.console.access import Console, ConsoleUser, Refused
from warden.console.flows import sparkline
from warden.console.views import short_agent

HERE = Path(__file__).parent
# No inline script or style anywhere: the policy below forbids them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on form
    # posts, and the origin check needs the real one; nothing is sent to other sites.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Pages:
    """Renders the console's templates for one :class:`Console`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(
            version=__version__, sparkline=sparkline, short_agent=short_agent
        )

    def page(
        self,
        request: Request,
        name: str,
        user: ConsoleUser | None,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        response = self.templates.TemplateResponse(
            request,
            name,
            {"user": user, "oidc": self.console.oidc, **values},
            status_code=status,
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    def checked_post(self, request: Request, form: Any) -> ConsoleUser:
        """A state change: a same-origin request, a live session, and its CSRF token."""
        same_origin(request)
        user = self.console.user(request)
        if not user.session.csrf_matches(form.get("csrf") or request.headers.get("x-csrf-token")):
            raise Refused(403, "Refused", "The form's CSRF token is missing or wrong.")
        return user


def is_partial(request: Request) -> bool:
    """An htmx or EventSource request, which a redirect to the login page would not help."""
    return request.headers.get(
        "hx-request"
    ) == "true" or "text/event-stream" in request.headers.get("accept", "")


def same_origin(request: Request) -> None:
    """Refuse a state change another site's page could have sent."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, "Refused", "Cross-site requests cannot change anything here.")
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin != f"https://{host}":
        raise Refused(403, "Refused", "The request came from another origin.")


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response
