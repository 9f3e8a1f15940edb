"""Durability of the decision log through the gateway: a request reaches its upstream only
once its decision is committed (seen from another connection at that instant), and after the
gateway process is killed with SIGKILL under load, every decision it answered is in the log
and the log verifies."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.support.audit import log_key
from tests.support.creds import context_for, write_svid
from tests.support.gateway import Setup, gateway_process
from tests.support.upstream import Upstream, ledger_route
from warden.audit.reader import LogReader
from warden.audit.verify import verify_log
from warden.identity.authority import IdentityAuthority


def test_nothing_is_forwarded_before_its_record_is_committed(setup: Setup) -> None:
    reader = LogReader(setup.authority.store)
    at_arrival: list[bool] = []
    setup.upstream.on_decision = lambda decision_id: at_arrival.append(
        reader.decision(decision_id) is not None  # a separate connection: committed only
    )
    with setup.client(setup.creds("invoice-bot")) as client:
        for _ in range(20):
            assert client.get("/ledger/invoices").status_code == 200
    assert at_arrival == [True] * 20


def test_a_killed_gateway_lost_no_answered_decision(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> None:
    authority = sqlite_authority
    upstream = Upstream(authority, tmp_path).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(json.dumps({"routes": [ledger_route(upstream)]}))
    agents = {}
    for name, groups in (("invoice-bot", ["finance"]), ("triage-bot", ["healthcare"])):
        authority.agents.register(name, owner="qa", groups=groups)
        agents[name] = write_svid(
            tmp_path / name, authority.issuer.issue_agent_x509(name), authority.ca.bundle.to_pem()
        )
    gateway, port = gateway_process(authority.settings.state_dir, routes)
    answered: list[str] = []
    stop = threading.Event()

    def load(name: str) -> None:
        creds = agents[name]
        with httpx.Client(timeout=5, verify=context_for(creds, creds / "bundle.pem")) as client:
            while not stop.is_set():
                try:
                    answer = client.get(f"https://localhost:{port}/ledger/invoices")
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                decision_id = answer.headers.get("x-warden-decision-id") or (
                    answer.json().get("decision_id") if answer.status_code == 403 else None
                )
                if decision_id:
                    answered.append(decision_id)

    try:
        workers = [threading.Thread(target=load, args=(n,)) for n in agents for _ in range(3)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while len(answered) < 300:  # up and under load
            assert time.monotonic() < deadline, "the gateway did not answer"
            time.sleep(0.05)
        os.kill(gateway.pid, signal.SIGKILL)  # mid-flight, no clean shutdown
        gateway.wait()
        stop.set()
        for worker in workers:
            worker.join()
    finally:
        if gateway.poll() is None:
            gateway.kill()
        upstream.stop()
    reader = LogReader(authority.store)
    missing = [d for d in answered if reader.decision(d) is None]
    assert missing == [], f"{len(missing)} of {len(answered)} answered decisions lost"
    assert {reader.decision(d)["decision"] for d in answered} == {"allow", "deny"}  # type: ignore[index]
    report = verify_log(
        authority.store, log_key(authority), mac_key=authority.ca.log_keys().entry_mac_key
    )
    assert report.ok, [str(p) for p in report.problems]
