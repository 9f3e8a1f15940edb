"""Signing in to the console with OpenID Connect, against a real (small) OpenID provider on
127.0.0.1 over TLS: the code flow with PKCE works and maps the person to their operator; a
replayed callback, a token signed with another key, for another audience, with another
nonce or expired, and a person who is no operator sign nobody in; each refusal is recorded."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.console import browser
from tests.support.gateway import with_settings
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from warden.audit.reader import LogReader
from warden.console.access import COOKIE
from warden.identity.authority import IdentityAuthority
from warden.server.run import ControlPlaneServer

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class Stack:
    def __init__(self, authority: IdentityAuthority, root: Path) -> None:
        self.provider = OidcProvider(authority, root / "oidc").start()
        secret = root / "client-secret"
        secret.write_text(CLIENT_SECRET + "\n")
        self.authority = with_settings(
            authority,
            console_oidc_issuer=self.provider.issuer,
            console_oidc_client_id=CLIENT_ID,
            console_oidc_client_secret_file=secret,
            console_oidc_ca_file=self.provider.ca_file,
        )
        self.server = ControlPlaneServer(self.authority, host="127.0.0.1", port=0)
        self.server.start_in_thread()
        self.provider.redirect_uris.append(f"{self.server.url}/console/oidc/callback")
        self.authority.operators.add("alice", role="operator", created_by="test")
        self.clients: list[httpx.Client] = []

    def browser(self) -> httpx.Client:
        client = browser(self.server)
        self.clients.append(client)
        return client

    def callback(self, client: httpx.Client) -> httpx.Response:
        """Start a sign-in and follow the provider back: the callback's URL is returned too."""
        start = client.get("/console/oidc/start")
        assert start.status_code == 302, start.text
        assert start.headers["location"].startswith(self.provider.issuer + "/authorize?")
        with httpx.Client(verify=ssl.create_default_context(cafile=self.provider.ca_file)) as idp:
            back = idp.get(start.headers["location"])
        assert back.status_code == 302, back.text
        self.last_callback = back.headers["location"]
        assert self.last_callback.startswith(self.server.url + "/console/oidc/callback?")
        return client.get(self.last_callback)

    def entries(self) -> list[dict[str, object]]:
        self.server.log.checkpoint()
        return LogReader(self.authority.store).search(kind="console")

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop()
        self.provider.stop()


@pytest.fixture
def stack(authority: IdentityAuthority, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(authority, tmp_path)
    try:
        yield s
    finally:
        s.stop()


def test_the_code_flow_signs_in_the_operator_and_a_replay_does_not(stack: Stack) -> None:
    client = stack.browser()
    login = client.get("/console/login")
    assert f"Sign in with 127.0.0.1:{stack.provider.port}" in login.text
    answer = stack.callback(client)
    assert answer.status_code == 200 and 'http-equiv="refresh"' in answer.text
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    page = client.get("/console")
    assert page.status_code == 200 and "<strong>alice</strong> (operator, oidc)" in page.text
    # The same callback again (a leaked URL): the state was used up.
    other = stack.browser()
    replay = other.get(stack.last_callback)
    assert replay.status_code == 401 and COOKIE not in other.cookies
    # A made-up state, an error from the provider, no code: refused.
    assert (
        other.get("/console/oidc/callback", params={"state": "x", "code": "y"}).status_code == 401
    )
    assert other.get("/console/oidc/callback", params={"error": "access_denied"}).status_code == 401
    outcomes = [(e["via"], e["outcome"]) for e in stack.entries()]
    assert ("oidc", "signed in") in outcomes and ("oidc", "refused") in outcomes


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("rogue_key", True),
        ("audience", "someone-else"),
        ("nonce_override", "another-nonce"),
        ("expired", True),
    ],
)
def test_a_bad_id_token_signs_nobody_in(stack: Stack, knob: str, value: object) -> None:
    setattr(stack.provider, knob, value)
    client = stack.browser()
    answer = stack.callback(client)
    assert answer.status_code == 401, answer.text
    assert COOKIE not in client.cookies
    assert client.get("/console").status_code == 303
    (entry,) = [e for e in stack.entries() if e["action"] == "console.sign_in"]
    assert (entry["outcome"], entry["reason"]) == ("refused", "bad_id_token")


def test_a_person_who_is_no_operator_is_refused(stack: Stack) -> None:
    stack.provider.user = "mallory"
    client = stack.browser()
    answer = stack.callback(client)
    assert answer.status_code == 403 and "not an active Warden operator" in answer.text
    assert COOKIE not in client.cookies
    stack.authority.operators.add("bob", role="auditor", created_by="test")
    stack.authority.operators.revoke("bob")
    stack.provider.user = "bob"
    assert stack.callback(stack.browser()).status_code == 403
    refused = [e for e in stack.entries() if e["outcome"] == "refused"]
    assert {e["operator"] for e in refused} == {"mallory", "bob"}
