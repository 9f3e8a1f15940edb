"""The demo's world: a deployment (the embedded stack, or a distributed one), the upstream
services behind its gateways, a webhook receiver standing in for the security team's channel,
and agents run as processes with ``warden run`` (each gets its SVID from the Workload API and
calls only through a gateway).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from warden.config import Settings, Webhook, load_settings
from warden.demo.deployment import Backing, Deployment, Embedded, open_distributed
from warden.demo.services import Service, all_services
from warden.enforce.routes import RouteTable, parse_routes
from warden.identity.authority import IdentityAuthority, open_authority
from warden.identity.ca.keys import write_private_file
from warden.stack import ADMIN, EmbeddedStack, initialise, is_initialised
from warden.store import Store
from warden.trust.health import HealthBook

TRUST_DOMAIN = "demo.example"
EU = {"region": "eu"}


def routes_for(services: dict[str, Service], trust_domain: str) -> RouteTable:
    """The gateway's routes to the demo's services, and what policies are told of each."""
    return parse_routes(route_document(services, trust_domain))


def route_document(services: dict[str, Service], trust_domain: str) -> dict[str, Any]:
    """The routes as a route file holds them (what a gateway process is given)."""

    def route(
        name: str,
        prefix: str,
        service: str,
        resource: str,
        properties: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "prefix": prefix,
            "upstream": services[service].url,
            "upstream_id": services[service].spiffe_id(trust_domain),
            "resource": {"type": "Endpoint", "id": resource, "properties": properties},
            **extra,
        }

    finance = {"domain": "finance", "region": "eu"}
    health = {"domain": "healthcare", "classification": "phi"}
    return {
            "routes": [
                route(
                    "customers", "/finance/customers", "finance", "finance/customers",
                    {**finance, "classification": "pii"}, args={"query": ["limit"]},
                ),
                route(
                    "invoices", "/finance/invoices", "finance", "finance/invoices",
                    {**finance, "classification": "internal"},
                    args={"query": ["limit"], "body": ["customer", "routing_number", "amount"]},
                ),
                route(
                    "payroll", "/finance/payroll", "finance", "hr/payroll",
                    {**finance, "classification": "pii", "tags": ["payroll"]},
                ),
                route("patients", "/ehr/Patient", "healthcare", "ehr/patients",
                      {**health, "region": "eu"}, args={"query": ["limit"]}),
                route("us-archive", "/ehr-us/Patient", "healthcare", "ehr/us-archive",
                      {**health, "region": "us"}),
                route("formulary", "/ehr/formulary", "healthcare", "ehr/formulary",
                      {"domain": "healthcare", "classification": "internal", "region": "eu"}),
                route("prices", "/retail/prices", "retail", "retail/prices",
                      {"domain": "retail", "classification": "internal", "tags": ["pricing"]}),
                route("inventory", "/retail/inventory", "retail", "retail/inventory",
                      {"domain": "retail", "classification": "internal",
                       "tags": ["inventory"]}, args={"query": ["limit"]}),
                route("backups", "/store/backups", "store", "store/backups",
                      {"domain": "platform", "classification": "internal", "tags": ["backup"]}),
                route("agent-config", "/store/agent-config", "store", "store/agent-config",
                      {"domain": "platform", "classification": "internal",
                       "tags": ["agent-config"]}),
                route("trials", "/trials/ph-301", "trials", "trials/ph-301",
                      {"domain": "pharma", "classification": "internal", "region": "eu"}),
            ]
        }  # fmt: skip


@dataclass
class Alerts:
    """What the security team's webhook received (signed notifications from playbooks)."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> Alerts:
        alerts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                with contextlib.suppress(ValueError):  # a body that is not JSON is dropped
                    alerts.received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/security"

    def about(self, agent: str) -> list[dict[str, Any]]:
        return [a for a in self.received if agent in json.dumps(a)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class World:
    """Everything the scenarios play against."""

    root: Path
    deployment: Deployment
    services: dict[str, Service]
    alerts: Alerts
    health: HealthBook
    runs: int = 0

    @classmethod
    def start(cls, root: Path, *, distributed: bool = False) -> World:
        alerts = Alerts().start()
        secret = root / "webhook.key"
        if not secret.exists():
            write_private_file(secret, os.urandom(32).hex().encode())
        backing: Backing | None = None
        deployment: Deployment | None = None
        services = {s.name: s for s in all_services()}
        try:
            if distributed:
                # A new PostgreSQL each run: the state directory that goes with it is new too.
                backing = Backing.start()
                shutil.rmtree(root / "distributed", ignore_errors=True)
            state_dir = root / ("distributed" if distributed else "state")
            database = {"database_url": backing.database_url} if backing is not None else {}
            base = load_settings(state_dir=state_dir, **database)
            if not is_initialised(base):
                initialise(base, TRUST_DOMAIN).store.dispose()
            # The services' certificates come from the trust domain's CA, and the gateway's
            # routes need their ports: the services start before the stack.
            bootstrap = open_authority(base)
            try:
                for service in services.values():
                    service.start(bootstrap, root / "services" / service.name)
            finally:
                bootstrap.store.dispose()
            settings = settings_for(root, alerts.url, secret, state_dir, **database)
            if backing is not None:
                made = open_distributed(root, settings, backing)
                backing = None  # the deployment stops it from here on
                made.start_processes(route_document(services, TRUST_DOMAIN), settings)
                deployment = made
            else:
                deployment = Embedded(
                    EmbeddedStack.start(settings, routes=routes_for(services, TRUST_DOMAIN))
                )
        except BaseException:
            for service in services.values():
                service.stop()
            alerts.stop()
            if backing is not None:
                backing.stop()
            raise
        # Where the re-provisioning hook finds the deployment (its ports are known only now).
        (root / "urls.json").write_text(
            json.dumps({"control": deployment.control_url, "gateway": deployment.gateway_urls[-1]})
        )
        health = HealthBook(deployment.authority.store)
        return cls(root, deployment, services, alerts, health)

    @property
    def authority(self) -> IdentityAuthority:
        return self.deployment.authority

    @property
    def store(self) -> Store:
        return self.authority.store

    # -- agents --------------------------------------------------------------------------------

    def register(
        self, name: str, *, groups: list[str], owner: str, labels: dict[str, str] | None = None
    ) -> None:
        self.authority.agents.register(
            name, owner=owner, groups=groups, labels={**EU, **(labels or {})}, purpose="demo"
        )
        self.report_clean(name)

    def report_clean(self, name: str) -> None:
        self.health.ingest(name, [scan([])], by="ci-scanner")
        self.deployment.settle()

    def report_critical(self, name: str) -> None:
        self.health.ingest(name, [scan([("CVE-2026-0001", "CRITICAL")])], by="ci-scanner")
        self.deployment.settle()

    def run_agent(self, name: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run an agent process with ``warden run`` through the plan; its answers. Runs take
        the gateways in turn: what one contains, every one refuses."""
        gateways = self.deployment.gateway_urls
        plan = {
            "gateway": gateways[self.runs % len(gateways)],
            "control": self.deployment.control_url,
            "steps": steps,
        }
        self.runs += 1
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.root, delete=False) as f:
            json.dump(plan, f)
        warden = str(Path(sys.executable).parent / "warden")
        settings = self.authority.settings
        done = subprocess.run(
            [
                warden, "--state-dir", str(settings.state_dir), "run", "--agent", name,
                "--operator", ADMIN, "--server", self.deployment.control_url,
                "--", sys.executable, "-m", "warden.demo.agent", f.name,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env=self.deployment.env or None,
        )  # fmt: skip
        lines = []
        for line in done.stdout.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        if not any("identity" in line for line in lines):
            lines.append({"error": (done.stderr or done.stdout)[-500:], "status": -1})
        return [line for line in lines if "identity" not in line]

    def wait(self, check: Any, timeout_s: float = 5.0) -> float | None:
        """Seconds until ``check()`` holds, or None when it did not within ``timeout_s``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if check():
                return time.monotonic() - started
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        try:
            self.deployment.stop()
        finally:
            for service in self.services.values():
                service.stop()
            self.alerts.stop()


def settings_for(
    root: Path, webhook_url: str, secret: Path, state_dir: Path, **overrides: Any
) -> Settings:
    """The demo's settings: the state directory under ``root``, free ports, the webhook."""
    return load_settings(
        state_dir=state_dir,
        **overrides,
        # The agents' normal behaviour comes first and is short: their baselines are trusted
        # after four requests, so what the scenarios then do is scored against them.
        risk_learning_requests=4,
        risk_learning_s=0,
        api_port=0,
        gateway_port=0,
        response_webhooks={"security": Webhook(url=webhook_url, secret_file=secret)},
        response_hooks={
            "restart-agent": [
                sys.executable,
                "-m",
                "warden.demo.restart_hook",
                str(root / "urls.json"),
            ]
        },
    )


IMAGE = "sha256:" + "ab" * 32


def scan(findings: Sequence[tuple[str, str]] = (), image: str = IMAGE) -> bytes:
    """A Trivy report (JSON, SchemaVersion 2) of the agent's image, as its CI pipeline would
    send it; ``findings``: (CVE id, severity in Trivy's upper case)."""
    return json.dumps(
        {
            "SchemaVersion": 2,
            "CreatedAt": "2026-12-01T10:00:00Z",
            "ArtifactName": f"registry.example/agents/bot@{image}",
            "ArtifactType": "container_image",
            "Metadata": {
                "OS": {"Family": "debian", "Name": "12.8"},
                "ImageID": "sha256:" + "ee" * 32,
                "RepoDigests": [f"registry.example/agents/bot@{image}"],
            },
            "Results": [
                {
                    "Target": "registry.example/agents/bot (debian 12.8)",
                    "Class": "os-pkgs",
                    "Type": "debian",
                    "Vulnerabilities": [
                        {
                            "VulnerabilityID": cve,
                            "PkgName": "openssl",
                            "InstalledVersion": "3.0.15-1",
                            "FixedVersion": "3.0.16-1",
                            "Severity": severity,
                        }
                        for cve, severity in findings
                    ],
                }
            ],
        }
    ).encode()
