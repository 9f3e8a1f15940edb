"""Approvals and releases over the real gateway and control plane: a playbook parks an
agent's writes for its owner; the owner approves (the request goes on), an approver denies, or
nobody decides in time (both refused); a quarantine is lifted only by an approved release.
Incidents are read and resolved over the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_dlp_gateway import DlpSetup
from tests.support.creds import context_for, write_svid
from warden.identity.authority import IdentityAuthority
from warden.response.engine import ResponseEngine
from warden.server.run import ControlPlaneServer

PLAYBOOKS = {
    "manifest.yaml": "name: approvals-test\nversion: 1\n",
    "writes.yaml": (
        "name: writes-need-the-owner\n"
        "trigger:\n  manual: {}\n"
        "actions:\n  - require_approval: {actions: ['http:POST'], timeout_s: 4}\n"
    ),
    "release.yaml": (
        "name: release-after-review\n"
        "trigger:\n  manual: {}\n"
        "actions:\n  - release: {lift: [quarantine]}\n"
    ),
    "image.yaml": (
        "name: wrong-image\ntrigger:\n  attestation_failed: {}\nactions:\n  - quarantine: {}\n"
    ),
    "payroll.yaml": (
        "name: payroll-attempt\n"
        "trigger:\n  policy: {ids: [payroll-only-hr], decision: deny}\n"
        "actions:\n  - quarantine: {}\n"
    ),
    "contain.yaml": (
        "name: contain\n"
        "trigger:\n  manual: {}\n"
        "actions:\n  - quarantine: {}\n  - incident: {title: contained by hand}\n"
    ),
}


class Plane:
    """The control plane beside the gateway, with operators that call it."""

    def __init__(self, authority: IdentityAuthority, root: Path) -> None:
        self.authority = authority
        self.root = root
        self.server = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
        self.clients: list[httpx.Client] = []  # closed before the server stops, or it waits

    def operator(self, name: str, role: str) -> httpx.Client:
        self.authority.operators.add(name, role=role, created_by="test")  # type: ignore[arg-type]
        issued = self.authority.issuer.issue_operator_x509(name)
        creds = write_svid(self.root / f"op-{name}", issued, self.authority.ca.bundle.to_pem())
        client = httpx.Client(
            base_url=self.server.url,
            timeout=10,
            verify=context_for(creds, self.server.credentials.ca_file),
        )
        self.clients.append(client)
        return client


@pytest.fixture
def stack(authority: IdentityAuthority, tmp_path: Path) -> Iterator[tuple[DlpSetup, Plane]]:
    bundle = tmp_path / "playbooks"
    bundle.mkdir()
    for name, text in PLAYBOOKS.items():
        (bundle / name).write_text(text)
    setup = DlpSetup(authority, tmp_path, playbooks=bundle)
    plane = Plane(setup.authority, tmp_path)
    try:
        yield setup, plane
    finally:
        for client in plane.clients:
            client.close()
        plane.server.stop()
        setup.stop()


def engine_of(setup: DlpSetup) -> ResponseEngine:
    assert setup.gateway.response is not None
    return setup.gateway.response


def pending(client: httpx.Client, agent: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = client.get("/v1/approvals", params={"status": "pending", "agent": agent})
        assert found.status_code == 200, found.text
        if found.json()["approvals"]:
            return dict(found.json()["approvals"][0])
        time.sleep(0.05)
    raise AssertionError("nothing was parked")


def test_parked_writes_wait_for_the_owner(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    engine_of(setup).trigger("writes-need-the-owner", "invoice-bot", by="test", reason="review")
    owner = plane.operator("qa", "operator")  # the agents' owner in the set-up
    approver = plane.operator("sam", "approver")
    auditor = plane.operator("ida", "auditor")
    with setup.client("invoice-bot") as agent, ThreadPoolExecutor(2) as pool:
        assert agent.get("/ledger/invoices").status_code == 200  # reads are not parked
        # Approved by the owner: the write goes through, after the approval.
        parked: Future[httpx.Response] = pool.submit(agent.post, "/ledger/invoices", json={})
        approval = pending(owner, "invoice-bot")
        assert (approval["kind"], approval["action"]) == ("request", "http:POST")
        assert not parked.done()
        refused = auditor.post(f"/v1/approvals/{approval['id']}/approve", json={})
        assert refused.status_code == 403  # neither the owner nor an approver
        approved = owner.post(f"/v1/approvals/{approval['id']}/approve", json={"reason": "ok"})
        assert approved.status_code == 200, approved.text
        answer = parked.result(timeout=10)
        assert answer.status_code == 200
        assert answer.headers["x-warden-decision-id"] == approval["decision_id"]
        # Denied by an approver: refused, with the decision id.
        parked = pool.submit(agent.post, "/ledger/invoices", json={})
        approval = pending(approver, "invoice-bot")
        denied = approver.post(f"/v1/approvals/{approval['id']}/deny", json={"reason": "no"})
        assert denied.status_code == 200
        answer = parked.result(timeout=10)
        assert (answer.status_code, answer.json()["reason"]) == (403, "approval_denied")
        # Nobody decides: refused once its time is up, and it cannot be approved after.
        started = time.monotonic()
        answer = agent.post("/ledger/invoices", json={})
        assert (answer.status_code, answer.json()["reason"]) == (403, "approval_timed_out")
        assert time.monotonic() - started >= 3.5
    (late,) = [
        a for a in owner.get("/v1/approvals", params={"status": "timed_out"}).json()["approvals"]
    ]
    again = owner.post(f"/v1/approvals/{late['id']}/approve", json={})
    assert again.status_code == 409
    outcomes = [
        e["outcome"] for e in reversed(setup.events("response")) if e.get("event") == "approval"
    ]
    assert outcomes == ["approved", "denied"]


def test_a_quarantine_is_released_only_with_approval(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    engine = engine_of(setup)
    approver = plane.operator("sam", "approver")
    contained = engine.trigger("contain", "invoice-bot", by="test", reason="suspicious")
    assert [s.outcome for s in contained.steps] == ["done", "done"]
    assert setup.authority.agents.get("invoice-bot").status == "quarantined"
    asked = engine.trigger("release-after-review", "invoice-bot", by="test", reason="looked")
    assert asked.steps[0].outcome == "pending"
    approval = pending(approver, "invoice-bot")
    assert (approval["kind"], approval["action"]) == ("release", "release:quarantine")
    # Asking again while one waits does not stack requests.
    again = engine.trigger("release-after-review", "invoice-bot", by="test", reason="again")
    assert again.steps[0].outcome == "already"
    approver.post(f"/v1/approvals/{approval['id']}/deny", json={"reason": "not yet"})
    assert setup.authority.agents.get("invoice-bot").status == "quarantined"
    engine.trigger("release-after-review", "invoice-bot", by="test", reason="now")
    approval = pending(approver, "invoice-bot")
    approved = approver.post(f"/v1/approvals/{approval['id']}/approve", json={})
    assert approved.status_code == 200
    assert setup.authority.agents.get("invoice-bot").status == "active"
    lifted = [e for e in setup.events("response") if e.get("event") == "lifted"]
    assert [(e["lift"], e["approval"]) for e in lifted] == [("quarantine", approval["id"])]
    # The incident the playbook opened, read and resolved over the API.
    incidents = approver.get("/v1/incidents", params={"agent": "invoice-bot"})
    assert incidents.status_code == 200
    (incident,) = incidents.json()["incidents"]
    assert incident["title"] == "contained by hand" and incident["status"] == "open"
    forbidden = approver.post(
        f"/v1/incidents/{incident['id']}/resolve", json={"resolution": "released"}
    )
    assert forbidden.status_code == 403  # approvers read incidents; operators resolve them
    operator = plane.operator("olga", "operator")
    resolved = operator.post(
        f"/v1/incidents/{incident['id']}/resolve", json={"resolution": "released after review"}
    )
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    twice = operator.post(f"/v1/incidents/{incident['id']}/resolve", json={"resolution": "x"})
    assert twice.status_code == 409
    assert operator.get("/v1/incidents/nope").status_code == 404
    bad = operator.post(f"/v1/incidents/{incident['id']}/resolve", json={"resolution": ""})
    assert bad.status_code == 422


def test_playbooks_are_listed_and_triggered_over_the_api(stack: tuple[DlpSetup, Plane]) -> None:
    setup, plane = stack
    operator = plane.operator("olga", "operator")
    listed = operator.get("/v1/playbooks").json()
    assert listed["active"]["name"] == "approvals-test"
    assert {p["name"] for p in listed["playbooks"]} == {
        "writes-need-the-owner",
        "release-after-review",
        "contain",
        "wrong-image",
        "payroll-attempt",
    }
    ran = operator.post(
        "/v1/playbooks/contain/trigger", json={"agent": "triage-bot", "reason": "by hand"}
    )
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "done"
    assert setup.authority.agents.get("triage-bot").status == "quarantined"
    runs = operator.get("/v1/playbooks/runs", params={"agent": "triage-bot"}).json()["runs"]
    assert runs[0]["trigger"]["by"].endswith("/operator/olga")
    missing = operator.post(
        "/v1/playbooks/nope/trigger", json={"agent": "triage-bot", "reason": "x"}
    )
    assert missing.status_code == 404
    unknown = operator.post("/v1/playbooks/contain/trigger", json={"agent": "ghost", "reason": "x"})
    assert unknown.status_code == 404
    extra = operator.post(
        "/v1/playbooks/contain/trigger", json={"agent": "triage-bot", "reason": "x", "cmd": "rm"}
    )
    assert extra.status_code == 422


def test_a_container_that_fails_to_attest_contains_its_agent(
    stack: tuple[DlpSetup, Plane],
) -> None:
    from tests.integration.test_attestation import IMAGE, SBOM
    from warden.identity.attestation.container import sbom_digest
    from warden.identity.errors import AttestationFailed

    setup, plane = stack
    containers = setup.authority.containers
    containers.set_evidence("invoice-bot", image_digest=IMAGE, sbom=SBOM)
    token = containers.create_join_token("invoice-bot", created_by="test")
    with pytest.raises(AttestationFailed, match="image digest mismatch"):
        plane.authority.containers.redeem(
            token, image_digest="sha256:" + "ee" * 32, sbom_digest_value=sbom_digest(SBOM)
        )
    assert plane.server.response is not None
    plane.server.response.wait_idle()
    assert setup.authority.agents.get("invoice-bot").status == "quarantined"
    (run,) = plane.server.response.runs.list(agent="invoice-bot")
    assert run["trigger"] == {
        "kind": "attestation_failed",
        "reason": "image digest mismatch",
        "method": "container",
    }


def test_a_decision_asked_of_the_control_plane_can_trip_a_playbook(
    stack: tuple[DlpSetup, Plane],
) -> None:
    setup, plane = stack
    authority = setup.authority
    authority.enforcement_points.add("billing-service", created_by="test")
    issued = authority.issuer.issue_service_x509("billing-service")
    creds = write_svid(plane.root / "billing-service", issued, authority.ca.bundle.to_pem())
    asked = {
        "subject": {"type": "Agent", "id": "spiffe://example.org/agent/invoice-bot"},
        "action": {"name": "http:GET"},
        "resource": {
            "type": "Endpoint",
            "id": "hr/payroll",
            "properties": {"domain": "finance", "classification": "internal", "tags": ["payroll"]},
        },
        "context": {"authn": "mtls"},
    }
    with httpx.Client(
        base_url=plane.server.url,
        timeout=10,
        verify=context_for(creds, plane.server.credentials.ca_file),
    ) as point:
        answer = point.post("/v1/decide", json=asked).json()
    assert answer["decision"] == "deny"
    assert [r["policy"] for r in answer["reasons"]] == ["payroll-only-hr"]
    assert plane.server.response is not None
    plane.server.response.wait_idle()
    assert authority.agents.get("invoice-bot").status == "quarantined"
