"""The benchmarks' rig for the gateway: ports, a trust domain with SVIDs for upstreams and an
agent, the load generator (`_load.py`, its own process), a process's CPU time."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.support.creds import context_for, write_svid

from warden.config import load_settings
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.local.processes import free_port, stop_processes
from warden.store import open_store

HERE = Path(__file__).parent
__all__ = ["context_for", "free_port", "stop_processes", "write_svid"]  # for the other benchmarks


def wait_for_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0.0
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load(
    url: str, creds: Path, concurrency: int, seconds: float, spec: Path | None = None
) -> dict[str, float]:
    extra = [str(spec)] if spec is not None else []
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "_load.py"),
            url,
            str(creds),
            str(concurrency),
            str(seconds),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds * 4 + 60,
    )
    return dict(json.loads(out.stdout))


def trust_domain(root: Path, database_url: str | None = None) -> tuple[IdentityAuthority, Path]:
    """A new trust domain (``bench.example``) in ``root/state`` on SQLite, or on the database
    given; returns it and the ledger upstream's SVID directory."""
    settings = load_settings(state_dir=root / "state", database_url=database_url)
    settings.state_dir.mkdir(mode=0o700)
    store = open_store(settings.database)
    keys = FileKeyManager.create(settings.state_dir / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, "bench.example")
    authority = IdentityAuthority.from_parts(settings, store, keys)
    upstream = write_svid(
        root / "upstream",
        authority.issuer.issue_service_x509(
            "ledger", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        ),
        authority.ca.bundle.to_pem(),
    )
    return authority, upstream


def setup(root: Path) -> tuple[Path, Path, Path, Path]:
    """A trust domain, upstream SVIDs (HTTP and MCP), an agent SVID; returns (state, upstream,
    MCP upstream, agent)."""
    authority, upstream = trust_domain(root)
    settings, store = authority.settings, authority.store
    bundle = authority.ca.bundle.to_pem()
    tools = write_svid(
        root / "tools",
        authority.issuer.issue_service_x509(
            "bench-tools", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        ),
        bundle,
    )
    authority.agents.register("bench-bot", owner="bench", groups=["finance"])
    agent = write_svid(root / "agent", authority.issuer.issue_agent_x509("bench-bot"), bundle)
    store.dispose()
    return settings.state_dir, upstream, tools, agent


def gateway(state: Path, routes: Path, port: int, *, workers: int = 1, **env: str) -> Any:
    """``warden gateway`` in its own process; ``env``: settings (WARDEN_*) for this one."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "warden.cli.main", "--state-dir", str(state), "gateway",
            "--routes", str(routes), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers),
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )  # fmt: skip


MCP_CALL = {
    "method": "POST",
    "headers": {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "add",
    },
    "body": json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "add",
                "arguments": {"a": 2, "b": 3},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
    ),
}


def bench_routes(root: Path, port: int, mcp_port: int) -> Path:
    """The benchmarks' routes: the ledger upstream over HTTP, the tools server over MCP."""
    routes = root / "routes.yaml"
    routes.write_text(
        json.dumps(
            {
                "routes": [
                    {
                        "prefix": "/ledger",
                        "upstream": f"https://127.0.0.1:{port}",
                        "upstream_id": "spiffe://bench.example/svc/ledger",
                        "resource": {
                            "type": "Endpoint",
                            "id": "ledger/invoices",
                            "properties": {"domain": "finance", "classification": "internal"},
                        },
                        "args": {"query": ["limit"]},
                    },
                    {
                        "prefix": "/mcp/bench",
                        "protocol": "mcp",
                        "upstream": f"https://127.0.0.1:{mcp_port}/mcp",
                        "upstream_id": "spiffe://bench.example/svc/bench-tools",
                        "resource": {
                            "type": "Tool",
                            "id": "bench-tools",
                            "properties": {"domain": "finance", "classification": "internal"},
                        },
                    },
                ]
            }
        )
    )
    return routes
