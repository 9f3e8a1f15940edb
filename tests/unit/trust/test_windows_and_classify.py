"""Sliding windows at their boundaries and under concurrency; records and classes of
documents; the DLP verdicts."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from warden.trust import detectors
from warden.trust.classify import classify, records_of
from warden.trust.dlp import Dlp, window_limits
from warden.trust.events import TrustEvent, TrustEvents
from warden.trust.windows import DlpWindows

AGENT = "spiffe://example.org/agent/triage-bot"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_windows_slide_exactly() -> None:
    clock = Clock()
    windows = DlpWindows(clock)
    assert windows.take(AGENT, {"phi": 3}, {}) == []
    clock.now += 30
    windows.take(AGENT, {"phi": 2}, {})
    assert windows.counts(AGENT)["phi_per_minute"] == 5
    clock.now += 29.999  # the first 3 are 59.999 s old: still inside the minute
    assert windows.counts(AGENT)["phi_per_minute"] == 5
    clock.now += 0.001  # now exactly 60 s old: out
    assert windows.counts(AGENT)["phi_per_minute"] == 2
    assert windows.counts(AGENT)["phi_per_hour"] == 5
    clock.now += 3600
    assert windows.counts(AGENT) == {
        f"{c}_per_{w}": 0 for c in ("pii", "phi", "pci", "confidential") for w in ("minute", "hour")
    }


def test_a_take_past_a_limit_adds_nothing() -> None:
    clock = Clock()
    windows = DlpWindows(clock)
    limits = {("phi", "minute"): 5}
    assert windows.take(AGENT, {"phi": 5}, limits) == []
    (exceeded,) = windows.take(AGENT, {"phi": 1, "pii": 4}, limits)
    assert (exceeded.reason, exceeded.current, exceeded.adding) == ("phi_per_minute", 5, 1)
    assert windows.counts(AGENT)["pii_per_minute"] == 0  # nothing of it was taken
    clock.now += 60
    assert windows.take(AGENT, {"phi": 5}, limits) == []  # the minute has passed


def test_concurrent_takes_never_overshoot() -> None:
    windows = DlpWindows()
    limits = {("phi", "minute"): 50}
    taken: list[int] = []
    start = threading.Barrier(16)

    def agent_requests() -> None:
        start.wait()
        for _ in range(20):
            if not windows.take(AGENT, {"phi": 3}, limits):
                taken.append(3)

    threads = [threading.Thread(target=agent_requests) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 48 == windows.counts(AGENT)["phi_per_minute"]  # 16 x 3 = 48 <= 50


def test_windows_are_the_engines_dlp_signals() -> None:
    windows = DlpWindows()
    windows.take(AGENT, {"pci": 2}, {})
    signal = windows.get(AGENT)
    assert signal.values["pci_per_minute"] == 2
    assert windows.get("spiffe://example.org/agent/new").values["phi_per_hour"] == 0  # known


def test_records_of_documents() -> None:
    assert len(records_of([{"a": 1}, {"a": 2}])) == 2
    assert len(records_of({"data": [1, 2, 3], "next": "x"})) == 3
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}] * 4}
    assert len(records_of(bundle)) == 4
    assert records_of({"id": 7}) == [{"id": 7}]


def test_a_record_counts_once_per_class() -> None:
    customers = {
        "customers": [
            {"name": "Ann", "email": "ann@example.com", "phone": "+1 650-253-0000"},
            {"name": "Bo", "card": "4111111111111111", "note": "card 5555555555554444"},
            {"name": "Cy", "tier": "gold", "id": 77},
        ]
    }
    found = classify(customers)
    assert (found.records, found.count("pii"), found.count("pci")) == (3, 1, 1)
    assert found.kinds["card"] == 1  # two cards, one record
    fhir = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}},
            {"resource": {"resourceType": "Observation", "status": "final"}},
        ],
    }
    assert classify(fhir).count("phi") == 2
    declared = classify([{"x": 1}, {"y": 2}], declared="phi")
    assert declared.count("phi") == 2  # a patients route is PHI, record by record


def test_regions_and_links_are_collected() -> None:
    found = classify([{"region": "US", "bio": "see https://Paste.example.net/x and http://a.b/c"}])
    assert found.regions == {"us"}
    assert found.hosts == {"paste.example.net", "a.b"}


def test_obligations_become_limits() -> None:
    assert window_limits(("max_records:5", "dlp:phi_per_minute<=5", "dlp:pii_per_hour<=100")) == {
        ("phi", "minute"): 5,
        ("pii", "hour"): 100,
    }
    assert window_limits(("dlp:phi_per_fortnight<=5",)) == {("phi", "minute"): 0}  # closed


def dlp() -> tuple[Dlp, list[TrustEvent]]:
    events = TrustEvents()
    seen: list[TrustEvent] = []
    events.subscribe(seen.append)
    return Dlp(
        DlpWindows(), events, bulk_records=100, allowed_hosts=frozenset({"example.org"})
    ), seen


def test_an_answer_over_a_window_is_blocked_and_published() -> None:
    guard, seen = dlp()
    five = [{"resourceType": "Patient", "id": str(i)} for i in range(5)]
    obligations = ("dlp:phi_per_minute<=5",)
    first = guard.inspect(AGENT, "ehr", "phi", "eu", five)
    assert first.blocked is None and first.classification is not None
    assert guard.take(AGENT, "ehr", obligations, first.classification) is None
    assert guard.windows.counts(AGENT)["phi_per_minute"] == 5
    more = guard.inspect(AGENT, "ehr", "phi", "eu", five[:1])
    assert more.classification is not None
    blocked = guard.take(AGENT, "ehr", obligations, more.classification)
    assert blocked == "dlp_window_exceeded:phi_per_minute"
    assert guard.windows.counts(AGENT)["phi_per_minute"] == 5  # nothing of the refused one
    assert [e.kind for e in seen] == ["dlp_window_exceeded"]
    assert seen[0].detail["current"] == 5


def test_phi_leaving_its_region_is_a_breach() -> None:
    guard, seen = dlp()
    records = [{"resourceType": "Patient", "region": "us"}]
    assert guard.inspect(AGENT, "ehr", "phi", "eu", records).blocked == "residency_breach"
    assert guard.inspect(AGENT, "ehr", "phi", "us", records).blocked is None
    assert [e.kind for e in seen] == ["residency_breach"]


def test_bulk_requests_and_answers() -> None:
    guard, seen = dlp()
    assert guard.bulk_request({"limit": 101})
    assert not guard.bulk_request({"limit": 100, "rows": True})
    assert guard.bulk_request({}, tool="export_customers")
    for _ in range(10):  # what this agent usually gets: 10 records
        assert not guard.inspect(AGENT, "crm", "", "eu", [{"i": 1}] * 10).bulk
    assert not guard.inspect(AGENT, "crm", "", "eu", [{"i": 1}] * 99).bulk  # under the bound
    assert guard.inspect(AGENT, "crm", "", "eu", [{"i": 1}] * 500).bulk  # 50 x usual
    assert [e.kind for e in seen] == ["bulk_export"]


def test_outbound_content_is_classified() -> None:
    guard, _ = dlp()
    assert guard.outbound(None)["records"] == 0
    out = guard.outbound(
        {
            "to": "x",
            "body": "cards 4111111111111111; see https://evil.example.net/drop and "
            "https://docs.example.org/ok",
        }
    )
    assert (out["pci"], out["links"]) == (1, 1)  # example.org is allowed


VALUES = [
    "ann@example.com",
    "+1 650-253-0000",
    "(650) 253-0000",
    "+49 30 90182000",
    "4111 1111 1111 1111",
    "5555555555554444",
    "4111 1111 1111 1112",
    "123-45-6789",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "2026-12-01T10:00:00Z",
    "order 2026120119",
    "see https://evil.example.net/x",
    "plain text",
    "urn:oid:2.16.840.1.113883.4.1",
    "4111111111111111 4242424242424242",
]
KEYS = ["note", "email", "phone", "mrn", "ssn", "birthDate", "region", "tags", "id"]


@st.composite
def documents(draw: st.DrawFn) -> list[Any]:
    value = st.sampled_from(VALUES) | st.integers(0, 10**19) | st.text(max_size=12)
    record = st.dictionaries(st.sampled_from(KEYS), value | st.lists(value, max_size=3), max_size=5)
    nested = st.builds(lambda r, inner: {**r, "inner": inner}, record, record)
    return draw(st.lists(record | nested | st.sampled_from(VALUES), max_size=8))


@settings(max_examples=300, deadline=None)
@given(documents())
def test_classes_per_record_are_those_of_reading_everything(document: list[Any]) -> None:
    found = classify(document)
    expected: Counter[str] = Counter()
    for record in document:
        text = json.dumps(record, ensure_ascii=False).encode()
        kinds, _ = detectors.scan(text, exhaustive=True, regions=set())
        expected.update(detectors.classes(kinds.get(0, set())))
    assert found.per_class == expected
    assert found.records == len(document)
