"""The decision APIs over real mTLS: only enforcement points ask, every answer is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.creds import context_for, write_svid
from tests.support.reports import make_healthy
from warden.audit.reader import LogReader
from warden.identity.authority import IdentityAuthority
from warden.server.run import ControlPlaneServer

CRM = "spiffe://example.org/agent/crm-bot"


class Plane:
    def __init__(self, server: ControlPlaneServer, root: Path) -> None:
        self.server = server
        self.authority = server.authority
        self.root = root

    def client(self, kind: str, name: str) -> httpx.Client:
        authority = self.authority
        if kind == "ep":
            authority.enforcement_points.add(name, created_by="test")
            issued = authority.issuer.issue_service_x509(name)
        elif kind == "svc":
            issued = authority.issuer.issue_service_x509(name)
        elif kind == "operator":
            authority.operators.add(name, role="admin", created_by="test")
            issued = authority.issuer.issue_operator_x509(name)
        else:
            issued = authority.issuer.issue_agent_x509(name)
        creds = write_svid(self.root / name, issued, authority.ca.bundle.to_pem())
        return httpx.Client(
            base_url=self.server.url,
            timeout=10,
            verify=context_for(creds, self.server.credentials.ca_file),
        )


@pytest.fixture
def plane(authority: IdentityAuthority, tmp_path: Path) -> Iterator[Plane]:
    authority.agents.register("crm-bot", owner="sales", groups=["finance"])
    server = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    make_healthy(server.health, "crm-bot")
    server.policy.set_signals("dlp", {CRM: {}})
    try:
        yield Plane(server, tmp_path)
    finally:
        server.stop()


def export(rows: int, destination: str = "s3://finance-exports") -> dict[str, object]:
    return {
        "subject": {"type": "Agent", "id": CRM},
        "action": {"name": "data:export"},
        "resource": {
            "type": "Dataset",
            "id": "customers",
            "properties": {"domain": "finance", "classification": "pii"},
        },
        "context": {"authn": "mtls", "args": {"rows": rows, "destination": destination}},
    }


def test_only_registered_enforcement_points_may_ask(plane: Plane) -> None:
    read = {
        **export(1),
        "action": {"name": "http:GET"},
        "resource": {
            "type": "Endpoint",
            "id": "ledger/x",
            "properties": {"domain": "finance", "classification": "internal"},
        },
    }
    with plane.client("ep", "gateway") as gateway:
        answer = gateway.post("/v1/decide", json=read)
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "allow"
        recorded = LogReader(plane.authority.store).decision(answer.json()["decision_id"])
        assert recorded is not None
        assert recorded["enforcement_point"] == "spiffe://example.org/svc/gateway"
        assert recorded["subject"]["id"] == CRM
    for kind, name in (("svc", "not-registered"), ("agent", "crm-bot"), ("operator", "alice")):
        with plane.client(kind, name) as other:
            assert other.post("/v1/decide", json=read).status_code == 403, kind
            assert other.post("/access/v1/evaluation", json=read).status_code == 403, kind


def test_work_order_through_the_api_benign_allowed_attacker_denied(plane: Plane) -> None:
    with plane.client("operator", "alice") as operator:
        created = operator.post(
            "/v1/workorders",
            json={
                "agent": "crm-bot",
                "ticket": "FIN-1042",
                "actions": ["data:export"],
                "resources": ["Dataset:customers"],
                "max_uses": 3,
                "ttl_s": 600,
                "constraints": [
                    {"arg": "rows", "op": "max", "value": 500},
                    {"arg": "destination", "op": "one_of", "value": ["s3://finance-exports"]},
                ],
            },
        )
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
    with plane.client("ep", "gateway") as gateway:
        allowed = gateway.post("/v1/decide", json=export(100)).json()
        assert (allowed["decision"], allowed["work_order"]) == ("allow", order_id)
        attacker = gateway.post("/v1/decide", json=export(100, "https://paste.example.net")).json()
        assert attacker["decision"] == "deny"
        assert attacker["reasons"][0]["policy"] == "customer-export-needs-work-order"
        # Concurrent requests never exceed the maximum: 2 uses left.
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(lambda _: gateway.post("/v1/decide", json=export(10)).json(), range(10))
            )
        assert sum(a["decision"] == "allow" for a in answers) == 2
        exhausted = gateway.post("/v1/decide", json=export(10)).json()
        assert exhausted["decision"] == "deny"


def test_closing_a_work_order_denies_the_next_request(plane: Plane) -> None:
    with plane.client("operator", "alice") as operator:
        order_id = operator.post(
            "/v1/workorders",
            json={
                "agent": "crm-bot",
                "ticket": "FIN-7",
                "actions": ["data:export"],
                "resources": ["Dataset:customers"],
                "max_uses": 100,
            },
        ).json()["id"]
        with plane.client("ep", "gateway") as gateway:
            assert gateway.post("/v1/decide", json=export(5)).json()["decision"] == "allow"
            closed = operator.post(f"/v1/workorders/{order_id}/close", json={"reason": "done"})
            assert closed.json()["status"] == "closed"
            assert gateway.post("/v1/decide", json=export(5)).json()["decision"] == "deny"
        listed = operator.get("/v1/workorders", params={"agent": "crm-bot"}).json()
        assert listed["work_orders"][0]["uses"] == 1


def test_authzen(plane: Plane) -> None:
    read = {
        "subject": {"type": "agent", "id": CRM},
        "action": {"name": "http:GET"},
        "resource": {"type": "Endpoint", "id": "ledger/x", "properties": {"domain": "finance"}},
        "context": {"authn": "mtls"},
    }
    payroll = {
        **read,
        "resource": {
            "type": "Endpoint",
            "id": "hr/payroll",
            "properties": {"domain": "finance", "tags": ["payroll"]},
        },
    }
    with plane.client("ep", "mesh") as mesh:
        one = mesh.post("/access/v1/evaluation", json=read).json()
        assert one["decision"] is True and one["context"]["id"]
        many = mesh.post(
            "/access/v1/evaluations",
            json={
                "subject": read["subject"],
                "action": read["action"],
                "context": read["context"],
                # Payroll last: the default payroll-attempt playbook revokes a finance
                # agent that reaches for it.
                "evaluations": [
                    {"resource": read["resource"]},
                    {"resource": read["resource"]},
                    {"resource": payroll["resource"]},
                ],
            },
        ).json()
        assert [e["decision"] for e in many["evaluations"]] == [True, True, False]
        plane.server.authority.agents.register("crm-bot-2", owner="sales", groups=["finance"])
        make_healthy(plane.server.health, "crm-bot-2")
        plane.server.policy.set_signals("dlp", {CRM: {}, CRM + "-2": {}})
        first_deny = mesh.post(
            "/access/v1/evaluations",
            json={
                "subject": {"type": "agent", "id": CRM + "-2"},
                "action": read["action"],
                "evaluations": [{"resource": payroll["resource"]}, {"resource": read["resource"]}],
                "options": {"evaluations_semantic": "deny_on_first_deny"},
            },
        ).json()
        assert [e["decision"] for e in first_deny["evaluations"]] == [False]
        reasons = first_deny["evaluations"][0]["context"]["reason_admin"]["reasons"]
        assert reasons[0]["policy"] == "payroll-only-hr"
        assert mesh.post("/access/v1/evaluation", json={"subject": "x"}).status_code == 400
        metadata = mesh.get("/.well-known/authzen-configuration").json()
        assert metadata["access_evaluation_endpoint"].endswith("/access/v1/evaluation")


def test_policy_status(plane: Plane) -> None:
    with plane.client("operator", "alice") as operator:
        status = operator.get("/v1/policy").json()
        assert status["active"]["name"] == "warden-default"
        assert status["active"]["revision"].startswith("sha256:")
        assert status["shadow"] is None
        assert operator.get("/v1/policy/shadow").json()["counts"] == {
            "allow->deny": 0,
            "deny->allow": 0,
        }


def test_decisions_asked_for_are_learned_and_the_risk_is_readable(plane: Plane) -> None:
    read = {
        **export(1),
        "action": {"name": "http:GET"},
        "resource": {
            "type": "Endpoint",
            "id": "crm/customers",
            "properties": {"domain": "finance", "classification": "pii"},
        },
        "context": {"authn": "mtls", "source_ip": "127.0.4.9", "args": {"limit": 10}},
    }
    with plane.client("ep", "gateway") as gateway:
        for _ in range(3):
            assert gateway.post("/v1/decide", json=read).json()["decision"] == "allow"
        plane.server.risk.flag(CRM, 650, "reported by the security team")
        denied = gateway.post("/v1/decide", json=read).json()
    assert denied["decision"] == "deny"
    assert [r["policy"] for r in denied["reasons"]] == ["high-risk-no-sensitive"]
    assert denied["risk"]["factors"] == [["reported by the security team", 650]]
    with plane.client("operator", "alice") as operator:
        risk = operator.get("/v1/agents/crm-bot/risk")
        assert risk.status_code == 200, risk.text
        body = risk.json()
        assert operator.get("/v1/agents/no-such-bot/risk").status_code == 404
    with plane.client("agent", "crm-bot") as agent:  # an agent may not read its own score
        assert agent.get("/v1/agents/crm-bot/risk").status_code == 403
    assert body["score"] == 650 and body["level"] == "high"
    assert body["factors"] == [{"words": "reported by the security team", "points": 650}]
    assert body["would_contain"] is None
    baseline = body["baseline"]
    assert baseline["requests"] == 4 and baseline["learned"] is False
    assert baseline["targets"] == ["Endpoint:crm/customers"]
    assert baseline["networks"] == ["127.0.4.0/24"]


def test_gateways_pull_the_active_bundle_and_agents_may_not(plane: Plane) -> None:
    with plane.client("svc", "gateway-7") as gateway:
        pulled = gateway.get("/v1/feed/policy")
        assert pulled.status_code == 200, pulled.text
        body = pulled.json()
        assert body["name"] == "warden-default" and "manifest.yaml" in body["files"]
        same = gateway.get("/v1/feed/policy", params={"known": body["revision"], "wait": 0.3})
        assert same.json() == {"revision": body["revision"], "unchanged": True}
        too_long = gateway.get("/v1/feed/policy", params={"wait": 600})
        assert too_long.status_code == 422
    with plane.client("agent", "crm-bot") as agent:
        assert agent.get("/v1/feed/policy").status_code == 403
