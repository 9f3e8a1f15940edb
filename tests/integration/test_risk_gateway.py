"""The risk engine behind a real gateway: every request an agent makes through it is learned
and scored, the next decision reads the score, a high score restricts the agent to
non-sensitive data with the reasons on record, and baselines survive a restart."""

from __future__ import annotations

from tests.support.gateway import Setup, recorded, with_settings
from warden.enforce.server import GatewayServer

INVOICE = "spiffe://example.org/agent/invoice-bot"
TRIAGE = "spiffe://example.org/agent/triage-bot"


def test_every_request_is_learned_and_the_next_decision_reads_the_score(setup: Setup) -> None:
    risk = setup.gateway.risk
    with setup.client(setup.creds("invoice-bot")) as client:
        ids = [client.get("/ledger/invoices").headers["x-warden-decision-id"] for _ in range(4)]
        denied = client.get("/customers")  # not its data: denied, and learned as a denial
        assert denied.status_code == 403
    baseline = risk.baseline(INVOICE)
    assert baseline is not None and baseline.events == 5
    assert set(baseline.targets) == {"Endpoint:ledger/invoices", "Endpoint:ehr/patients"}
    assert set(baseline.networks) == {"127.0.0.0/24"}
    assert baseline.denied.mean > 0
    entry = recorded(setup, ids[-1])
    assert entry["risk"] == {"score": 0, "level": "low", "factors": []}


def test_a_high_score_restricts_the_agent_to_non_sensitive_data(setup: Setup) -> None:
    risk = setup.gateway.risk
    with setup.client(setup.creds("triage-bot")) as client:
        risk.flag(TRIAGE, 700, "reported by the security team")
        denied = client.get("/customers")
        assert denied.status_code == 403
        decision_id = denied.json()["decision_id"]
        # Denials the score itself causes are a consequence, not new evidence.
        for _ in range(5):
            assert client.get("/customers").status_code == 403
    entry = recorded(setup, decision_id)
    assert entry["decision"] == "deny"
    assert [r["policy"] for r in entry["reasons"]] == ["high-risk-no-sensitive"]
    assert entry["risk"]["score"] == 700 and entry["risk"]["level"] == "high"
    assert entry["risk"]["factors"] == [["reported by the security team", 700]]
    assert risk.assessment(TRIAGE).score == 700
    assert risk.assessment(TRIAGE).contain is None  # 700 is high, not critical
    assert risk.clear(TRIAGE) == 0
    with setup.client(setup.creds("triage-bot")) as client:
        assert client.get("/customers").status_code == 200  # PHI again, capped by the pack


def test_baselines_survive_a_restart(setup: Setup) -> None:
    with setup.client(setup.creds("invoice-bot")) as client:
        for limit in (5, 10, 20):
            assert client.get(f"/ledger/invoices?limit={limit}").status_code == 200
    before = setup.gateway.risk.baseline(INVOICE)
    assert before is not None
    routes = setup.gateway.gateway.routes
    setup.gateway.stop()  # saves what changed
    setup.gateway = GatewayServer(
        setup.authority, routes=routes, host="127.0.0.1", port=0
    ).start_in_thread()
    after = setup.gateway.risk.baseline(INVOICE)
    assert after is not None
    assert after.to_json() == before.to_json()
    assert after.arg_names == {"Endpoint:ledger/invoices|limit": 3}


def test_the_learning_period_is_a_setting(setup: Setup) -> None:
    """By default a baseline is still learning after a few requests; with a short learning
    period in the settings, the same few requests make it trusted (its departures score)."""
    with setup.client(setup.creds("invoice-bot")) as client:
        for _ in range(3):
            assert client.get("/ledger/invoices").status_code == 200
    assert (setup.gateway.risk.summary(INVOICE) or {})["learned"] is False
    routes = setup.gateway.gateway.routes
    setup.gateway.stop()
    short = with_settings(setup.authority, risk_learning_requests=3, risk_learning_s=0)
    setup.gateway = GatewayServer(short, routes=routes, host="127.0.0.1", port=0).start_in_thread()
    assert (setup.gateway.risk.summary(INVOICE) or {})["learned"] is True
