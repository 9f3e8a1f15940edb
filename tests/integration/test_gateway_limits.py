"""The gateway's bounds and what it keeps apart: credentials that expire, upstream state shared
across agents, headers an agent must not set, heads and bodies too big or too slow, responses
it cannot inspect. Real TLS on 127.0.0.1 throughout."""

from __future__ import annotations

import json
import socket
import ssl
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.creds import context_for, write_svid
from tests.support.forge import forge_leaf
from tests.support.gateway import Setup, recorded
from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority


def tls_to(setup: Setup, agent: str = "invoice-bot") -> ssl.SSLSocket:
    """A raw mTLS connection to the gateway as ``agent``, for requests httpx will not send."""
    context = context_for(setup.creds(agent), setup.gateway.credentials.ca_file)
    sock = socket.create_connection(("127.0.0.1", setup.gateway.port), timeout=10)
    return context.wrap_socket(sock, server_hostname="localhost")


def read_all(tls: ssl.SSLSocket) -> bytes:
    answer = b""
    try:
        while chunk := tls.recv(65536):
            answer += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass  # the gateway closed a connection whose request it would not read on
    return answer


def write_pair(directory: Path, chain: list[object], key: ec.EllipticCurvePrivateKey) -> Path:
    directory.mkdir()
    (directory / "svid.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)  # type: ignore[attr-defined]
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory


def test_an_expired_client_certificate_never_gets_in(setup: Setup) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    chain = forge_leaf(
        setup.authority,
        uris=["spiffe://example.org/agent/invoice-bot"],
        not_before=now - timedelta(hours=2),
        not_after=now - timedelta(hours=1),
        leaf_key=key,
    )
    creds = write_pair(setup.root / "expired", chain, key)
    with setup.client(creds) as client, pytest.raises(httpx.TransportError):
        client.get("/ledger/invoices")
    assert setup.upstream.seen == []


def test_a_certificate_that_expires_on_an_open_connection_is_refused(setup: Setup) -> None:
    # Issued as if 57 s ago with a 60 s lifetime: valid for the handshake, expired 3 s later.
    issued = setup.authority.issuer.issue_agent_x509(
        "invoice-bot", ttl_s=60, now=utcnow() - timedelta(seconds=57)
    )
    creds = write_svid(setup.root / "short", issued, setup.authority.ca.bundle.to_pem())
    with setup.client(creds) as client:
        assert client.get("/ledger/invoices").status_code == 200
        time.sleep(max(0.0, (issued.cert.not_valid_after_utc - utcnow()).total_seconds()) + 0.3)
        late = client.get("/ledger/invoices")  # the same TLS connection
    assert (late.status_code, late.json()["reason"]) == (401, "credential_expired")
    assert recorded(setup, late.json()["decision_id"])["decision"] == "deny"


def test_a_cookie_an_upstream_sets_never_rides_on_another_agents_request(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as first:
        answer = first.get("/named/set-cookie")
        assert answer.status_code == 200, answer.text
        assert answer.headers["set-cookie"].startswith("session=spiffe://")  # relayed to it
    with setup.client(setup.creds("invoice-bot")) as second:
        assert second.get("/named/invoices").status_code == 200
    assert "cookie" not in setup.upstream.seen[-1]["headers"]


def test_the_agent_cannot_supply_the_routes_credential(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get("/ledger/invoices", headers={"X-Api-Key": "forged"})
    assert response.json()["api_key"] == "upstream-secret"
    sent = [v for k, v in setup.upstream.seen[-1]["all_headers"] if k == "x-api-key"]
    assert sent == ["upstream-secret"]


def test_headers_named_by_connection_are_not_forwarded(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get(
            "/ledger/invoices", headers={"Connection": "keep-alive, X-Hop", "X-Hop": "secret"}
        )
    assert response.status_code == 200
    assert "x-hop" not in setup.upstream.seen[-1]["headers"]


def test_a_request_head_over_the_bound_is_refused_while_it_arrives(setup: Setup) -> None:
    header = b"X-Filler: " + b"a" * 1000 + b"\r\n"  # each header under its own bound
    with tls_to(setup) as tls:
        tls.sendall(b"GET /ledger/invoices HTTP/1.1\r\nHost: localhost\r\n")
        sent = 0
        try:
            for _ in range(200):  # 200 KB in all, far over the 64 KiB bound
                tls.sendall(header)
                sent += 1
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the gateway stopped reading
        answer = read_all(tls)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"request_head_too_large" in answer
    assert setup.upstream.seen == []


def test_a_client_that_never_finishes_its_head_is_disconnected(
    authority: IdentityAuthority, tmp_path: Path
) -> None:
    setup = Setup(authority, tmp_path, gateway_client_timeout_s=1.0)
    try:
        with tls_to(setup) as tls:
            started = time.monotonic()
            tls.sendall(b"GET /ledger/invoices HTTP/1.1\r\nHost: local")  # and no more
            assert read_all(tls) == b""  # closed without an answer
            assert time.monotonic() - started < 5
        with tls_to(setup) as idle:  # connects and says nothing at all
            started = time.monotonic()
            assert read_all(idle) == b""
            assert time.monotonic() - started < 5
        assert setup.upstream.seen == []
    finally:
        setup.stop()


def test_a_body_that_never_arrives_is_a_recorded_408(
    authority: IdentityAuthority, tmp_path: Path
) -> None:
    setup = Setup(authority, tmp_path, gateway_client_timeout_s=1.0)
    try:
        with tls_to(setup) as tls:
            tls.sendall(
                b"POST /ledger/invoices HTTP/1.1\r\nHost: localhost\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"rows":'
            )
            answer = read_all(tls)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        decision_id = json.loads(answer.split(b"\r\n\r\n", 1)[1])["decision_id"]
        record = recorded(setup, decision_id)
        assert record["decision"] == "deny"
        assert record["reasons"][0]["policy"] == "client_timeout"  # type: ignore[index]
        assert setup.upstream.seen == []
    finally:
        setup.stop()


def test_a_response_that_cannot_be_inspected_is_never_passed_on(setup: Setup) -> None:
    setup.gateway.gateway.inspectors.append(lambda decision, route, body: None)
    with setup.client(setup.creds("invoice-bot")) as client:
        plain = client.get("/ledger/invoices", headers={"Accept-Encoding": "gzip"})
        assert plain.status_code == 200
        assert setup.upstream.seen[-1]["headers"]["accept-encoding"] == "identity"
        compressed = client.get("/ledger/gzip")  # compressed although asked not to be
    assert (compressed.status_code, compressed.json()["reason"]) == (
        502,
        "uninspectable_response",
    )
