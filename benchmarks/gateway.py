"""Gateway benchmark: the same load (a local upstream returning 1 KB of JSON) direct and
through the gateway, with mTLS on both legs, a decision and a durable (fsynced) record per
request, at 1 and 32 concurrent connections, in one run. The load generator and the upstream
run in their own processes; the gateway runs in this one, whose CPU time is the gateway's.

    python benchmarks/gateway.py [--quick] [--json PATH]

JSON keys: direct_rps_c1, gateway_rps_c1, added_p50_ms_c1, added_p99_ms_c1, direct_rps_c32,
gateway_rps_c32, throughput_ratio_c32, gateway_cpu_ms_per_req, fsync_p50_ms.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.support.creds import write_svid

from _common import parse_args, percentile, report
from warden.audit.group_commit import fsync_probe
from warden.config import load_settings
from warden.enforce.routes import parse_routes
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.store import open_store

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load(url: str, creds: Path, concurrency: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "_load.py"), url, str(creds), str(concurrency), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds * 4 + 60,
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    args = parse_args(__doc__ or "")
    seconds = 3.0 if args.quick else 10.0
    with tempfile.TemporaryDirectory(prefix="warden-gw-bench-") as tmp:
        root = Path(tmp)
        settings = load_settings(state_dir=root / "state")
        settings.state_dir.mkdir(mode=0o700)
        store = open_store(settings.database)
        keys = FileKeyManager.create(settings.state_dir / "keys", settings.key_file)
        CertificateAuthority.initialise(store, keys, settings, "bench.example")
        authority = IdentityAuthority.from_parts(settings, store, keys)
        bundle = authority.ca.bundle.to_pem()
        upstream_creds = write_svid(
            root / "upstream",
            authority.issuer.issue_service_x509(
                "ledger", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
            ),
            bundle,
        )
        agent = authority.agents.register("bench-bot", owner="bench", groups=["finance"])
        agent_creds = write_svid(
            root / "agent", authority.issuer.issue_agent_x509("bench-bot"), bundle
        )
        port = free_port()
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "_upstream.py"), str(upstream_creds), str(port)]
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            routes = parse_routes(
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
                        }
                    ]
                }
            )
            gateway = GatewayServer(
                authority, routes=routes, host="127.0.0.1", port=0
            ).start_in_thread()
            gateway.engine.set_signals("risk", {agent.spiffe_id: {"score": 10}})
            direct_url = f"https://127.0.0.1:{port}/ledger/invoices?limit=10"
            gateway_url = f"{gateway.url}/ledger/invoices?limit=10"
            results = {}
            for concurrency in (1, 32):
                results[f"direct_c{concurrency}"] = load(
                    direct_url, agent_creds, concurrency, seconds
                )
                cpu_before = os.times()
                results[f"gateway_c{concurrency}"] = load(
                    gateway_url, agent_creds, concurrency, seconds
                )
                cpu_after = os.times()
                results[f"cpu_c{concurrency}"] = {
                    "seconds": (cpu_after.user - cpu_before.user)
                    + (cpu_after.system - cpu_before.system)
                }
            gateway.stop()
            fsyncs = [
                fsync_probe(root / "fsync.probe") * 1000 for _ in range(50 if args.quick else 200)
            ]
        finally:
            upstream.terminate()
            upstream.wait()
            store.dispose()
    served = results["gateway_c1"]["requests"] + results["gateway_c32"]["requests"]
    cpu = results["cpu_c1"]["seconds"] + results["cpu_c32"]["seconds"]
    figures = {
        "direct_rps_c1": round(results["direct_c1"]["rps"], 1),
        "gateway_rps_c1": round(results["gateway_c1"]["rps"], 1),
        "added_p50_ms_c1": round(
            results["gateway_c1"]["p50_ms"] - results["direct_c1"]["p50_ms"], 3
        ),
        "added_p99_ms_c1": round(
            results["gateway_c1"]["p99_ms"] - results["direct_c1"]["p99_ms"], 3
        ),
        "direct_rps_c32": round(results["direct_c32"]["rps"], 1),
        "gateway_rps_c32": round(results["gateway_c32"]["rps"], 1),
        "throughput_ratio_c32": round(
            results["gateway_c32"]["rps"] / results["direct_c32"]["rps"], 3
        ),
        "gateway_cpu_ms_per_req": round(cpu / served * 1000, 3),
        "fsync_p50_ms": round(percentile(fsyncs, 50), 3),
        "gateway_errors": results["gateway_c1"]["errors"] + results["gateway_c32"]["errors"],
    }
    rows = [
        ("direct, 1 connection", figures["direct_rps_c1"], "req/s", ""),
        ("through the gateway, 1 connection", figures["gateway_rps_c1"], "req/s", ""),
        ("added latency p50, 1 connection", figures["added_p50_ms_c1"], "ms", "<= 1.5"),
        ("added latency p99, 1 connection", figures["added_p99_ms_c1"], "ms", "<= 5"),
        ("direct, 32 connections", figures["direct_rps_c32"], "req/s", ""),
        ("through the gateway, 32 connections", figures["gateway_rps_c32"], "req/s", ""),
        (
            "gateway / direct throughput, 32 connections",
            figures["throughput_ratio_c32"],
            "x",
            ">= 0.2",
        ),
        ("gateway CPU per request", figures["gateway_cpu_ms_per_req"], "ms", "<= 1.0"),
        ("fdatasync of a small append p50", figures["fsync_p50_ms"], "ms", ""),
        ("gateway answers other than 200", figures["gateway_errors"], "", "0"),
    ]
    report(f"gateway benchmark ({'quick' if args.quick else 'full'})", rows, figures, args.json)


if __name__ == "__main__":
    main()
