"""Playbooks behind the real gateway: what an agent does through it trips a playbook, whose
actions contain the agent (quarantine, revocation, throttle, restriction), open an incident,
notify a real webhook receiver with a signed body, and are each on record with their trigger."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_dlp_gateway import (
    INVOICE_BOT,
    DlpSetup,
    customers,
    patients,
    reason,
    wait_for,
)
from tests.support.reports import grype, make_healthy
from tests.support.webhook import WebhookReceiver
from warden.identity.errors import AgentNotActive
from warden.policy.packs import shipped_playbooks
from warden.response import notify

SECRET = b"a-shared-webhook-key-of-32-bytes!"
TRIAGE_BOT = "spiffe://example.org/agent/triage-bot"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    try:
        yield server
    finally:
        server.stop()


def webhook_settings(root: Path, receiver: WebhookReceiver) -> dict[str, object]:
    secret = root / "webhook.key"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    return {"response_webhooks": {"security": {"url": receiver.url, "secret_file": secret}}}


@pytest.fixture
def rs(authority, tmp_path: Path, receiver: WebhookReceiver) -> Iterator[DlpSetup]:  # type: ignore[no-untyped-def]
    """The DLP set-up (EHR, CRM, ledger routes) with the default playbooks and a webhook."""
    s = DlpSetup(authority, tmp_path, **webhook_settings(tmp_path, receiver))
    try:
        yield s
    finally:
        s.stop()


def responses(setup: DlpSetup) -> list[dict[str, object]]:
    """The response entries in the log, oldest first."""
    return list(reversed(setup.events("response")))


def test_a_critical_risk_contains_the_agent_everywhere_with_reasons_on_record(
    rs: DlpSetup, receiver: WebhookReceiver
) -> None:
    response = rs.gateway.response
    assert response is not None
    with rs.client("invoice-bot") as client:
        allowed = client.get("/ledger/invoices")
        assert allowed.status_code == 200
        rs.gateway.risk.flag(INVOICE_BOT, 900, "reported by the security team")
        response.wait_idle()
        # The next request on the same open connection is refused: its credential is dead.
        contained = client.get("/ledger/invoices")
        assert contained.status_code == 401, contained.text
        assert reason(contained).startswith("credential")
    agent = rs.authority.agents.get("invoice-bot")
    assert agent.status == "quarantined" and agent.credential_epoch == 1
    with pytest.raises(AgentNotActive):
        rs.authority.issuer.issue_agent_x509("invoice-bot")  # renewals refused
    runs = response.runs.list(agent="invoice-bot")
    assert [(r["playbook"], r["status"]) for r in runs] == [("high-risk-contain", "done")]
    assert [s["action"] for s in runs[0]["steps"]] == ["revoke", "quarantine", "incident", "notify"]
    # Each step is in the decision log, with what triggered it.
    steps = [e for e in responses(rs) if e.get("event") == "action"]
    assert [(s["action"], s["outcome"]) for s in steps] == [
        ("revoke", "done"),
        ("quarantine", "done"),
        ("incident", "done"),
        ("notify", "done"),
    ]
    trigger = steps[0]["trigger"]
    assert isinstance(trigger, dict) and trigger["kind"] == "risk" and trigger["score"] == 900
    assert trigger["factors"] == [["reported by the security team", 900]]
    # The incident holds the trigger, the agent's recent decisions and its risk factors.
    (incident,) = response.incidents.list(agent="invoice-bot")
    assert incident.severity == "critical" and incident.status == "open"
    assert allowed.headers["x-warden-decision-id"] in {d["decision_id"] for d in incident.decisions}
    assert ["reported by the security team", 900] in incident.factors
    # The webhook got one notification, signed with the shared key.
    (got,) = receiver.received
    assert notify.verify(SECRET, got.headers["x-warden-signature"], got.body)
    assert not notify.verify(
        b"another-key-of-sufficient-size", got.headers["x-warden-signature"], got.body
    )
    message = json.loads(got.body)
    assert (message["agent"], message["playbook"]) == ("invoice-bot", "high-risk-contain")
    assert message["incident"] == incident.id
    assert message["actions"] == ["revoke", "quarantine", "incident"]
    # Within its cooldown the same trigger does not run the playbook again.
    rs.gateway.risk.flag(INVOICE_BOT, 950, "reported again")
    response.wait_idle()
    assert len(response.runs.list(agent="invoice-bot")) == 1


def test_a_phi_window_exceeded_throttles_the_agent_on_every_route(rs: DlpSetup) -> None:
    response = rs.gateway.response
    assert response is not None
    rs.answer("three", patients(3))
    rs.answer("none", patients(0))
    with rs.client("triage-bot") as client:
        assert client.get("/ehr/three").status_code == 200
        over = client.get("/ehr/three")
        assert (over.status_code, reason(over)) == (403, "dlp_window_exceeded:phi_per_minute")
        response.wait_idle()
        held = rs.authority.agents.get("triage-bot").containment
        assert held["throttle"]["rate"] == "6/m"
        answers = [client.get("/ehr/none") for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 6 + [429] * 2
    assert reason(answers[-1]) == "throttled"
    (run,) = response.runs.list(agent="triage-bot")
    assert run["playbook"] == "phi-exfiltration"
    assert run["trigger"]["kind"] == "dlp" and run["trigger"]["classes"] == ["phi"]
    assert [s["outcome"] for s in run["steps"]] == ["done", "done", "done"]


def test_a_restriction_holds_until_a_clean_report(
    authority,
    tmp_path: Path,
    receiver: WebhookReceiver,  # type: ignore[no-untyped-def]
) -> None:
    bundle = tmp_path / "playbooks"
    shutil.copytree(shipped_playbooks() / "default", bundle)
    (bundle / "health-compromised.yaml").write_text(
        "name: degraded-public-only\n"
        "trigger:\n  health: {status: [degraded, compromised]}\n"
        "actions:\n  - restrict: {classes: [public], until: clean_report}\n"
    )
    s = DlpSetup(authority, tmp_path, playbooks=bundle, **webhook_settings(tmp_path, receiver))
    try:
        s.answer("customers", customers(3))
        with s.client("invoice-bot") as client:
            assert client.get("/ledger/invoices").status_code == 200
            s.gateway.health.ingest(
                "invoice-bot", [grype([("CVE-2026-0001", "Critical")])], by="scanner"
            )
            assert s.gateway.response is not None
            s.gateway.response.wait_idle()
            # The ledger is internal: the policies allow it to a degraded workload, the
            # playbook's restriction does not.
            denied = client.get("/ledger/invoices")
            assert denied.status_code == 403
            entry = s.reader.decision(denied.json()["decision_id"])
            assert entry is not None
            assert [r["policy"] for r in entry["reasons"]] == ["response-restricted"]
            assert "degraded-public-only" in entry["reasons"][0]["message"]
            make_healthy(s.gateway.health, "invoice-bot")  # a clean report
            wait_for(lambda: client.get("/ledger/invoices").status_code == 200)
        assert "restrict" not in s.authority.agents.get("invoice-bot").containment
        lifted = [e for e in responses(s) if e.get("event") == "lifted"]
        assert [e["lift"] for e in lifted] == ["restrict"]
    finally:
        s.stop()


def test_an_agent_that_does_not_meet_the_conditions_is_left_alone(
    authority,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    bundle = tmp_path / "playbooks"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text("name: t\nversion: 1\n")
    (bundle / "nights.yaml").write_text(
        "name: payroll-team-only\n"
        "trigger:\n  risk: {at_least: 500}\n"
        "when:\n  labels: {team: payroll}\n"
        "actions:\n  - quarantine: {}\n"
    )
    s = DlpSetup(authority, tmp_path, playbooks=bundle)
    try:
        assert s.gateway.response is not None
        s.gateway.risk.flag(INVOICE_BOT, 900, "reported")
        s.gateway.response.wait_idle()
        assert s.authority.agents.get("invoice-bot").status == "active"
        assert s.gateway.response.runs.list() == []
    finally:
        s.stop()


def test_a_playbook_closes_the_agents_open_mcp_stream(
    authority,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from tests.integration.test_mcp_gateway import PATH, McpSetup, open_session

    setup = McpSetup(authority, tmp_path)
    try:
        response = setup.gateway.response
        assert response is not None
        with setup.raw("invoice-bot") as http:
            session = open_session(http)
            headers = {"Mcp-Session-Id": session, "Accept": "text/event-stream"}
            closed: list[float] = []
            opened = threading.Event()

            def listen() -> None:
                with http.stream("GET", PATH, headers=headers, timeout=30) as stream:
                    assert stream.status_code == 200
                    opened.set()
                    for _ in stream.iter_bytes():
                        pass
                closed.append(time.monotonic())

            listener = threading.Thread(target=listen)
            listener.start()
            assert opened.wait(10)
            flagged = time.monotonic()
            setup.gateway.risk.flag(INVOICE_BOT, 900, "reported by the security team")
            listener.join(10)
        assert closed and closed[0] - flagged < 1.0  # the stream went with the credential

        def steps() -> list[str]:
            runs = response.runs.list(agent="invoice-bot")
            return [s["action"] for s in runs[0]["steps"]][:2] if runs else []

        # Containment comes first, the run's record after it: the stream may close before.
        deadline = time.monotonic() + 5
        while steps() != ["revoke", "quarantine"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert steps() == ["revoke", "quarantine"]
    finally:
        setup.stop()


def test_a_notification_is_retried_until_the_receiver_takes_it(
    authority,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    receiver = WebhookReceiver(fail_first=2).start()
    bundle = tmp_path / "playbooks"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text("name: t\nversion: 1\n")
    (bundle / "tell.yaml").write_text(
        "name: tell\ntrigger: {manual: {}}\nactions:\n  - notify: {webhook: security}\n"
    )
    s = DlpSetup(authority, tmp_path, playbooks=bundle, **webhook_settings(tmp_path, receiver))
    try:
        assert s.gateway.response is not None
        ran = s.gateway.response.trigger("tell", "invoice-bot", by="test", reason="drill")
        assert [(st.outcome, st.attempts) for st in ran.steps] == [("done", 3)]
        assert receiver.answered == [503, 503, 204]
        (got,) = receiver.received
        assert notify.verify(SECRET, got.headers["x-warden-signature"], got.body)
        # Every attempt of one notification carries the same event id, for deduplication.
        assert got.headers["x-warden-event-id"] == f"{ran.run}:0"
    finally:
        s.stop()
        receiver.stop()
