"""Warden as a deployment runs it: a control plane (`warden serve`) and two gateways (`warden
gateway`) as separate processes, each with its own SVID, on one PostgreSQL (fsync on: this
test crashes it) and one Redis, in front of a real upstream. An operator acts through the
control plane's API; agents call through either gateway."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.creds import context_for, write_svid
from tests.support.reports import CLEAN
from tests.support.upstream import FINANCE, Upstream
from warden.audit.reader import LogReader
from warden.config import load_settings
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.identity.feed_client import POLL_WAIT_S
from warden.local.postgres import PostgresCluster, fresh_database, start_cluster
from warden.local.processes import free_port, stop_processes
from warden.local.redis import RedisServer, start_redis
from warden.store import Store, open_store

pytestmark = pytest.mark.postgres

EHR = {"domain": "healthcare", "classification": "phi", "region": "eu"}
CRM = {"domain": "finance", "classification": "pii"}
ROOT = Path(__file__).parent.parent.parent
PAYROLL_PLAYBOOK = """
name: payroll-attempt
trigger:
  policy: {ids: [payroll-only-hr], decision: deny}
actions:
  - revoke: {}
  - quarantine: {}
  - incident: {title: "a finance agent reached for payroll", severity: high}
"""


def wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process on {port} exited: {_logged(process)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


LOGS: dict[int, Path] = {}  # process id -> where its output goes


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    LOGS[process.pid] = log
    return process


def _logged(process: subprocess.Popen[bytes]) -> str:
    log = LOGS.get(process.pid)
    return log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""


@dataclass
class Deployment:
    root: Path
    cluster: PostgresCluster
    redis: RedisServer
    authority: IdentityAuthority
    store: Store
    upstream: Upstream
    plane_url: str = ""
    follower_url: str = ""
    bundle: Path = Path()
    gateway_urls: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def creds(self, name: str, groups: list[str]) -> Path:
        self.authority.agents.register(name, owner="qa", groups=groups, labels={"region": "eu"})
        issued = self.authority.issuer.issue_agent_x509(name)
        return write_svid(self.root / name, issued, self.authority.ca.bundle.to_pem())

    def client(self, creds: Path, url: str) -> httpx.Client:
        return httpx.Client(
            base_url=url, timeout=10, verify=context_for(creds, creds / "bundle.pem")
        )

    def operator(self) -> httpx.Client:
        return self.client(self.root / "ops", self.plane_url)

    def healthy(self, name: str) -> None:
        with self.operator() as ops:
            answer = ops.post(f"/v1/agents/{name}/health", json=json.loads(CLEAN))
            assert answer.status_code == 200, answer.text
        time.sleep(1.5)  # every gateway reads health from the store within a second


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deployment")
    cluster = start_cluster(durable=True)
    redis = start_redis()
    database = fresh_database(cluster, "warden")
    settings = load_settings(state_dir=root / "state", database_url=database)
    settings.state_dir.mkdir(mode=0o700)
    store = open_store(database)
    keys = FileKeyManager.create(settings.state_dir / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, "example.org")
    authority = IdentityAuthority.from_parts(settings, store, keys)
    authority.operators.add("ops", role="admin", created_by="test")
    write_svid(
        root / "ops", authority.issuer.issue_operator_x509("ops"), authority.ca.bundle.to_pem()
    )
    upstream = Upstream(authority, root).start()
    upstream.answers["one"] = (
        "application/json",
        json.dumps([{"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}]).encode(),
    )
    routes = root / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "routes": [
                    {
                        "name": name,
                        "prefix": f"/{name}",
                        "upstream": upstream.url,
                        "upstream_id": upstream.spiffe_id,
                        "resource": {"type": "Endpoint", "id": f"{name}/x", "properties": props},
                        **({"args": {"query": ["limit"]}} if name == "crm" else {}),
                    }
                    for name, props in (
                        ("ledger", FINANCE),
                        ("ehr", EHR),
                        ("crm", CRM),
                        ("payroll", {**FINANCE, "tags": ["payroll"]}),
                    )
                ]
            }
        )
    )
    bundle = root / "bundle"
    shutil.copytree(ROOT / "policies" / "default", bundle)
    # The default playbooks, and one that contains a finance agent reaching for payroll.
    playbooks = root / "playbooks"
    shutil.copytree(ROOT / "playbooks" / "default", playbooks)
    (playbooks / "payroll-attempt.yaml").write_text(PAYROLL_PLAYBOOK)  # the shipped one, stricter
    env = {
        **os.environ,
        "WARDEN_DATABASE_URL": database,
        "WARDEN_REDIS_URL": redis.url,
        "WARDEN_POLICY_BUNDLE": str(bundle),
        "WARDEN_PLAYBOOKS": str(playbooks),
    }
    warden = [sys.executable, "-m", "warden.cli.main", "--state-dir", str(settings.state_dir)]
    made = Deployment(root, cluster, redis, authority, store, upstream)
    try:
        plane_port = free_port()
        plane = start(
            [*warden, "serve", "--host", "127.0.0.1", "--port", str(plane_port)],
            env,
            root / "control-plane.log",
        )
        made.processes.append(plane)
        made.plane_url = f"https://localhost:{plane_port}"
        for i in range(2):
            port = free_port()
            gateway = start(
                [*warden, "gateway", "--routes", str(routes), "--host", "127.0.0.1",
                 "--port", str(port)],
                {**env, "WARDEN_GATEWAY_NAME": f"gateway-{i}"},
                root / f"gateway-{i}.log",
            )  # fmt: skip
            made.processes.append(gateway)
            made.gateway_urls.append(f"https://localhost:{port}")
            wait_for(port, gateway)
        wait_for(plane_port, plane)
        # A third gateway follows the control plane for the feed and the bundle, with short
        # bounds for the test.
        port = free_port()
        follower = start(
            [*warden, "gateway", "--routes", str(routes), "--host", "127.0.0.1",
             "--port", str(port)],
            {
                **env,
                "WARDEN_GATEWAY_NAME": "gateway-follower",
                "WARDEN_CONTROL_PLANE_URL": made.plane_url,
                "WARDEN_POLICY_MAX_AGE_S": "3",
                "WARDEN_FEED_MAX_STALENESS_S": "3",
            },
            root / "gateway-follower.log",
        )  # fmt: skip
        made.processes.append(follower)
        made.follower_url = f"https://localhost:{port}"
        made.bundle = bundle
        wait_for(port, follower)
        yield made
    finally:
        stop_processes(made.processes)
        upstream.stop()
        store.dispose()
        redis.kill()
        cluster.stop()


def until(check: Any, seconds: float = 10, every: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def test_each_gateway_has_its_own_identity(deployment: Deployment) -> None:
    creds = deployment.creds("who-bot", ["finance"])
    points = set()
    for url in deployment.gateway_urls:
        with deployment.client(creds, url) as client:
            answer = until(lambda c=client: (r := c.get("/ledger/x")).status_code == 200 and r)
        entry = LogReader(deployment.store).decision(answer.headers["x-warden-decision-id"])
        assert entry is not None
        points.add(entry["enforcement_point"])
        assert deployment.upstream.seen[-1]["headers"]["x-warden-agent"] == (
            "spiffe://example.org/agent/who-bot"
        )
    assert points == {f"spiffe://example.org/svc/gateway-{i}" for i in range(2)}


def test_a_revocation_on_the_control_plane_stops_both_gateways_at_once(
    deployment: Deployment,
) -> None:
    creds = deployment.creds("revoked-bot", ["finance"])
    clients = [deployment.client(creds, url) for url in deployment.gateway_urls]
    try:
        for client in clients:
            until(lambda c=client: c.get("/ledger/x").status_code == 200)
        with deployment.operator() as ops:
            assert ops.post("/v1/agents/revoked-bot/revoke", json={}).status_code == 200
        committed = time.monotonic()
        for client in clients:  # the very next request, on a connection kept open
            refused = client.get("/ledger/x")
            assert refused.status_code == 401, refused.text
            assert refused.json()["reason"] == "credential_principal_revoked"
        assert time.monotonic() - committed < 0.25
    finally:
        for client in clients:
            client.close()


def test_a_dlp_window_holds_across_both_gateways(deployment: Deployment) -> None:
    creds = deployment.creds("nurse-bot", ["healthcare"])
    deployment.healthy("nurse-bot")
    clients = [deployment.client(creds, url) for url in deployment.gateway_urls]
    try:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: clients[i % 2].get("/ehr/one"), range(24)))
    finally:
        for client in clients:
            client.close()
    delivered = [a for a in answers if a.status_code == 200]
    assert len(delivered) == 5, [(a.status_code, a.text[:60]) for a in answers]


def test_work_order_uses_hold_across_both_gateways(deployment: Deployment) -> None:
    creds = deployment.creds("export-bot", ["finance"])
    deployment.healthy("export-bot")
    with deployment.operator() as ops:
        order = ops.post(
            "/v1/workorders",
            json={
                "agent": "export-bot",
                "ticket": "FIN-7001",
                "actions": ["http:GET"],
                "resources": ["Endpoint:crm/x"],
                "max_uses": 3,
                "ttl_s": 600,
            },
        )
        assert order.status_code == 201, order.text
    clients = [deployment.client(creds, url) for url in deployment.gateway_urls]
    try:
        # Each gateway reloads work orders within a second; an export needs one.
        time.sleep(1.5)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: clients[i % 2].get("/crm/x?limit=5000"), range(16)))
    finally:
        for client in clients:
            client.close()
    allowed = [a for a in answers if a.status_code == 200]
    assert len(allowed) == 3, [(a.status_code, a.text[:80]) for a in answers]
    reasons = {a.json()["reason"] for a in answers if a.status_code != 200}
    assert reasons <= {"work-order-exhausted", "customer-export-needs-work-order"}


def test_a_playbook_on_one_gateway_contains_the_agent_on_every_gateway(
    deployment: Deployment,
) -> None:
    creds = deployment.creds("greedy-bot", ["finance"])
    clients = [deployment.client(creds, url) for url in deployment.gateway_urls]
    try:
        for client in clients:
            until(lambda c=client: c.get("/ledger/x").status_code == 200)
        tripped = clients[0].get("/payroll/x")
        assert tripped.status_code == 403 and tripped.json()["reason"] == "payroll-only-hr"
        sent = time.monotonic()
        # Gateway 1 never saw the payroll request; the playbook ran on gateway 0.
        refused = until(lambda: (r := clients[1].get("/ledger/x")).status_code != 200 and r, 5)
        assert time.monotonic() - sent < 1.0
        assert refused.status_code == 401, refused.text
        assert clients[0].get("/ledger/x").status_code == 401
    finally:
        for client in clients:
            client.close()
    with deployment.operator() as ops:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "greedy-bot")]))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        renewal = ops.post("/v1/agents/greedy-bot/svids/x509", json={"csr": csr})
        assert renewal.status_code == 400, renewal.text  # renewals refused
        assert renewal.json()["error"] == "agent_not_active"
        agent = ops.get("/v1/agents/greedy-bot").json()
        assert agent["status"] == "quarantined" and agent["credential_epoch"] == 1
        incidents = until(
            lambda: ops.get("/v1/incidents", params={"agent": "greedy-bot"}).json()["incidents"]
        )
        assert incidents[0]["playbook"] == "payroll-attempt"
        runs = ops.get("/v1/playbooks/runs", params={"agent": "greedy-bot"}).json()["runs"]
    assert [r["runner"] for r in runs] == ["spiffe://example.org/svc/gateway-0"]
    assert runs[0]["trigger"]["decision_id"] == tripped.json()["decision_id"]


def test_postgresql_crashing_under_load_loses_no_answered_decision(
    deployment: Deployment,
) -> None:
    creds = deployment.creds("busy-bot", ["finance"])
    clients = [deployment.client(creds, url) for url in deployment.gateway_urls]
    answered: list[str] = []
    refused = 0
    stop = time.monotonic() + 6

    def call(i: int) -> None:
        nonlocal refused
        while time.monotonic() < stop:
            try:
                answer = clients[i % 2].get("/ledger/x")
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                answered.append(answer.headers["x-warden-decision-id"])
            else:
                refused += 1

    try:
        for client in clients:
            until(lambda c=client: c.get("/ledger/x").status_code == 200)
        with ThreadPoolExecutor(8) as pool:
            running = [pool.submit(call, i) for i in range(8)]
            time.sleep(2)
            deployment.cluster.restart("immediate")  # a crash: no shutdown checkpoint
            for future in running:
                future.result()
    finally:
        for client in clients:
            client.close()
    assert answered, "nothing was answered"
    deployment.store.engine.dispose()  # the test's own connections died with the server
    reader = LogReader(deployment.store)
    missing = [d for d in answered if reader.decision(d) is None]
    assert missing == [], f"{len(missing)} of {len(answered)} answered decisions missing"
    assert refused > 0, "the crash was not felt (the test did not test it)"


def test_redis_gone_sensitive_data_stops_the_rest_goes_on(deployment: Deployment) -> None:
    creds = deployment.creds("late-nurse", ["healthcare", "finance"])
    deployment.healthy("late-nurse")
    clients = [deployment.client(creds, url) for url in deployment.gateway_urls]
    try:
        for client in clients:
            until(lambda c=client: c.get("/ledger/x").status_code == 200)
        deployment.redis.kill()
        for client in clients:
            assert client.get("/ehr/one").status_code == 403
            assert client.get("/ledger/x").status_code == 200
    finally:
        for client in clients:
            client.close()
        deployment.redis.start()


def test_a_following_gateway_takes_new_bundles_and_outlives_the_control_plane_by_its_bound(
    deployment: Deployment,
) -> None:
    creds = deployment.creds("follow-bot", ["finance"])
    reader = LogReader(deployment.store)
    with deployment.client(creds, deployment.follower_url) as client:
        first = until(lambda: (r := client.get("/ledger/x")).status_code == 200 and r)
        entry = reader.decision(first.headers["x-warden-decision-id"])
        assert entry is not None
        before = entry["policy_revision"]
        # An operator raises the bundle's version: the control plane activates it, the
        # following gateway pulls it.
        manifest = deployment.bundle / "manifest.yaml"
        text = manifest.read_text()
        version = int(re.search(r"^version: (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
        manifest.write_text(text.replace(f"version: {version}", f"version: {version + 1}"))

        def revised() -> bool:
            answer = client.get("/ledger/x")
            found = reader.decision(answer.headers["x-warden-decision-id"])
            return found is not None and found["policy_revision"] != before

        until(revised, 15, 0.2)
        # The control plane goes: the last good bundle and feed hold until their bound...
        plane = deployment.processes[0]
        plane.kill()
        plane.wait()
        gone = time.monotonic()
        assert client.get("/ledger/x").status_code == 200
        # ... then everything is refused.
        refused = until(lambda: (r := client.get("/ledger/x")).status_code != 200 and r, 10)
        # The bound (3 s) counts from the last poll the control plane answered, which may be
        # up to one long-poll wait before it went.
        assert time.monotonic() - gone >= 3 - POLL_WAIT_S - 0.2
        assert refused.json()["reason"] in {"status_unavailable", "policy_snapshot_stale"}
