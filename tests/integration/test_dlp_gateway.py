"""Data-loss prevention and workload health through the real gateway: answers classified and
counted per agent before any byte leaves, bulk exports and residency, what agents send out,
and a health restriction applied and lifted from real scan reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.creds import context_for, write_svid
from tests.support.gateway import with_settings
from tests.support.reports import cyclonedx, grype, make_healthy, trivy
from tests.support.upstream import FINANCE, Upstream
from warden.audit.reader import LogReader
from warden.cli.main import app
from warden.enforce.routes import parse_routes
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority
from warden.server.run import ControlPlaneServer

EHR = {"domain": "healthcare", "classification": "phi", "region": "eu"}
CRM = {"domain": "finance", "classification": "pii"}
INVOICE_BOT = "spiffe://example.org/agent/invoice-bot"


def patients(count: int, region: str = "eu", start: int = 0) -> bytes:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "id": f"p{start + i}",
                        "name": [{"family": "Doe", "given": [f"Jane{start + i}"]}],
                        "birthDate": "1970-01-01",
                        "region": region,
                    }
                }
                for i in range(count)
            ],
        }
    ).encode()


def customers(count: int) -> bytes:
    return json.dumps(
        [
            {"id": i, "name": f"customer {i}", "email": f"c{i}@shop.example.com", "tier": "gold"}
            for i in range(count)
        ]
    ).encode()


class DlpSetup:
    """A gateway with an EHR route (PHI, EU), a CRM route (PII), the ledger (internal) and an
    outbound notification route, in front of one real mTLS upstream; agents in the EU."""

    def __init__(self, authority: IdentityAuthority, root: Path, **overrides: Any) -> None:
        authority = with_settings(
            authority, dlp_bulk_records=100, dlp_allowed_hosts=["example.org"], **overrides
        )
        self.authority = authority
        self.root = root
        self.upstream = Upstream(authority, root).start()

        def route(name: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {
                "name": name,
                "prefix": f"/{name}",
                "upstream": self.upstream.url,
                "upstream_id": self.upstream.spiffe_id,
                "resource": {"type": "Endpoint", "id": f"{name}/x", "properties": properties},
                **extra,
            }

        routes = parse_routes(
            {
                "routes": [
                    route("ehr", EHR),
                    route("crm", CRM, args={"query": ["page_size"]}),
                    route("ledger", FINANCE),
                    route("notify", {**FINANCE, "tags": ["outbound"]}),
                ]
            }
        )
        self.gateway = GatewayServer(
            authority, routes=routes, host="127.0.0.1", port=0
        ).start_in_thread()
        self.reader = LogReader(authority.store)
        for name, groups in (
            ("invoice-bot", ["finance"]),
            ("triage-bot", ["healthcare"]),
            ("nurse-bot", ["healthcare"]),
        ):
            authority.agents.register(name, owner="qa", groups=groups, labels={"region": "eu"})
            make_healthy(self.gateway.health, name)

    def answer(self, segment: str, body: bytes, content_type: str = "application/json") -> None:
        self.upstream.answers[segment] = (content_type, body)

    def client(self, name: str) -> httpx.Client:
        issued = self.authority.issuer.issue_agent_x509(name)
        creds = write_svid(self.root / name, issued, self.authority.ca.bundle.to_pem())
        bundle = self.root / "bundle.pem"
        bundle.write_bytes(self.authority.ca.bundle.to_pem())
        return httpx.Client(
            base_url=self.gateway.url, timeout=10, verify=context_for(creds, bundle)
        )

    def events(self, kind: str) -> list[dict[str, Any]]:
        """What the log holds of ``kind`` (newest first), once the writer has caught up."""
        self.gateway.recorder.checkpoint()
        return self.reader.search(kind=kind)

    def trust(self, event: str) -> list[dict[str, Any]]:
        """The trust events of one kind in the log, newest first."""
        return [e for e in self.events("trust") if e["event"] == event]

    def stop(self) -> None:
        self.gateway.stop()
        self.upstream.stop()


@pytest.fixture
def dlp(authority: IdentityAuthority, tmp_path: Path) -> Iterator[DlpSetup]:
    s = DlpSetup(authority, tmp_path)
    try:
        yield s
    finally:
        s.stop()


def reason(response: httpx.Response) -> str:
    return str(response.json()["reason"])


def test_phi_windows_count_what_reaches_the_agent_and_block_a_whole_answer(
    dlp: DlpSetup,
) -> None:
    dlp.answer("three", patients(3))
    dlp.answer("two", patients(2, start=10))
    dlp.answer("twelve", patients(12, start=20))
    with dlp.client("triage-bot") as client:
        first = client.get("/ehr/three")
        assert first.status_code == 200 and len(first.json()["entry"]) == 3
        # 3 + 3 > 5: the answer is replaced by a denial whole, not cut to fit.
        over = client.get("/ehr/three")
        assert (over.status_code, reason(over)) == (403, "dlp_window_exceeded:phi_per_minute")
        assert "Patient" not in over.text and set(over.json()) == {"decision_id", "reason"}
        assert (
            dlp.gateway.windows.counts(INVOICE_BOT.replace("invoice", "triage"))["phi_per_minute"]
            == 3
        )  # a refused answer counts nothing
        # Exactly at the limit passes ...
        assert client.get("/ehr/two").status_code == 200
        seen = len(dlp.upstream.seen)
        # ... and then the policy refuses before the upstream is asked.
        full = client.get("/ehr/two")
        assert (full.status_code, reason(full)) == (403, "phi-five-per-minute")
        assert len(dlp.upstream.seen) == seen
    with dlp.client("nurse-bot") as client:
        # Twelve from the service, five by the max_records obligation, five counted.
        capped = client.get("/ehr/twelve")
        assert capped.status_code == 200 and len(capped.json()["entry"]) == 5
        assert capped.headers["x-warden-obligations"] == "max_records:5"
    exceeded = dlp.trust("dlp_window_exceeded")
    assert len(exceeded) == 1
    assert exceeded[0]["window"] == "phi_per_minute" and exceeded[0]["current"] == 3
    blocked = dlp.events("answer_blocked")
    assert [(b["decision_id"], b["reason"]) for b in blocked] == [
        (over.json()["decision_id"], "dlp_window_exceeded:phi_per_minute")
    ]


def test_concurrent_answers_cannot_overshoot_a_window(dlp: DlpSetup) -> None:
    dlp.answer("one", patients(1))

    with dlp.client("nurse-bot") as client:

        def fetch(_: int) -> httpx.Response:
            return client.get("/ehr/one")

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(fetch, range(12)))
    delivered = [a for a in answers if a.status_code == 200]
    refused = {reason(a) for a in answers if a.status_code != 200}
    assert len(delivered) == 5, [a.text for a in answers]
    assert refused <= {"dlp_window_exceeded:phi_per_minute", "phi-five-per-minute"}
    assert dlp.gateway.windows.counts("spiffe://example.org/agent/nurse-bot")["phi_per_minute"] == 5


def test_phi_from_another_region_does_not_leave(dlp: DlpSetup) -> None:
    dlp.answer("abroad", patients(1, region="us"))
    with dlp.client("triage-bot") as client:
        response = client.get("/ehr/abroad")
    assert (response.status_code, reason(response)) == (403, "residency_breach")
    [event] = dlp.trust("residency_breach")
    assert (event["regions"], event["destination"], event["route"]) == (["us"], "eu", "ehr")


def test_sensitive_data_dlp_cannot_read_does_not_pass(dlp: DlpSetup) -> None:
    dlp.answer("scan", b"Jane Doe, born 1970-01-01, MRN 448812", "text/plain")
    with dlp.client("triage-bot") as client:
        response = client.get("/ehr/scan")
    assert (response.status_code, reason(response)) == (502, "uninspectable_response")
    assert "Jane" not in response.text


def test_a_bulk_answer_is_decided_again_as_an_export(dlp: DlpSetup) -> None:
    from warden.policy.workorders import Constraint

    dlp.answer("few", customers(20))
    dlp.answer("all", customers(150))  # past the bound of 100, and far above usual
    with dlp.client("invoice-bot") as client:
        assert client.get("/crm/few").status_code == 200
        bulk = client.get("/crm/all")
        assert (bulk.status_code, reason(bulk)) == (
            403,
            "bulk_export:customer-export-needs-work-order",
        )
        assert "customer 1" not in bulk.text
        export = dlp.reader.search(agent=INVOICE_BOT, decision="deny")[0]
        assert (export["action"], export["context"]["args"]["rows"]) == ("data:export", 150)
        assert export["context"]["bulk"] is True
        # A work order for the export: the answer passes, and the order's one use is taken.
        engine = dlp.gateway.engine
        engine.work_orders.create(
            agent=INVOICE_BOT,
            ticket="FIN-7",
            actions=["data:export"],
            resources=["Endpoint:crm/x"],
            constraints=[Constraint("rows", "max", 200)],
            issued_by="test",
        )
        engine.reload_work_orders()
        covered = client.get("/crm/all")
        assert covered.status_code == 200 and len(covered.json()) == 150
        again = client.get("/crm/all")
        assert reason(again) == "bulk_export:customer-export-needs-work-order"
    assert [e["records"] for e in dlp.trust("bulk_export")] == [150] * 3


def test_a_request_asking_for_a_bulk_export_is_flagged_to_the_policy(dlp: DlpSetup) -> None:
    with dlp.client("invoice-bot") as client:
        fine = client.get("/crm/customers", params={"page_size": 50})
        bulk = client.get("/crm/customers", params={"page_size": 5000})
    assert fine.status_code == 200
    assert (bulk.status_code, reason(bulk)) == (403, "customer-export-needs-work-order")
    record = dlp.reader.decision(bulk.json()["decision_id"])
    assert record is not None and record["context"]["bulk"] is True
    assert [s["path"] for s in dlp.upstream.seen] == ["/crm/customers?page_size=50"]


@pytest.mark.parametrize(
    ("path", "body", "outcome"),
    [
        ("/notify/send", {"text": "done, see https://docs.example.org/run/7"}, 200),
        ("/notify/send", {"text": "done, see https://paste.evil.example.net/x"}, "no-links-out"),
        ("/ledger/notes", {"note": "paid with 4111 1111 1111 1111"}, "no-sensitive-records-out"),
        ("/ledger/notes", {"note": "ref 4111 1111 1111 1112 (not a card)"}, 200),
        ("/ledger/notes", {"patients": [{"resourceType": "Patient", "id": "x"}]}, None),
    ],
)
def test_what_an_agent_sends_out_is_classified(
    dlp: DlpSetup, path: str, body: dict[str, Any], outcome: int | str | None
) -> None:
    with dlp.client("invoice-bot") as client:
        response = client.post(path, json=body)
    if outcome == 200:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 403
    record = dlp.reader.decision(response.json()["decision_id"])
    assert record is not None
    if outcome is None:  # PHI records to a finance endpoint
        assert reason(response) == "no-sensitive-records-out"
        assert record["context"]["outbound"]["phi"] == 1
    else:
        assert reason(response) == outcome
    assert dlp.upstream.seen == []


def wait_for(probe: Callable[[], bool], seconds: float = 8.0) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError("the gateway did not see the change in time")
        time.sleep(0.1)


def test_an_unhealthy_workload_is_restricted_until_a_clean_report_arrives(
    dlp: DlpSetup, tmp_path: Path
) -> None:
    dlp.answer("customers", customers(3))
    settings = dlp.authority.settings
    critical = tmp_path / "grype.json"
    critical.write_bytes(grype([("CVE-2026-0001", "Critical")]))
    runner = CliRunner()
    url = dlp.authority.store.engine.url.render_as_string(hide_password=False)
    env = {"WARDEN_DATABASE_URL": url, "COLUMNS": "200"}
    ingested = runner.invoke(
        app,
        [
            "--state-dir",
            str(settings.state_dir),
            "agent",
            "health",
            "invoice-bot",
            "--report",
            str(critical),
            "--json",
        ],
        env=env,
    )
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.output)["status"] == "degraded"
    with dlp.client("invoice-bot") as client:
        # The gateway reads the new report from the store on its own (within a second).
        wait_for(lambda: client.get("/crm/customers").status_code == 403)
        restricted = client.get("/crm/customers")
        entry = LogReader(dlp.authority.store).decision(restricted.json()["decision_id"])
        assert entry is not None
        assert "sensitive-only-when-healthy" in {r["policy"] for r in entry["reasons"]}
        # The health change raises the agent's risk too, with the finding in words.
        assert any(w.startswith("workload degraded") for w, _ in entry["risk"]["factors"])
        assert client.get("/ledger/invoices").status_code == 200  # not sensitive: still served

        # The pipeline posts a clean scan (CycloneDX, its one finding marked not affected by
        # VEX) to the control plane; the gateway lifts the restriction.
        plane = ControlPlaneServer(dlp.authority, host="127.0.0.1", port=0).start_in_thread()
        try:
            dlp.authority.operators.add("ci", role="admin", created_by="test")
            issued = dlp.authority.issuer.issue_operator_x509("ci")
            creds = write_svid(tmp_path / "ci", issued, dlp.authority.ca.bundle.to_pem())
            with httpx.Client(
                base_url=plane.url, timeout=10, verify=context_for(creds, plane.credentials.ca_file)
            ) as admin:
                clean = cyclonedx(
                    [("CVE-2026-0001", "critical")], vex={"CVE-2026-0001": "not_affected"}
                )
                posted = admin.post("/v1/agents/invoice-bot/health", json=json.loads(clean))
                assert posted.status_code == 200, posted.text
                assert posted.json()["status"] == "healthy"
                assert posted.json()["vex_cleared"] == {"CVE-2026-0001": "not_affected"}
        finally:
            plane.stop()
        wait_for(lambda: client.get("/crm/customers").status_code == 200)
    changes = [
        (e["from"], e["to"])
        for e in reversed(dlp.trust("health_changed"))
        if e["agent"] == INVOICE_BOT
    ]
    # Each process that enforces (gateway, control plane) sees and records the change.
    assert changes[0] == ("unknown", "healthy")
    assert changes.index(("healthy", "degraded")) < changes.index(("degraded", "healthy"))


def test_health_api_refuses_bad_input_clearly(dlp: DlpSetup, tmp_path: Path) -> None:
    plane = ControlPlaneServer(dlp.authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        dlp.authority.operators.add("ci", role="admin", created_by="test")
        issued = dlp.authority.issuer.issue_operator_x509("ci")
        creds = write_svid(tmp_path / "ci", issued, dlp.authority.ca.bundle.to_pem())
        agent_creds = write_svid(
            tmp_path / "bot",
            dlp.authority.issuer.issue_agent_x509("invoice-bot"),
            dlp.authority.ca.bundle.to_pem(),
        )
        with httpx.Client(
            base_url=plane.url, timeout=10, verify=context_for(creds, plane.credentials.ca_file)
        ) as admin:
            url = "/v1/agents/invoice-bot/health"
            assert admin.get(url).json()["status"] == "healthy"
            unknown = admin.post("/v1/agents/nobody/health", json=json.loads(trivy()))
            assert unknown.status_code == 404
            garbage = admin.post(url, json={"hello": "world"})
            assert garbage.status_code == 400 and "report" in garbage.text
            not_json = admin.post(
                url, content=b"{not json", headers={"content-type": "application/json"}
            )
            assert not_json.status_code in (400, 422)
            huge = admin.post(
                url,
                content=b'{"matches": [' + b" " * (40 << 20) + b"]}",
                headers={"content-type": "application/json"},
            )
            assert huge.status_code == 413
            assert admin.get(url).json()["status"] == "healthy"  # nothing bad was taken
        with httpx.Client(
            base_url=plane.url,
            timeout=10,
            verify=context_for(agent_creds, plane.credentials.ca_file),
        ) as agent:
            # An agent does not vouch for its own health.
            assert agent.post(url, json=json.loads(trivy())).status_code == 403
    finally:
        plane.stop()


def test_a_large_answer_is_read_whole_before_it_is_judged(dlp: DlpSetup) -> None:
    # Far larger than one TLS record or socket read: judged, and passed, only whole (an answer
    # judged on its first chunk would not parse, and PHI that cannot be read does not pass).
    bundle = json.loads(patients(3))
    bundle["entry"][2]["resource"]["text"] = "x" * 400_000
    dlp.answer("large", json.dumps(bundle).encode())
    with dlp.client("triage-bot") as client:
        response = client.get("/ehr/large")
    assert response.status_code == 200, response.text
    assert len(response.json()["entry"][2]["resource"]["text"]) == 400_000
    counts = dlp.gateway.windows.counts(INVOICE_BOT.replace("invoice", "triage"))
    assert counts["phi_per_minute"] == 3
