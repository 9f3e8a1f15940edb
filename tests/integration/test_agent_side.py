"""The agent side: warden.guard decides in-process tools like the gateway; warden.sdk gets an
identity from the Workload API and calls through the gateway with it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.upstream import Upstream, ledger_routes
from warden.audit.reader import LogReader
from warden.audit.setup import open_decision_log
from warden.enforce.server import GatewayServer
from warden.guard import Guard, ToolDenied
from warden.identity.authority import IdentityAuthority
from warden.policy.setup import open_policy_engine
from warden.sdk import AgentIdentity
from warden.server.run import ControlPlaneServer

PII = {"domain": "finance", "classification": "pii"}


@pytest.fixture
def guard(sqlite_authority: IdentityAuthority) -> Iterator[Guard]:
    engine = open_policy_engine(sqlite_authority)
    agent = sqlite_authority.agents.register("crm-bot", owner="sales", groups=["finance"])
    for kind, values in (("risk", {"score": 5}), ("health", {"status": "healthy"}), ("dlp", {})):
        engine.set_signals(kind, {agent.spiffe_id: values})
    log = open_decision_log(sqlite_authority)
    yield Guard(sqlite_authority, engine, log, enforcement_point="spiffe://example.org/svc/guard")
    log.close()


def test_guarded_tools_are_decided_and_recorded(
    guard: Guard, sqlite_authority: IdentityAuthority
) -> None:
    calls: list[dict[str, object]] = []

    @guard.tool("crm-search", properties=PII)
    def crm_search(query: str, limit: int) -> str:
        calls.append({"query": query, "limit": limit})
        return "results"

    svid = sqlite_authority.issuer.issue_agent_x509("crm-bot")
    with guard.acting_as([svid.cert, *svid.chain]):
        assert crm_search(query="acme", limit=10) == "results"
        with pytest.raises(ToolDenied) as caught:
            crm_search(query="everyone", limit=5000)  # a bulk read needs a work order
    assert caught.value.decision.reasons[0].policy == "customer-export-needs-work-order"
    assert calls == [{"query": "acme", "limit": 10}]
    newest = LogReader(sqlite_authority.store).search(kind="decision", limit=2)
    assert [r["decision"] for r in newest] == ["deny", "allow"]
    assert newest[0]["context"]["tool"] == "crm-search"


def test_guard_fails_closed_without_a_good_credential(
    guard: Guard, sqlite_authority: IdentityAuthority
) -> None:
    @guard.tool("crm-search", properties=PII)
    def crm_search(query: str) -> str:
        raise AssertionError("never runs")

    with pytest.raises(ToolDenied) as caught:
        crm_search(query="x")  # no acting_as: no identity
    assert caught.value.decision.reasons[0].policy == "no_credential"
    svid = sqlite_authority.issuer.issue_agent_x509("crm-bot")
    sqlite_authority.agents.revoke("crm-bot")
    with guard.acting_as([svid.cert]), pytest.raises(ToolDenied) as caught:
        crm_search(query="x")
    assert caught.value.decision.reasons[0].policy == "credential_principal_revoked"


def test_guard_takes_jwt_svids_for_its_own_audience(
    guard: Guard, sqlite_authority: IdentityAuthority
) -> None:
    @guard.tool("ledger-read", properties={"domain": "finance"})
    def ledger_read(limit: int) -> int:
        return limit

    mine = sqlite_authority.issuer.issue_agent_jwt("crm-bot", [guard.enforcement_point]).token
    other = sqlite_authority.issuer.issue_agent_jwt("crm-bot", ["spiffe://example.org/svc/x"])
    with guard.acting_as(mine):
        assert ledger_read(limit=3) == 3
    with guard.acting_as(other.token), pytest.raises(ToolDenied) as caught:
        ledger_read(limit=3)
    assert caught.value.decision.reasons[0].policy == "credential_wrong_audience"


@pytest.fixture
def stack(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> Iterator[tuple[ControlPlaneServer, GatewayServer, Upstream]]:
    plane = ControlPlaneServer(sqlite_authority, host="127.0.0.1", port=0).start_in_thread()
    upstream = Upstream(sqlite_authority, tmp_path).start()
    routes = ledger_routes(upstream)
    gateway = GatewayServer(
        sqlite_authority, routes=routes, engine=plane.policy, host="127.0.0.1", port=0
    ).start_in_thread()
    try:
        yield plane, gateway, upstream
    finally:
        gateway.stop()
        upstream.stop()
        plane.stop()


def test_sdk_identity_from_the_workload_api_calls_through_the_gateway(
    stack: tuple[ControlPlaneServer, GatewayServer, Upstream],
    sqlite_authority: IdentityAuthority,
) -> None:
    plane, gateway, _ = stack
    agent = sqlite_authority.agents.register(
        "sdk-bot",
        owner="qa",
        groups=["finance"],
        selectors=[f"unix:uid:{os.getuid()}", f"unix:path:{os.path.realpath(sys.executable)}"],
    )
    with AgentIdentity(plane.workload_api.endpoint) as identity:
        assert identity.spiffe_id == agent.spiffe_id
        assert oct(Path(identity._dir).stat().st_mode & 0o777) == "0o700"
        with identity.http_client(
            gateway.url.replace("127.0.0.1", "localhost"), timeout=10
        ) as client:
            response = client.get("/ledger/invoices")
        assert response.status_code == 200, response.text
        assert response.json()["agent"] == agent.spiffe_id
        assert identity.refresh() is False  # nothing rotated yet
