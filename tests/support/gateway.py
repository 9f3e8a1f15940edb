"""A gateway in front of real upstreams on 127.0.0.1, for the gateway's integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.creds import context_for, write_svid
from tests.support.reports import make_healthy
from tests.support.upstream import FINANCE, Upstream
from warden.audit.reader import LogReader
from warden.config import load_settings
from warden.enforce.routes import parse_routes
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority, file_key_manager


def with_settings(authority: IdentityAuthority, **overrides: Any) -> IdentityAuthority:
    """The same store and CA with other settings (gateway bounds, for one test)."""
    settings = load_settings(
        state_dir=authority.settings.state_dir,
        database_url=authority.settings.database_url,
        **overrides,
    )
    return IdentityAuthority.from_parts(
        settings, authority.store, file_key_manager(authority.settings)
    )


class Setup:
    """A gateway with four routes (ledger, customers, an impostor upstream, a dead one) in
    front of real mTLS upstreams, and two agents. ``overrides``: gateway settings."""

    def __init__(self, authority: IdentityAuthority, root: Path, **overrides: Any) -> None:
        if overrides:  # the same store and CA, other bounds
            authority = with_settings(authority, **overrides)
        self.authority = authority
        self.root = root
        self.upstream = Upstream(authority, root).start()
        self.impostor = Upstream(authority, root, name="impostor").start()
        routes = parse_routes(
            {
                "routes": [
                    {
                        "name": "ledger",
                        "prefix": "/ledger",
                        "upstream": self.upstream.url,
                        "upstream_id": self.upstream.spiffe_id,
                        "resource": {
                            "type": "Endpoint",
                            "id": "ledger/invoices",
                            "properties": FINANCE,
                        },
                        "args": {"query": ["limit"], "body": ["rows"]},
                        "credential": {"header": "X-Api-Key", "value": "upstream-secret"},
                    },
                    {
                        "name": "customers",
                        "prefix": "/customers",
                        "upstream": self.upstream.url,
                        "upstream_id": self.upstream.spiffe_id,
                        "resource": {
                            "type": "Endpoint",
                            "id": "ehr/patients",
                            "properties": {
                                "domain": "healthcare",
                                "classification": "phi",
                                "region": "eu",
                            },
                        },
                    },
                    {
                        "name": "named",
                        "prefix": "/named",
                        "upstream": self.upstream.named_url,
                        "upstream_id": self.upstream.spiffe_id,
                        "resource": {"type": "Endpoint", "id": "ledger/x", "properties": FINANCE},
                    },
                    {
                        "name": "wrong-id",
                        "prefix": "/wrong",
                        "upstream": self.impostor.url,
                        "upstream_id": self.upstream.spiffe_id,
                        "resource": {"type": "Endpoint", "id": "ledger/x", "properties": FINANCE},
                    },
                    {
                        "name": "down",
                        "prefix": "/down",
                        "upstream": "https://127.0.0.1:9",
                        "upstream_id": self.upstream.spiffe_id,
                        "resource": {"type": "Endpoint", "id": "ledger/x", "properties": FINANCE},
                    },
                ]
            }
        )
        self.bundle = root / "client-bundle.pem"
        self.bundle.write_bytes(authority.ca.bundle.to_pem())
        self.gateway = GatewayServer(
            authority, routes=routes, host="127.0.0.1", port=0
        ).start_in_thread()
        for name, groups in (("invoice-bot", ["finance"]), ("triage-bot", ["healthcare"])):
            authority.agents.register(name, owner="qa", groups=groups, labels={"region": "eu"})
            make_healthy(self.gateway.health, name)  # a clean scan; DLP windows start empty

    def creds(self, name: str) -> Path:
        issued = self.authority.issuer.issue_agent_x509(name)
        return write_svid(self.root / f"agent-{name}", issued, self.authority.ca.bundle.to_pem())

    def client(self, creds: Path | None, **kw: object) -> httpx.Client:
        # The trust bundle as a client holds it (the gateway rewrites its own copy on renewal).
        bundle = self.root / "client-bundle.pem"
        if not bundle.exists():
            bundle.write_bytes(self.authority.ca.bundle.to_pem())
        return httpx.Client(
            base_url=self.gateway.url, timeout=10, verify=context_for(creds, bundle), **kw
        )

    def stop(self) -> None:
        self.gateway.stop()
        self.upstream.stop()
        self.impostor.stop()


def recorded(setup: Setup, decision_id: str) -> dict[str, object]:
    record = LogReader(setup.authority.store).decision(decision_id)
    assert record is not None, "every answer has its record"
    return record


def gateway_process(state_dir: Path, routes: Path, *, workers: int = 1) -> tuple[Any, int]:
    """``warden gateway`` in a process of its own on a free port: (the process, the port)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [
        sys.executable, "-m", "warden.cli.main", "--state-dir", str(state_dir), "gateway",
        "--routes", str(routes), "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port
