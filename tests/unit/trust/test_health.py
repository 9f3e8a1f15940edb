"""Vulnerability reports in the formats scanners write, VEX, and the health they give."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.support import reports as build
from warden.clock import utcnow
from warden.errors import NotFoundError
from warden.identity.authority import IdentityAuthority
from warden.store import schema
from warden.trust import reports
from warden.trust.events import TrustEvent, TrustEvents
from warden.trust.health import HealthBook, HealthRules, assess

CRIT = ("CVE-2024-3094", "CRITICAL")
HIGH = ("CVE-2023-4863", "HIGH")
LOW = ("CVE-2022-0001", "LOW")


def test_trivy_grype_and_cyclonedx_read_alike() -> None:
    for made, tool in (
        (build.trivy([CRIT, HIGH, LOW]), "trivy"),
        (build.grype([(CRIT[0], "Critical"), (HIGH[0], "High"), (LOW[0], "Low")]), "grype"),
        (build.cyclonedx([(CRIT[0], "critical"), (HIGH[0], "high"), (LOW[0], "low")]), "cyclonedx"),
    ):
        report = reports.parse(made)
        counts = reports.counted(report)
        assert report.tool == tool
        assert (counts["critical"], counts["high"], counts["low"]) == (
            [CRIT[0]],
            [HIGH[0]],
            [LOW[0]],
        )
        assert build.IMAGE in report.digests, tool


def test_vex_takes_findings_out() -> None:
    scan = reports.parse(build.trivy([CRIT, HIGH]))
    statement = reports.parse(build.vex({CRIT[0]: "not_affected"}))
    merged = reports.merge([scan, statement])
    assert reports.counted(merged)["critical"] == []
    assert merged.cleared == {CRIT[0]: "not_affected"}
    inline = reports.parse(
        build.cyclonedx([(CRIT[0], "critical")], vex={CRIT[0]: "false_positive"})
    )
    assert reports.counted(inline)["critical"] == []
    in_triage = reports.parse(build.cyclonedx([(CRIT[0], "critical")], vex={CRIT[0]: "in_triage"}))
    assert reports.counted(in_triage)["critical"] == [CRIT[0]]  # not cleared


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"[]",
        b'{"hello": 1}',
        b'{"bomFormat": "CycloneDX", "vulnerabilities": [{}]}',
        b'{"matches": [{"vulnerability": {}}]}',
        b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{}]}]}',
    ],
)
def test_bad_reports(bad: bytes) -> None:
    with pytest.raises(reports.InvalidReport):
        reports.parse(bad)


def test_the_rules() -> None:
    now = utcnow()
    rules = HealthRules(max_high=1, max_attestation_age=timedelta(hours=24))
    clean = {"critical": [], "high": []}
    assert assess(clean, {build.IMAGE}, build.IMAGE, now, now, rules)[0] == "healthy"
    status, reasons = assess({"critical": ["CVE-1"], "high": []}, set(), None, None, now, rules)
    assert status == "degraded" and "1 critical" in reasons[0]
    assert (
        assess({"critical": [], "high": ["a", "b"]}, set(), None, None, now, rules)[0] == "degraded"
    )
    stale = now - timedelta(hours=30)
    status, reasons = assess(clean, set(), None, stale, now, rules)
    assert (status, reasons) == ("degraded", ("last attested 30 h ago",))
    status, reasons = assess(clean, {build.OTHER_IMAGE}, build.IMAGE, now, now, rules)
    assert status == "compromised" and "drift" in reasons[0]


def test_the_health_book(authority: IdentityAuthority) -> None:
    events = TrustEvents()
    seen: list[TrustEvent] = []
    events.subscribe(seen.append)
    agent = authority.agents.register("scan-bot", owner="qa")
    book = HealthBook(authority.store, events)
    assert book.get(agent.spiffe_id) is None  # no report: the engine reads unknown
    assert book.of_name("scan-bot").status == "unknown"
    health = book.ingest("scan-bot", [build.trivy([CRIT])], by="test")
    assert (health.status, health.critical) == ("degraded", 1)
    assert book.get(agent.spiffe_id).values == {
        "status": "degraded",
        "critical_vulns": 1,
        "high_vulns": 0,
    }
    healed = book.ingest(
        "scan-bot", [build.trivy([CRIT]), build.vex({CRIT[0]: "not_affected"})], by="t"
    )
    assert healed.status == "healthy" and healed.cleared == {CRIT[0]: "not_affected"}
    # The registered image and the scanned one differ: drift.
    authority.containers.set_evidence(
        "scan-bot", image_digest=build.OTHER_IMAGE, sbom=build.cyclonedx()
    )
    book.refresh()
    assert book.of(agent.spiffe_id).status == "compromised"
    assert [(e.detail["from"], e.detail["to"]) for e in seen] == [
        ("unknown", "degraded"),
        ("degraded", "healthy"),
        ("healthy", "compromised"),
    ]
    other = HealthBook(authority.store)  # another process reads the same reports
    assert other.of(agent.spiffe_id).status == "compromised"
    with pytest.raises(NotFoundError):
        book.ingest("nobody", [build.CLEAN], by="test")


def test_an_old_attestation_degrades(authority: IdentityAuthority) -> None:
    from warden.identity.attestation.events import record_attempt

    agent = authority.agents.register("old-bot", owner="qa")
    with authority.store.begin() as conn:
        record_attempt(
            conn, method="unix", outcome="issued", agent_name="old-bot", evidence={}, reason=""
        )
        conn.execute(update(schema.attestation_events).values(at=utcnow() - timedelta(days=3)))
    book = HealthBook(authority.store)
    assert book.ingest("old-bot", [build.CLEAN], by="test").status == "degraded"
    assert "last attested 72 h ago" in book.of(agent.spiffe_id).reasons
