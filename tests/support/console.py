"""Signing in to the console the way a browser does, for the console's tests."""

from __future__ import annotations

import re
import ssl

import httpx

from warden.console.access import COOKIE, Console
from warden.identity.authority import IdentityAuthority
from warden.server.run import ControlPlaneServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def browser(server: ControlPlaneServer) -> httpx.Client:
    """A client like a browser: TLS verified against the trust bundle, no client certificate."""
    context = ssl.create_default_context(cafile=str(server.credentials.ca_file))
    return httpx.Client(base_url=server.url, verify=context, timeout=10)


def sign_in(
    server: ControlPlaneServer, authority: IdentityAuthority, operator: str
) -> httpx.Client:
    """A browser-like client with a console session for ``operator`` (a login link redeemed)."""
    client = browser(server)
    token = Console.link_for(authority, operator, by="test")
    answer = client.post("/console/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    assert COOKIE in client.cookies
    return client


def csrf_of(client: httpx.Client, path: str = "/console/agents") -> str:
    """The session's CSRF token, as a page's forms carry it."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)
