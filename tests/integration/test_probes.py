"""Liveness, readiness and Prometheus metrics on their own plain-HTTP listener: what a load
balancer and a scraper see of a gateway and of the control plane."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.creds import context_for, write_svid
from tests.support.gateway import Setup
from warden.identity.authority import IdentityAuthority
from warden.server.run import ControlPlaneServer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_gateway_is_live_ready_and_counts_its_decisions(setup: Setup) -> None:
    probes = setup.gateway.probes_url
    assert probes.startswith("http://127.0.0.1:")
    assert httpx.get(f"{probes}/livez").text == "ok\n"
    ready = httpx.get(f"{probes}/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    with setup.client(setup.creds("invoice-bot")) as client:
        assert client.get("/ledger/invoices").status_code == 200
        assert client.get("/customers").status_code == 403
        assert client.get("/nowhere").status_code == 403  # an unknown route, refused
    scraped = httpx.get(f"{probes}/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.text)
    gateway = (("component", "gateway"), ("decision", "allow"))
    assert found[("warden_decisions_total", gateway)] == 1
    denied = (("component", "gateway"), ("decision", "deny"))
    assert found[("warden_decisions_total", denied)] == 2
    assert found[("warden_decide_seconds_count", (("component", "gateway"),))] == 2
    assert found[("warden_request_seconds_count", (("component", "gateway"),))] == 3
    assert found[("warden_ready", ())] == 1
    assert found[("warden_feed_age_seconds", ())] < 2
    assert found[("warden_feed_sequence", ())] >= 1
    assert found[("warden_policy_snapshot_age_seconds", ())] >= 0
    assert httpx.get(f"{probes}/other").status_code == 404
    assert httpx.post(f"{probes}/readyz").status_code == 405


def test_the_control_plane_counts_the_decisions_it_is_asked_for(
    authority: IdentityAuthority, tmp_path: Path
) -> None:
    server = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        authority.enforcement_points.add("gateway", created_by="test")
        issued = authority.issuer.issue_service_x509("gateway")
        creds = write_svid(tmp_path / "gw", issued, authority.ca.bundle.to_pem())
        with httpx.Client(
            base_url=server.url, timeout=10, verify=context_for(creds, server.credentials.ca_file)
        ) as client:
            asked = client.post(
                "/v1/decide",
                json={
                    "subject": {"type": "Agent", "id": "spiffe://example.org/agent/nobody"},
                    "action": {"name": "http:GET"},
                    "resource": {"type": "Endpoint", "id": "ledger/x", "properties": {}},
                    "context": {"authn": "mtls"},
                },
            )
            assert asked.status_code == 200, asked.text
        found = samples(httpx.get(f"{server.probes_url}/metrics").text)
        key = (("component", "control-plane"), ("decision", "deny"))
        assert found[("warden_decisions_total", key)] == 1
        assert found[("warden_decide_seconds_count", (("component", "control-plane"),))] == 1
        assert httpx.get(f"{server.probes_url}/readyz").status_code == 200
    finally:
        server.stop()
