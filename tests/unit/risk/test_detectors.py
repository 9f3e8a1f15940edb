"""Each named detector, on an agent whose baseline is learned from two days of plain work:
it fires on the behaviour it names, says so in plain words, and stays quiet on normal work."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from warden.risk.detectors import Factor
from warden.risk.engine import Learning, RiskEngine
from warden.risk.observation import Observation, Signal
from warden.risk.score import would_contain
from warden.trust.events import TrustEvent, TrustEvents

AGENT = "spiffe://example.org/agent/invoice-bot"
START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday, 00:00
DAY = 86400.0
HOME = "127.10.1.{}"


def fingerprint(value: bytes) -> str:
    return hmac.new(b"test-key", value, hashlib.sha256).hexdigest()[:16]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def usual(at: float, i: int) -> Observation:
    """Office hours, one network, three endpoints, a few customer records at a time."""
    target = ("Endpoint:ledger/invoices", "Endpoint:ledger/vendors", "Endpoint:crm/customers")[
        i % 3
    ]
    records = 1 + i % 3 if target == "Endpoint:crm/customers" else 0
    return Observation(
        agent=AGENT,
        at=at,
        action="http:GET",
        target=target,
        source_ip=HOME.format(10 + i % 4),
        classes=("pii",) if records else (),
        records=records,
        args={"limit": 20},
    )


@pytest.fixture
def learned() -> tuple[RiskEngine, Clock]:
    """An engine whose agent worked two days, 09:00 to 17:00, one request a minute."""
    clock = Clock()
    engine = RiskEngine(fingerprint, clock=clock, learning=Learning(events=200, seconds=DAY))
    i = 0
    for day in range(2):
        for minute in range(9 * 60, 17 * 60, 1):
            at = START + day * DAY + minute * 60
            engine.observe(usual(at, i))
            i += 1
    engine.observe(
        Observation(
            AGENT,
            START + DAY + 16 * 3600,
            "http:POST",
            "Endpoint:ledger/payments",
            HOME.format(10),
            args={"vendor": "V1", "routing_number": "021000021"},
        )
    )
    clock.now = START + 2 * DAY + 10 * 3600  # Wednesday, 10:00
    return engine, clock


def codes(engine: RiskEngine, obs: Observation) -> dict[str, int]:
    """The factors ``obs`` raises, by code, with their points."""
    baseline = engine.baseline(obs.agent)
    assert baseline is not None
    before = dict(engine._states[obs.agent].factors)
    engine.observe(obs)
    after = engine._states[obs.agent].factors
    return {
        code: held[0].points
        for code, held in after.items()
        if code not in before or before[code][1] != held[1]
    }


def at(clock: Clock, seconds: float = 0.0) -> float:
    clock.now += seconds
    return clock.now


def test_normal_work_raises_nothing(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    for i in range(30):
        assert codes(engine, usual(at(clock, 60), i)) == {}
    assert engine.assessment(AGENT).score == 0


def test_a_new_source_network(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    engine.observe(usual(at(clock), 1))
    raised = codes(
        engine,
        Observation(AGENT, at(clock, 5), "http:GET", "Endpoint:ledger/invoices", "127.99.7.3"),
    )
    assert raised["new_network"] == 350
    assert raised["concurrent_networks"] == 300  # and the usual one within the minute
    words = [w for w, _ in engine.assessment(AGENT).factors]
    assert any("127.99.7.0/24, never seen" in w for w in words)


def test_an_endpoint_never_used(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    raised = codes(
        engine,
        Observation(AGENT, at(clock), "http:GET", "Endpoint:hr/payroll", HOME.format(10)),
    )
    assert raised == {"new_target": 200}
    assert engine.assessment(AGENT).factors[0][0] == "first use of Endpoint:hr/payroll"


def test_a_new_tool_under_a_work_order_is_not_held_against_it(
    learned: tuple[RiskEngine, Clock],
) -> None:
    engine, clock = learned
    for _i in range(20):
        obs = Observation(
            AGENT,
            at(clock, 60),
            "mcp:tools/call",
            "Tool:finance-tools/export_report",
            HOME.format(10),
            args={"format": "csv"},
            work_order="wo-7001",
        )
        engine.observe(obs)
    found = engine.assessment(AGENT)
    assert found.score == 0 and found.contain is None


def test_a_rate_far_above_baseline(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    raised: dict[str, int] = {}
    for i in range(40):
        raised |= codes(engine, usual(at(clock, 1), i))
    assert raised["rate_spike"] >= 300
    assert any("requests in a minute" in w for w, _ in engine.assessment(AGENT).factors)


def test_a_scraper_is_seen_within_seconds(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    raised: dict[str, int] = {}
    for i in range(25):  # five requests a second
        raised |= codes(engine, usual(at(clock, 0.2), i))
    assert raised["rate_spike"] >= 450
    words = [w for w, _ in engine.assessment(AGENT).factors]
    assert any("requests in ten seconds" in w for w in words)


def test_off_hours(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    clock.now = START + 2 * DAY + 3 * 3600  # 03:00
    raised = codes(engine, usual(clock.now, 0))
    assert raised == {"off_hours": 120}
    assert "active at 03:00" in engine.assessment(AGENT).factors[0][0]


def test_first_access_to_a_data_class(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    obs = usual(at(clock), 2)
    obs.classes = ("phi",)
    assert codes(engine, obs) == {"first_phi": 250}
    assert engine.assessment(AGENT).factors[0][0] == "first access to PHI data"


def test_a_routing_number_that_changes(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    same = Observation(
        AGENT,
        at(clock),
        "http:POST",
        "Endpoint:ledger/payments",
        HOME.format(10),
        args={"vendor": "V1", "routing_number": "021000021"},
    )
    assert codes(engine, same) == {}
    changed = Observation(
        AGENT,
        at(clock, 60),
        "http:POST",
        "Endpoint:ledger/payments",
        HOME.format(10),
        args={"vendor": "V1", "routing_number": "026009593"},
    )
    assert codes(engine, changed) == {"payment_change": 650}
    assert engine.assessment(AGENT).factors[0][0] == "routing_number of V1 changed"
    # Another vendor's first routing number is not a change.
    other = Observation(
        AGENT,
        at(clock, 60),
        "http:POST",
        "Endpoint:ledger/payments",
        HOME.format(10),
        args={"vendor": "V2", "routing_number": "011000015"},
    )
    assert "payment_change" not in codes(engine, other)


def test_a_burst_of_denials(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    raised: dict[str, int] = {}
    for i in range(5):
        obs = usual(at(clock, 10), i)
        obs.outcome, obs.reason = "deny", "finance-only-ledger"
        raised |= codes(engine, obs)
    assert raised["denial_burst"] == 450
    assert any("requests denied in two minutes" in w for w, _ in engine.assessment(AGENT).factors)


def test_denials_caused_by_the_risk_score_do_not_raise_it(
    learned: tuple[RiskEngine, Clock],
) -> None:
    engine, clock = learned
    for i in range(6):
        obs = usual(at(clock, 10), i)
        obs.outcome, obs.reason = "deny", "high-risk-no-sensitive"
        assert "denial_burst" not in codes(engine, obs)


def test_a_data_limit_hit(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    obs = usual(at(clock), 2)
    obs.outcome, obs.reason = "deny", "phi-five-per-minute"
    assert codes(engine, obs)["limit_hit"] == 300


def test_records_far_above_the_usual(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    obs = usual(at(clock), 2)
    obs.records = 1000
    raised = codes(engine, obs)
    assert raised["records_spike"] >= 350
    assert raised["sensitive_volume"] >= 500
    assert any("1000 records in one answer" in w for w, _ in engine.assessment(AGENT).factors)


def test_slow_exfiltration_under_a_per_minute_limit(learned: tuple[RiskEngine, Clock]) -> None:
    """Four customer records a minute on top of its usual work: no single answer is large,
    no minute is over a limit, and within ten minutes the agent is at high risk."""
    engine, clock = learned
    for i in range(10):  # the morning starts as usual
        engine.observe(usual(at(clock, 60), i))
    assert engine.assessment(AGENT).score == 0
    start = clock.now
    i = 0
    while clock.now - start < 600 and engine.assessment(AGENT).score < 600:
        obs = Observation(
            AGENT,
            at(clock, 30),
            "http:GET",
            "Endpoint:crm/customers",
            HOME.format(10),
            classes=("pii",),
            records=2,
            args={"limit": 20},
        )
        engine.observe(obs)
        i += 1
        if i % 2:
            engine.observe(usual(at(clock), i))
    found = engine.assessment(AGENT)
    assert found.score >= 600, found
    assert any("sensitive records in ten minutes" in w for w, _ in found.factors)


def test_records_sent_out_and_a_new_destination(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    for _i in range(30):  # it mails one record at a time to one place
        engine.observe(
            Observation(
                AGENT,
                at(clock, 60),
                "http:POST",
                "Endpoint:ledger/invoices",
                HOME.format(10),
                args={"to": "billing@example.com"},
                outbound_records=1,
            )
        )
    raised = codes(
        engine,
        Observation(
            AGENT,
            at(clock, 60),
            "http:POST",
            "Endpoint:ledger/invoices",
            HOME.format(10),
            args={"to": "drop@elsewhere.example"},
            outbound_records=50,
            outbound_sensitive=50,
        ),
    )
    assert raised == {"new_destination": 250, "outbound_spike": 400}
    words = [w for w, _ in engine.assessment(AGENT).factors]
    assert "50 records sent out, 50 of them sensitive" in words


def test_nothing_is_new_during_the_learning_period() -> None:
    clock = Clock()
    engine = RiskEngine(fingerprint, clock=clock, learning=Learning(events=200, seconds=DAY))
    for i in range(50):
        engine.observe(usual(at(clock, 60), i))
    engine.observe(
        Observation(AGENT, at(clock, 60), "http:GET", "Endpoint:hr/payroll", "127.99.7.3")
    )
    assert engine.assessment(AGENT).score == 0


def test_workload_health_and_dlp_events_raise_the_score() -> None:
    clock = Clock()
    engine = RiskEngine(fingerprint, clock=clock)
    engine.signal(
        Signal(AGENT, clock.now, "health_changed", {"to": "degraded", "reasons": ["CVE-1"]})
    )
    assert engine.assessment(AGENT).factors == (("workload degraded: CVE-1", 650),)
    engine.signal(Signal(AGENT, clock.now, "health_changed", {"to": "healthy"}))
    assert engine.assessment(AGENT).score == 0
    engine.signal(Signal(AGENT, clock.now, "dlp_window_exceeded", {"window": "phi/minute"}))
    assert engine.assessment(AGENT).factors == (("DLP window phi/minute exceeded", 300),)


def test_factors_fade_with_time(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    engine.observe(Observation(AGENT, at(clock), "http:GET", "Endpoint:hr/payroll", "127.99.7.3"))
    first = engine.assessment(AGENT).score
    clock.now += 600  # one half-life
    assert engine.assessment(AGENT).score == pytest.approx(first / 2, abs=2)
    clock.now += 6 * 3600
    assert engine.assessment(AGENT).score == 0


def test_the_model_alone_never_contains() -> None:
    anomaly = Factor("anomaly", 900, "unusual for this agent: request rate", named=False)
    assert would_contain([(anomaly, 900)]) is None
    named = Factor("new_network", 350, "a request from 127.99.7.0/24, never seen")
    reason = would_contain([(anomaly, 500), (named, 350)])
    assert reason == "risk 850: a request from 127.99.7.0/24, never seen"


def test_containment_names_its_detectors(learned: tuple[RiskEngine, Clock]) -> None:
    engine, clock = learned
    events = TrustEvents()
    seen: list[TrustEvent] = []
    events.subscribe(seen.append)
    engine.events = events
    engine.observe(usual(at(clock), 1))
    engine.observe(
        Observation(AGENT, at(clock, 5), "http:GET", "Endpoint:hr/payroll", "127.99.7.3")
    )
    found = engine.assessment(AGENT)
    assert found.score >= 800 and found.level == "critical"
    assert found.contain is not None and "127.99.7.0/24, never seen" in found.contain
    changed = [e for e in seen if e.kind == "risk_changed"]
    assert changed[-1].detail["to"] == "critical"
    assert changed[-1].detail["contain"] == found.contain


def test_decide_reads_a_snapshot_that_follows_each_event(
    learned: tuple[RiskEngine, Clock],
) -> None:
    engine, clock = learned
    assert engine[AGENT].values["score"] == 0
    assert engine[AGENT].values == engine[AGENT].values
    engine.observe(Observation(AGENT, at(clock), "http:GET", "Endpoint:hr/payroll", "127.99.7.3"))
    signal = engine[AGENT]
    assert signal.values["score"] >= 550
    assert ["first use of Endpoint:hr/payroll", 200] in signal.values["factors"]
