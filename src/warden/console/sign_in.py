"""Signing in to the console (a one-time link, or OpenID Connect) and out; each is recorded."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from warden.console.access import COOKIE, Console, Refused
from warden.console.oidc import SignInRefused
from warden.console.pages import Pages, same_origin, secured
from warden.identity.errors import OperatorNotFound


def sign_in_routes(console: Console, pages: Pages) -> APIRouter:
    router = APIRouter()

    # -- signing in and out --------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login(request: Request, token: str = "") -> HTMLResponse:
        return pages.page(request, "login.html", None, token=token[:128])

    @router.post("/login")
    async def redeem(request: Request) -> Response:
        same_origin(request)
        form = await request.form()
        token = str(form.get("token") or "")
        operator = await asyncio.to_thread(console.sessions.redeem, token)
        if operator is None:
            await asyncio.to_thread(console.record_sign_in, "", "link", "refused", "bad link")
            raise Refused(401, "That link does not sign you in", "It is unknown, used or expired.")
        return await _signed_in(operator, "link", RedirectResponse("/console", status_code=303))

    @router.get("/oidc/start")
    def oidc_start(request: Request) -> Response:
        if console.oidc is None:
            raise Refused(404, "No identity provider is configured")
        public = console.authority.settings.console_public_url
        # Without a configured address, the one the browser used: the provider accepts only
        # the callback registered for this client, so another Host gets the flow nowhere.
        base = public.rstrip("/") if public else f"https://{request.headers.get('host', '')}"
        try:
            url = console.oidc.begin(base + "/console/oidc/callback")
            return secured(RedirectResponse(url, status_code=302))
        except SignInRefused as exc:
            raise Refused(503, "The identity provider cannot be reached", exc.message) from exc

    @router.get("/oidc/callback")
    async def oidc_callback(
        request: Request, state: str = "", code: str = "", error: str = ""
    ) -> Response:
        if console.oidc is None:
            raise Refused(404, "No identity provider is configured")
        if error or not state or not code:
            raise Refused(401, "Sign-in failed", error[:200] or "The provider sent no code.")
        try:
            name, _claims = await asyncio.to_thread(console.oidc.finish, state[:256], code[:2048])
        except SignInRefused as exc:
            await asyncio.to_thread(console.record_sign_in, "", "oidc", "refused", exc.code)
            raise Refused(401, "Sign-in failed", exc.message) from exc
        try:
            operator = console.authority.operators.get(name)
        except OperatorNotFound:
            operator = None
        if operator is None or operator.status != "active":
            await asyncio.to_thread(console.record_sign_in, name, "oidc", "refused", "no operator")
            raise Refused(403, "Not an operator", f"{name!r} is not an active Warden operator.")
        # A redirect after a cross-site hop would not carry the SameSite=Strict cookie: a page
        # of this site sends the browser on instead.
        return await _signed_in(operator.name, "oidc", pages.page(request, "signed_in.html", None))

    async def _signed_in(
        operator: str, via: Literal["link", "oidc"], response: Response
    ) -> Response:
        token, session = await asyncio.to_thread(console.sessions.open, operator, via)
        await asyncio.to_thread(console.record_sign_in, operator, via, "signed in")
        response.set_cookie(
            COOKIE,
            token,
            max_age=int((session.expires_at - session.created_at).total_seconds()),
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return secured(response)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        user = pages.checked_post(request, form)
        await asyncio.to_thread(console.sessions.close, user.session)
        await asyncio.to_thread(console.record_sign_in, user.name, user.session.via, "signed out")
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return secured(response)

    return router
