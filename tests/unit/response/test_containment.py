"""What a containment does to a decision, how notifications are signed and shaped, and when a
playbook's conditions hold."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from warden.config import Webhook
from warden.errors import ConfigError
from warden.identity.registry import Agent
from warden.policy.model import Decision, DecisionRequest, Reason, Resource
from warden.response import notify
from warden.response.containment import RESTRICTED, Containment
from warden.response.matching import Firing, Matcher, conditions_fail
from warden.response.playbooks import Playbook
from warden.risk.detectors import Factor
from warden.trust.events import TrustEvent

AGENT = "spiffe://example.org/agent/bot"


def request(
    classification: str | None, action: str = "http:GET", route: str = "ledger"
) -> DecisionRequest:
    props = {"classification": classification} if classification else {}
    return DecisionRequest(
        subject_type="Agent",
        subject_id=AGENT,
        action=action,
        resource=Resource("Endpoint", "x", props),
        context={"route": route},
    )


def allow(obligations: tuple[str, ...] = ()) -> Decision:
    return Decision(
        decision_id="d1",
        decision="allow",
        reasons=(Reason("p", "permit", "because"),),
        obligations=obligations,
        risk={},
        policy_revision="r",
        work_order="wo-1",
        at=datetime.now(UTC),
    )


def test_a_restriction_denies_other_classes_and_names_the_playbook() -> None:
    held = Containment.from_json(
        {"restrict": {"classes": ["public", "internal"], "until": "clean_report", "playbook": "pb"}}
    )
    assert held is not None
    assert held.apply(allow(), request("internal")).allowed
    assert held.apply(allow(), request(None)).allowed  # unclassified counts as internal
    denied = held.apply(allow(), request("phi"))
    assert denied.decision == "deny" and denied.work_order is None and denied.obligations == ()
    assert denied.reasons[0].policy == RESTRICTED
    assert "pb" in denied.reasons[0].message and "phi" in denied.reasons[0].message


def test_throttle_and_approval_add_obligations() -> None:
    held = Containment.from_json(
        {
            "throttle": {"rate": "6/m", "route": "", "playbook": "a"},
            "approval": {"actions": ["http:POST"], "timeout_s": 30, "playbook": "b"},
        }
    )
    assert held is not None
    read = held.apply(allow(("max_records:5",)), request("internal"))
    assert read.obligations == ("max_records:5", "throttle-agent:6/m")
    write = held.apply(allow(), request("internal", action="http:POST"))
    assert write.obligations == ("throttle-agent:6/m", "approval:30")
    on_route = Containment.from_json({"throttle": {"rate": "1/s", "route": "crm"}})
    assert on_route is not None
    assert on_route.apply(allow(), request("internal", route="ledger")).obligations == ()
    deny = allow()
    deny = Decision(**{**deny.__dict__, "decision": "deny"})
    assert held.apply(deny, request("internal")) is deny  # a deny stays as it is


def test_nothing_held_is_none() -> None:
    assert Containment.from_json({}) is None
    assert Containment.from_json(None) is None
    assert Containment.from_json({"junk": 1}) is None


def webhook(tmp_path: Path, fmt: str = "warden", mode: int = 0o600) -> Webhook:
    secret = tmp_path / "key"
    secret.write_bytes(b"0123456789abcdef0123456789abcdef")
    secret.chmod(mode)
    return Webhook(url="http://127.0.0.1:9/x", secret_file=secret, format=fmt)  # type: ignore[arg-type]


def test_signatures_verify_and_bind_time_and_body() -> None:
    key = b"k" * 32
    now = int(time.time())
    header = notify.signature(key, now, b'{"a":1}')
    assert notify.verify(key, header, b'{"a":1}')
    assert not notify.verify(key, header, b'{"a":2}')
    assert not notify.verify(b"x" * 32, header, b'{"a":1}')
    old = notify.signature(key, now - 3600, b"{}")
    assert not notify.verify(key, old, b"{}")  # replayed an hour later
    assert not notify.verify(key, "garbage", b"{}")


def test_secrets_others_can_read_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="readable by others"):
        notify.read_secret(webhook(tmp_path, mode=0o644))
    assert len(notify.read_secret(webhook(tmp_path))) == 32


@pytest.mark.parametrize("fmt", ["warden", "slack", "teams"])
def test_bodies_in_each_format_carry_the_message(tmp_path: Path, fmt: str) -> None:
    message = {"summary": "contained", "agent": "bot", "playbook": "pb", "incident": "i1"}
    body = notify.body_for(webhook(tmp_path, fmt), message)
    if fmt == "slack":
        assert body["text"] == "contained" and body["blocks"][0]["type"] == "section"
    elif fmt == "teams":
        card = body["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        facts = card["content"]["body"][1]["facts"]
        assert {"title": "agent", "value": "bot"} in facts
    json.dumps(body)  # it serialises


def playbook(text: dict[str, object]) -> Playbook:
    return Playbook.model_validate(
        {"name": "pb", "trigger": {"manual": {}}, "actions": [{"quarantine": {}}], **text}
    )


def agent(labels: dict[str, str]) -> Agent:
    now = datetime.now(UTC)
    return Agent("id", "bot", AGENT, "qa", "", labels, [], 3600, "active", 0, now, now)


def test_conditions_labels_classes_and_time() -> None:
    monday_10 = datetime(2026, 11, 30, 10, tzinfo=UTC).timestamp()
    pb = playbook(
        {
            "when": {
                "labels": {"team": "pay"},
                "data_classes": ["phi"],
                "hours_utc": [9, 17],
                "weekdays": [0],
            }
        }
    )
    fires = Firing(pb, AGENT, "manual", {}, ("phi",), monday_10)
    assert conditions_fail(pb, agent({"team": "pay"}), fires) == ""
    assert "label" in conditions_fail(pb, agent({"team": "ops"}), fires)
    assert "phi" in conditions_fail(
        pb, agent({"team": "pay"}), Firing(pb, AGENT, "m", {}, ("pii",), monday_10)
    )
    evening = datetime(2026, 11, 30, 20, tzinfo=UTC).timestamp()
    assert "hours" in conditions_fail(
        pb, agent({"team": "pay"}), Firing(pb, AGENT, "m", {}, ("phi",), evening)
    )
    tuesday = datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()
    assert "weekday" in conditions_fail(
        pb, agent({"team": "pay"}), Firing(pb, AGENT, "m", {}, ("phi",), tuesday)
    )
    night = playbook({"when": {"hours_utc": [22, 6]}})  # across midnight
    late = datetime(2026, 11, 30, 23, tzinfo=UTC).timestamp()
    assert conditions_fail(night, agent({}), Firing(night, AGENT, "m", {}, (), late)) == ""
    assert conditions_fail(night, agent({}), Firing(night, AGENT, "m", {}, (), monday_10)) != ""


class Collect(Matcher):
    def __init__(self) -> None:
        super().__init__()
        self.fired: list[Firing] = []

    def fire(self, firing: Firing) -> None:
        self.fired.append(firing)


def matcher(*playbooks: dict[str, object]) -> Collect:
    from warden.response.playbooks import PlaybookBundle

    m = Collect()
    m.install(
        PlaybookBundle(
            name="t",
            version=1,
            revision="r",
            playbooks=tuple(
                Playbook.model_validate({"actions": [{"quarantine": {}}], **p}) for p in playbooks
            ),
        )
    )
    return m


def test_risk_triggers_need_the_score_and_a_named_detector() -> None:
    m = matcher(
        {"name": "critical", "trigger": {"risk": {"at_least": 800, "ignore": ["workload_health"]}}},
        {"name": "network", "trigger": {"detector": {"name": "new_network", "min_points": 300}}},
    )
    anomaly = Factor("anomaly", 900, "odd", named=False)
    m.on_raised(AGENT, [anomaly], 900, [(anomaly, 900)])
    assert m.fired == []  # the model alone never contains
    health = Factor("workload_health", 900, "compromised")
    m.on_raised(AGENT, [health], 900, [(health, 900)])
    assert m.fired == []  # left to the health playbook
    net = Factor("new_network", 350, "from 10.0.0.0/24")
    report = Factor("reported", 500, "by the SOC")
    m.on_raised(AGENT, [net], 850, [(report, 500), (net, 350)])
    assert sorted(f.playbook.name for f in m.fired) == ["critical", "network"]
    assert next(f for f in m.fired if f.kind == "risk").detail["score"] == 850


def test_dlp_health_denial_and_policy_triggers() -> None:
    m = matcher(
        {"name": "phi", "trigger": {"dlp": {"classes": ["phi"]}}},
        {"name": "sick", "trigger": {"health": {"status": ["compromised"]}}},
        {"name": "burst", "trigger": {"denials": {"count": 3, "within_s": 10}}},
        {"name": "tagged", "trigger": {"policy": {"ids": ["payroll-only-hr"], "decision": "deny"}}},
    )
    m.on_event(TrustEvent("dlp_window_exceeded", AGENT, {"classes": ["pii"]}))
    m.on_event(TrustEvent("dlp_window_exceeded", AGENT, {"classes": ["phi"]}))
    m.on_event(TrustEvent("health_changed", AGENT, {"to": "degraded"}))
    m.on_event(TrustEvent("health_changed", AGENT, {"to": "compromised"}))
    denied = Decision(
        **{
            **allow().__dict__,
            "decision": "deny",
            "reasons": (Reason("payroll-only-hr", "forbid", "no"),),
        }
    )
    for at in (100.0, 101.0, 120.0, 121.0, 122.0):
        m.on_decision(request("internal"), denied, at)
    names = [f.playbook.name for f in m.fired]
    assert names.count("phi") == 1 and names.count("sick") == 1
    assert names.count("tagged") == 5
    assert names.count("burst") == 1  # 3 within 10 s only at 122
