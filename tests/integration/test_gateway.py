"""The gateway on 127.0.0.1 with real TLS on both sides, the real policy engine and records."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.support.creds import context_for, write_svid
from tests.support.forge import rogue_ca
from tests.support.gateway import Setup, gateway_process, recorded, with_settings
from tests.support.upstream import Upstream, ledger_route, ledger_routes
from warden.audit.reader import LogReader
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority
from warden.store import schema


def test_allowed_call_reaches_the_upstream_with_the_gateways_credentials(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get(
            "/ledger/invoices",
            params={"limit": 10},
            headers={"Authorization": "Bearer agent-held-secret"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent"] == "spiffe://example.org/agent/invoice-bot"
    assert body["api_key"] == "upstream-secret"  # injected; the agent never held it
    seen = setup.upstream.seen[-1]["headers"]
    assert "authorization" not in seen  # the agent's Authorization header is stripped
    record = recorded(setup, response.headers["x-warden-decision-id"])
    assert record["decision"] == "allow"
    assert record["context"]["args"] == {"limit": 10}  # ?limit= reached the policy


def test_denied_call_is_403_with_a_recorded_decision(setup: Setup) -> None:
    with setup.client(setup.creds("triage-bot")) as client:
        response = client.get("/ledger/invoices")
    assert response.status_code == 403
    assert set(response.json()) == {"decision_id", "reason"}
    assert recorded(setup, response.json()["decision_id"])["decision"] == "deny"
    assert setup.upstream.seen == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no_credential"),
        ({"Authorization": "Bearer e30.e30.e30"}, "credential_alg_not_allowed"),
        ({"Authorization": "Bearer not-a-token"}, "credential_malformed_token"),
    ],
)
def test_unauthenticated_calls(setup: Setup, headers: dict[str, str], reason: str) -> None:
    with setup.client(None) as client:
        response = client.get("/ledger/invoices", headers=headers)
    assert (response.status_code, response.json()["reason"]) == (401, reason)
    assert recorded(setup, response.json()["decision_id"])["decision"] == "deny"
    assert setup.upstream.seen == []


def test_certificate_from_another_ca_fails_the_handshake(setup: Setup) -> None:
    cert, key = rogue_ca()  # a self-signed CA presented as a client certificate
    from cryptography.hazmat.primitives import serialization

    directory = setup.root / "rogue-client"
    directory.mkdir()
    (directory / "svid.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with setup.client(directory) as client, pytest.raises(httpx.TransportError):
        client.get("/ledger/invoices")


def test_jwt_svid_bearer_for_this_gateway_only(setup: Setup) -> None:
    gateway_id = setup.gateway.spiffe_id
    good = setup.authority.issuer.issue_agent_jwt("invoice-bot", [gateway_id]).token
    other = setup.authority.issuer.issue_agent_jwt("invoice-bot", ["spiffe://example.org/svc/x"])
    with setup.client(None) as client:
        ok = client.get("/ledger/invoices", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200, ok.text
        assert recorded(setup, ok.headers["x-warden-decision-id"])["subject"]["authn"] == "jwt"
        wrong = client.get("/ledger/invoices", headers={"Authorization": f"Bearer {other.token}"})
        assert (wrong.status_code, wrong.json()["reason"]) == (401, "credential_wrong_audience")


def test_revocation_bites_on_an_open_connection(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        assert client.get("/ledger/invoices").status_code == 200
        setup.authority.agents.revoke("invoice-bot", "compromised")
        response = client.get("/ledger/invoices")  # same keep-alive TLS connection
    assert (response.status_code, response.json()["reason"]) == (
        401,
        "credential_principal_revoked",
    )


@pytest.mark.parametrize(
    "header",
    ["X-Forwarded-Client-Cert", "X-Warden-Agent", "X-Warden-Decision", "X-SSL-Client-Cert"],
)
def test_identity_headers_from_clients_are_refused(setup: Setup, header: str) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get(
            "/ledger/invoices", headers={header: "spiffe://example.org/agent/admin"}
        )
    assert (response.status_code, response.json()["reason"]) == (400, "spoofed_identity_header")


@pytest.mark.parametrize(
    "raw",
    [
        b"/ledger/../customers",
        b"/ledger/%2e%2e/customers",
        b"/ledger%2f..%2fcustomers",
        b"//ledger",
        b"/ledger/%c0%ae",
    ],
)
def test_path_tricks(setup: Setup, raw: bytes) -> None:
    creds = setup.creds("invoice-bot")
    context = context_for(creds, setup.gateway.credentials.ca_file)
    with (
        socket.create_connection(("127.0.0.1", setup.gateway.port)) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert setup.upstream.seen == []


def test_unknown_route_and_duplicate_parameters(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        unknown = client.get("/nowhere")
        assert (unknown.status_code, unknown.json()["reason"]) == (403, "unknown_route")
        twice = client.get("/ledger/invoices?limit=5&limit=5000")
        assert (twice.status_code, twice.json()["reason"]) == (400, "ambiguous_request")


def test_oversize_body(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.post("/ledger/invoices", content=b"x" * (1024 * 1024 + 10))
        assert (response.status_code, response.json()["reason"]) == (413, "body_too_large")

        def stream() -> object:  # no Content-Length: refused once the limit is passed
            for _ in range(40):
                yield b"x" * 65536

        streamed = client.post("/ledger/invoices", content=stream())
        assert (streamed.status_code, streamed.json()["reason"]) == (413, "body_too_large")
    assert setup.upstream.seen == []


def test_upstream_with_the_wrong_identity_and_upstream_down(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        wrong = client.get("/wrong/x")
        assert (wrong.status_code, wrong.json()["reason"]) == (502, "upstream_identity_mismatch")
        assert setup.impostor.seen == []  # not a byte of the request was sent
        down = client.get("/down/x")
        assert (down.status_code, down.json()["reason"]) == (502, "upstream_unavailable")
        assert recorded(setup, down.json()["decision_id"])["decision"] == "allow"


def test_the_upstream_refuses_direct_and_replayed_calls(setup: Setup) -> None:
    agent = setup.creds("invoice-bot")
    direct = httpx.Client(
        base_url=setup.upstream.url,
        timeout=10,
        verify=context_for(agent, setup.gateway.credentials.ca_file),
    )
    with direct:
        assert direct.get("/ledger/invoices").json() == {"error": "missing"}
        with setup.client(agent) as client:
            client.get("/ledger/invoices")
        token = setup.upstream.seen[-1]["headers"]["x-warden-decision"]
        replay = direct.get("/ledger/invoices", headers={"X-Warden-Decision": token})
        assert replay.json() == {"error": "replayed"}
        altered = direct.get("/ledger/invoices?limit=999", headers={"X-Warden-Decision": token})
        assert altered.json()["error"] in ("wrong_request", "replayed")


def test_obligations_redact_and_cap(setup: Setup) -> None:
    with setup.client(setup.creds("triage-bot")) as client:
        denied = client.get("/customers")  # PHI without a destination region... in region
        body = denied.json()
    # The route declares the region; the default pack caps PHI reads at 5 records.
    assert denied.status_code == 200, body
    assert len(body["records"]) == 5
    assert denied.headers["x-warden-obligations"] == "max_records:5"


def test_records_are_durable_before_the_answer(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        ids = [client.get("/ledger/invoices").headers["x-warden-decision-id"] for _ in range(5)]
    with setup.authority.store.begin() as conn:
        rows = conn.execute(
            select(schema.audit_entries.c.decision_id, schema.audit_entries.c.at)
        ).all()
    assert set(ids) <= {r.decision_id for r in rows}
    from warden.clock import as_utc, utcnow

    newest = max(as_utc(r.at) for r in rows)  # times read back as the store's own type
    assert abs((utcnow() - newest).total_seconds()) < 60


def test_gateway_svid_rotates_without_failed_requests(setup: Setup) -> None:
    import threading

    failures: list[object] = []
    stop = threading.Event()
    creds = setup.creds("invoice-bot")

    def load(new_connections: bool) -> None:
        # Half the clients open a new TLS connection for every request, so handshakes run
        # while the certificate is swapped.
        headers = {"Connection": "close"} if new_connections else {}
        try:
            with setup.client(creds) as client:
                while not stop.is_set():
                    status = client.get("/ledger/invoices", headers=headers).status_code
                    if status != 200:
                        failures.append(status)
        except Exception as exc:  # a failed request, not only a non-200 answer
            failures.append(exc)

    workers = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
    for worker in workers:
        worker.start()
    before = setup.gateway.credentials.certfile.read_bytes()
    for _ in range(10):
        setup.gateway.renew_svid()
        threading.Event().wait(0.1)
    stop.set()
    for worker in workers:
        worker.join()
    assert setup.gateway.credentials.certfile.read_bytes() != before
    assert failures == []
    with setup.client(setup.creds("invoice-bot")) as client:  # a new connection, new SVID
        assert client.get("/ledger/invoices").status_code == 200


def test_a_gateway_with_a_stale_feed_denies_everything(
    authority: IdentityAuthority, tmp_path: Path
) -> None:
    """A gateway following the control plane over HTTP: cut it off and it fails closed."""
    from warden.identity.feed_client import HttpFeedFollower
    from warden.server.run import ControlPlaneServer

    plane = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    upstream = Upstream(authority, tmp_path).start()
    issued = authority.issuer.issue_service_x509("gateway")
    gw_creds = write_svid(tmp_path / "gw-feed", issued, authority.ca.bundle.to_pem())
    follower = HttpFeedFollower(
        plane.url,
        context_for(gw_creds, plane.credentials.ca_file),
        max_staleness_s=1.0,
        poll_wait_s=0.2,
    ).start()
    routes = ledger_routes(upstream)
    gateway = GatewayServer(
        authority, routes=routes, host="127.0.0.1", port=0, status=follower
    ).start_in_thread()
    try:
        authority.agents.register("invoice-bot", owner="qa", groups=["finance"])
        creds = write_svid(
            tmp_path / "agent",
            authority.issuer.issue_agent_x509("invoice-bot"),
            authority.ca.bundle.to_pem(),
        )
        with httpx.Client(
            base_url=gateway.url, timeout=10, verify=context_for(creds, gateway.credentials.ca_file)
        ) as client:
            import time

            deadline = time.monotonic() + 3
            while client.get("/ledger/x").status_code != 200:
                assert time.monotonic() < deadline, "the new agent never reached the gateway"
                time.sleep(0.05)
            ready = httpx.get(f"{gateway.probes_url}/readyz")
            assert (ready.status_code, ready.text) == (200, "ready\n")
            plane.stop()
            time.sleep(1.5)
            stale = client.get("/ledger/x")
            # A load balancer sees it too: alive, not ready, and why.
            not_ready = httpx.get(f"{gateway.probes_url}/readyz")
            assert not_ready.status_code == 503
            assert not_ready.text.startswith("principal feed: principal feed ")
            assert httpx.get(f"{gateway.probes_url}/livez").status_code == 200
        assert (stale.status_code, stale.json()["reason"]) == (503, "status_unavailable")
        assert recorded_in(authority, stale.json()["decision_id"]) == "deny"
    finally:
        gateway.stop()
        follower.stop()
        upstream.stop()


def recorded_in(authority: IdentityAuthority, decision_id: str) -> str:
    record = LogReader(authority.store).decision(decision_id)
    assert record is not None
    return str(record["decision"])


def test_gateway_workers_share_one_port(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> None:
    """`warden gateway --workers 2`: separate processes, one port, every answer recorded.
    (The CLI is pointed at the SQLite state directory, hence the SQLite store.)"""
    authority = sqlite_authority
    import json
    import time

    upstream = Upstream(authority, tmp_path).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(json.dumps({"routes": [ledger_route(upstream)]}))
    authority.agents.register("invoice-bot", owner="qa", groups=["finance"])
    creds = write_svid(
        tmp_path / "agent",
        authority.issuer.issue_agent_x509("invoice-bot"),
        authority.ca.bundle.to_pem(),
    )
    gateway, port = gateway_process(authority.settings.state_dir, routes, workers=2)
    try:
        deadline = time.monotonic() + 20
        ids = []
        while len(ids) < 6:
            assert time.monotonic() < deadline, "the workers did not answer"
            try:
                # New connections each time, so the kernel can hand them to either worker.
                with httpx.Client(
                    timeout=5, verify=context_for(creds, creds / "bundle.pem")
                ) as client:
                    response = client.get(f"https://localhost:{port}/ledger/x")
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            assert response.status_code == 200, response.text
            ids.append(response.headers["x-warden-decision-id"])
        for decision_id in ids:
            assert recorded_in(authority, decision_id) == "allow"
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)
        upstream.stop()


def test_body_fields_reach_the_policy_and_long_urls_are_refused(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.post("/ledger/invoices", json={"rows": 25, "memo": "x"})
        assert response.status_code == 200, response.text
        record = recorded(setup, response.headers["x-warden-decision-id"])
        assert record["context"]["args"] == {"rows": 25}
        long = client.get("/ledger/" + "a" * 9000)
        assert (long.status_code, long.json()["reason"]) == (431, "request_too_large")


def test_json_nested_past_the_parsers_depth_is_refused_on_record(setup: Setup) -> None:
    deep = b'{"rows": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # 10 KB, far below the body limit
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.post(
            "/ledger/invoices", content=deep, headers={"content-type": "application/json"}
        )
    assert (response.status_code, response.json()["reason"]) == (400, "ambiguous_request")
    assert recorded(setup, response.json()["decision_id"])["decision"] == "deny"
    assert setup.upstream.seen == []


def test_inspection_hooks_can_replace_a_response_with_a_denial(setup: Setup) -> None:
    seen: list[int] = []

    def count_ssns(decision: object, route: object, body: bytes) -> str | None:
        seen.append(body.count(b'"ssn"'))
        return "too_many_ssns" if seen[-1] > 10 else None

    setup.gateway.gateway.inspectors.append(count_ssns)
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get("/ledger/invoices")
    assert (response.status_code, response.json()["reason"]) == (403, "too_many_ssns")
    assert seen == [12]


def test_a_fault_inside_the_gateway_is_a_recorded_deny(setup: Setup) -> None:
    def broken(decision: object, route: object, body: bytes) -> str | None:
        raise KeyError("a hook with a bug")

    setup.gateway.gateway.inspectors.append(broken)
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get("/ledger/invoices")
    assert (response.status_code, response.json()["reason"]) == (500, "internal_error")
    assert b"ssn" not in response.content  # nothing of the upstream's answer got out
    record = recorded(setup, response.json()["decision_id"])
    assert record["decision"] == "deny"
    assert record["reasons"][0]["policy"] == "internal_error"  # type: ignore[index]
    assert "KeyError" in record["reasons"][0]["message"]  # type: ignore[index]


def test_nothing_is_answered_without_its_record(setup: Setup) -> None:
    setup.gateway.recorder.close()  # the durable record can no longer be written
    with setup.client(setup.creds("invoice-bot")) as client:
        response = client.get("/ledger/invoices")
    assert (response.status_code, response.json()["reason"]) == (503, "record_failed")
    assert setup.upstream.seen == []


def test_throttle_and_approval_obligations(authority: IdentityAuthority, tmp_path: Path) -> None:
    from tests.unit.policy.conftest import write_bundle
    from warden.policy.administrator import PolicyAdministrator
    from warden.policy.engine import PolicyEngine

    bundle = write_bundle(
        tmp_path / "bundle",
        """
        @id("reads") @obligation("throttle:3/m") permit (principal, action in Action::"read",
                                                         resource);
        @id("writes-need-a-human") @obligation("approval:1")
        permit (principal, action in Action::"write", resource);
    """,
    )
    # The gateway watches its configured bundle: this one, not the default pack.
    authority = with_settings(authority, policy_bundle=bundle)
    administrator = PolicyAdministrator(authority.store)
    administrator.activate(bundle)
    engine = PolicyEngine(authority.store, administrator, view=authority.status)
    upstream = Upstream(authority, tmp_path).start()
    routes = ledger_routes(upstream)
    gateway = GatewayServer(
        authority, routes=routes, engine=engine, host="127.0.0.1", port=0
    ).start_in_thread()
    try:
        authority.agents.register("bot", owner="qa")
        creds = write_svid(
            tmp_path / "bot", authority.issuer.issue_agent_x509("bot"), authority.ca.bundle.to_pem()
        )
        with httpx.Client(
            base_url=gateway.url, timeout=10, verify=context_for(creds, creds / "bundle.pem")
        ) as client:
            statuses = [client.get("/ledger/x").status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            throttled = client.get("/ledger/x")
            assert throttled.json()["reason"] == "throttled"
            assert int(throttled.headers["retry-after"]) >= 1
            # Parked for a human; nobody decides within its second: refused.
            parked = client.post("/ledger/x", json={})
            assert (parked.status_code, parked.json()["reason"]) == (403, "approval_timed_out")
        assert [s["path"] for s in upstream.seen] == ["/ledger/x"] * 3  # nothing else got through
    finally:
        gateway.stop()
        upstream.stop()


def test_concurrent_requests_per_agent_are_bounded(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import make_authority
    from warden.config import load_settings
    from warden.store import open_store

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    settings = load_settings(state_dir=state, gateway_max_concurrent_per_agent=2)
    store = open_store(settings.database)
    authority = make_authority(settings, store)
    upstream = Upstream(authority, tmp_path).start()
    routes = ledger_routes(upstream)
    gateway = GatewayServer(authority, routes=routes, host="127.0.0.1", port=0).start_in_thread()
    try:
        authority.agents.register("invoice-bot", owner="qa", groups=["finance"])
        creds = write_svid(
            tmp_path / "agent",
            authority.issuer.issue_agent_x509("invoice-bot"),
            authority.ca.bundle.to_pem(),
        )

        def call(_: int) -> httpx.Response:
            with httpx.Client(
                base_url=gateway.url, timeout=10, verify=context_for(creds, creds / "bundle.pem")
            ) as client:
                return client.get("/ledger/slow")

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(call, range(4)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 429, 429]
        assert {a.json()["reason"] for a in answers if a.status_code == 429} == {
            "too_many_concurrent"
        }
    finally:
        gateway.stop()
        upstream.stop()
        store.dispose()
