"""Gateway benchmark: the same load (a local upstream returning 1 KB of JSON) direct and
through the gateway, with mTLS on both legs, a decision and a durable (fsynced) record per
request, at 1 and 32 concurrent connections, in one run; and an MCP `tools/call` (the official
SDK's server, stateless revision, JSON answers) direct and through the gateway at 1 connection.
The load generator, the upstreams and the gateway (`warden gateway`) each run in their own
processes; the gateway's CPU time is read from /proc.

    python benchmarks/gateway.py [--quick] [--json PATH]

JSON keys: direct_rps_c1, gateway_rps_c1, added_p50_ms_c1, added_p99_ms_c1, direct_rps_c32,
gateway_rps_c32, throughput_ratio_c32, gateway_cpu_ms_per_req, fsync_p50_ms,
mcp_direct_p50_ms_c1, mcp_gateway_p50_ms_c1, mcp_added_p50_ms_c1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_args, percentile, report
from _rig import HERE, cpu_seconds, free_port, gateway, load, setup, wait_for_port
from warden.audit.recorder import fsync_probe

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


def main() -> None:
    args = parse_args(__doc__ or "", extra=[("--workers", int, 1, "gateway processes")])
    seconds = 3.0 if args.quick else 10.0
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="warden-gw-bench-") as tmp:
        root = Path(tmp)
        state, upstream_creds, tools_creds, agent_creds = setup(root)
        port, mcp_port = free_port(), free_port()
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "_upstream.py"), str(upstream_creds), str(port)]
        )
        tools = subprocess.Popen(
            [sys.executable, str(HERE / "_mcp_upstream.py"), str(tools_creds), str(mcp_port)]
        )
        call = root / "mcp-call.json"
        call.write_text(json.dumps(MCP_CALL))
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
        try:
            wait_for_port(port)
            wait_for_port(mcp_port)
            direct_url = f"https://127.0.0.1:{port}/ledger/invoices?limit=10"
            results["mcp_direct"] = load(
                f"https://127.0.0.1:{mcp_port}/mcp", agent_creds, 1, seconds, call
            )
            for concurrency in (1, 32):
                results[f"direct_c{concurrency}"] = load(
                    direct_url, agent_creds, concurrency, seconds
                )
                gateway_port = free_port()
                gateway_process = gateway(state, routes, gateway_port, workers=args.workers)
                try:
                    wait_for_port(gateway_port)
                    url = f"https://localhost:{gateway_port}/ledger/invoices?limit=10"
                    load(url, agent_creds, 4, 1.0)  # the gateway up and warm
                    before = cpu_seconds(gateway_process.pid)
                    results[f"gateway_c{concurrency}"] = load(
                        url, agent_creds, concurrency, seconds
                    )
                    results[f"cpu_c{concurrency}"] = {
                        "seconds": cpu_seconds(gateway_process.pid) - before
                    }
                    if concurrency == 1:
                        results["mcp_gateway"] = load(
                            f"https://localhost:{gateway_port}/mcp/bench",
                            agent_creds,
                            1,
                            seconds,
                            call,
                        )
                finally:
                    gateway_process.terminate()
                    gateway_process.wait()
            fsyncs = [
                fsync_probe(root / "fsync.probe") * 1000 for _ in range(50 if args.quick else 200)
            ]
        finally:
            for child in (upstream, tools):
                child.terminate()
                child.wait()
    served = results["gateway_c1"]["all_requests"] + results["gateway_c32"]["all_requests"]
    cpu = results["cpu_c1"]["seconds"] + results["cpu_c32"]["seconds"]
    g1, d1 = results["gateway_c1"], results["direct_c1"]
    figures = {
        "direct_rps_c1": round(d1["rps"], 1),
        "gateway_rps_c1": round(g1["rps"], 1),
        "added_p50_ms_c1": round(g1["p50_ms"] - d1["p50_ms"], 3),
        "added_p99_ms_c1": round(g1["p99_ms"] - d1["p99_ms"], 3),
        "direct_rps_c32": round(results["direct_c32"]["rps"], 1),
        "gateway_rps_c32": round(results["gateway_c32"]["rps"], 1),
        "throughput_ratio_c32": round(
            results["gateway_c32"]["rps"] / results["direct_c32"]["rps"], 3
        ),
        "gateway_cpu_ms_per_req": round(cpu / served * 1000, 3),
        "fsync_p50_ms": round(percentile(fsyncs, 50), 3),
        "mcp_direct_p50_ms_c1": round(results["mcp_direct"]["p50_ms"], 3),
        "mcp_gateway_p50_ms_c1": round(results["mcp_gateway"]["p50_ms"], 3),
        "mcp_added_p50_ms_c1": round(
            results["mcp_gateway"]["p50_ms"] - results["mcp_direct"]["p50_ms"], 3
        ),
        "gateway_errors": results["gateway_c1"]["errors"]
        + results["gateway_c32"]["errors"]
        + results["mcp_gateway"]["errors"]
        + results["mcp_direct"]["errors"],
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
        ("MCP tools/call direct p50, 1 connection", figures["mcp_direct_p50_ms_c1"], "ms", ""),
        ("MCP tools/call through the gateway p50", figures["mcp_gateway_p50_ms_c1"], "ms", ""),
        ("MCP added latency p50, 1 connection", figures["mcp_added_p50_ms_c1"], "ms", "<= 2"),
        ("answers other than 200", figures["gateway_errors"], "", "0"),
    ]
    report(f"gateway benchmark ({'quick' if args.quick else 'full'})", rows, figures, args.json)


if __name__ == "__main__":
    main()
