"""Gateway benchmark: the same load (a local upstream returning 1 KB of JSON) direct and
through the gateway, with mTLS on both legs, a decision and a durable (fsynced) record per
request, at 1 and 32 concurrent connections, in one run; and an MCP `tools/call` (the official
SDK's server, stateless revision, JSON answers) direct and through the gateway at 1 connection.
The load generator, the upstreams and the gateway (`warden gateway`) each run in their own
processes; the gateway's CPU time is read from /proc. The loads run in rounds (2 with
``--quick``, 5 in full), each round direct and through the gateway back to back; figures are
medians over the rounds, so one slow spell of a shared machine does not decide a ratio.

    python benchmarks/gateway.py [--quick] [--json PATH]

JSON keys: direct_rps_c1, gateway_rps_c1, added_p50_ms_c1, added_p99_ms_c1, direct_rps_c32,
gateway_rps_c32, throughput_ratio_c32, gateway_cpu_ms_per_req, fsync_p50_ms,
mcp_direct_p50_ms_c1, mcp_gateway_p50_ms_c1, mcp_added_p50_ms_c1 (and
throughput_ratio_c32_min/_max, rounds, gateway_errors).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_args, percentile, report
from _rig import (
    HERE,
    MCP_CALL,
    bench_routes,
    cpu_seconds,
    free_port,
    gateway,
    load,
    setup,
    wait_for_port,
)
from warden.audit.recorder import fsync_probe


def main() -> None:
    args = parse_args(__doc__ or "", extra=[("--workers", int, 1, "gateway processes")])
    rounds, each = (2, 1.5) if args.quick else (5, 3.0)
    rounds_of: dict[str, list[dict[str, float]]] = defaultdict(list)
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
        routes = bench_routes(root, port, mcp_port)
        try:
            wait_for_port(port)
            wait_for_port(mcp_port)
            gateway_port = free_port()
            gateway_process = gateway(state, routes, gateway_port, workers=args.workers)
            try:
                wait_for_port(gateway_port)
                direct = f"https://127.0.0.1:{port}/ledger/invoices?limit=10"
                through = f"https://localhost:{gateway_port}/ledger/invoices?limit=10"
                tools_direct = f"https://127.0.0.1:{mcp_port}/mcp"
                tools_through = f"https://localhost:{gateway_port}/mcp/bench"
                load(through, agent_creds, 4, 1.0)  # the gateway up and warm
                # Each round measures every load direct and through the gateway back to back,
                # so a slow spell of the machine hits both sides of a ratio; the figures are
                # the medians of the rounds.
                for number in range(rounds):
                    rounds_of["mcp_direct"].append(load(tools_direct, agent_creds, 1, each, call))
                    rounds_of["mcp_gateway"].append(load(tools_through, agent_creds, 1, each, call))
                    for concurrency in (1, 32):
                        rounds_of[f"direct_c{concurrency}"].append(
                            load(direct, agent_creds, concurrency, each)
                        )
                        before = cpu_seconds(gateway_process.pid)
                        measured = load(through, agent_creds, concurrency, each)
                        measured["cpu_s"] = cpu_seconds(gateway_process.pid) - before
                        rounds_of[f"gateway_c{concurrency}"].append(measured)
                    print(f"round {number + 1} of {rounds} done", file=sys.stderr)
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
    figures = _figures(rounds_of, fsyncs)
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
        (
            "  lowest round / highest round",
            figures["throughput_ratio_c32_min"],
            f"x / {figures['throughput_ratio_c32_max']:.3f}",
            "",
        ),
        ("gateway CPU per request", figures["gateway_cpu_ms_per_req"], "ms", "<= 1.0"),
        ("fdatasync of a small append p50", figures["fsync_p50_ms"], "ms", ""),
        ("MCP tools/call direct p50, 1 connection", figures["mcp_direct_p50_ms_c1"], "ms", ""),
        ("MCP tools/call through the gateway p50", figures["mcp_gateway_p50_ms_c1"], "ms", ""),
        ("MCP added latency p50, 1 connection", figures["mcp_added_p50_ms_c1"], "ms", "<= 2"),
        ("answers other than 200", figures["gateway_errors"], "", "0"),
    ]
    title = f"gateway benchmark ({'quick' if args.quick else 'full'}, median of {rounds} rounds)"
    report(title, rows, figures, args.json)


def _figures(rounds_of: dict[str, list[dict[str, float]]], fsyncs: list[float]) -> dict[str, Any]:
    """The medians over rounds; each round's ratio and added latency from its own pair."""

    def paired(
        load: str, figure: Callable[[dict[str, float], dict[str, float]], float]
    ) -> list[float]:
        """``figure(through, direct)`` of each round of ``load`` (gateway_c1, mcp, ...)."""
        direct = load.replace("gateway", "direct")
        return [figure(g, d) for g, d in zip(rounds_of[load], rounds_of[direct], strict=True)]

    def of(name: str, key: str) -> float:
        return median(r[key] for r in rounds_of[name])

    def added(key: str) -> Callable[[dict[str, float], dict[str, float]], float]:
        return lambda through, direct: through[key] - direct[key]

    served = sum(r["all_requests"] for k in ("gateway_c1", "gateway_c32") for r in rounds_of[k])
    cpu = sum(r["cpu_s"] for k in ("gateway_c1", "gateway_c32") for r in rounds_of[k])
    ratios = paired("gateway_c32", lambda through, direct: through["rps"] / direct["rps"])
    return {
        "direct_rps_c1": round(of("direct_c1", "rps"), 1),
        "gateway_rps_c1": round(of("gateway_c1", "rps"), 1),
        "added_p50_ms_c1": round(median(paired("gateway_c1", added("p50_ms"))), 3),
        "added_p99_ms_c1": round(median(paired("gateway_c1", added("p99_ms"))), 3),
        "direct_rps_c32": round(of("direct_c32", "rps"), 1),
        "gateway_rps_c32": round(of("gateway_c32", "rps"), 1),
        "throughput_ratio_c32": round(median(ratios), 3),
        "throughput_ratio_c32_min": round(min(ratios), 3),
        "throughput_ratio_c32_max": round(max(ratios), 3),
        "gateway_cpu_ms_per_req": round(cpu / served * 1000, 3),
        "fsync_p50_ms": round(percentile(fsyncs, 50), 3),
        "mcp_direct_p50_ms_c1": round(of("mcp_direct", "p50_ms"), 3),
        "mcp_gateway_p50_ms_c1": round(of("mcp_gateway", "p50_ms"), 3),
        "mcp_added_p50_ms_c1": round(median(paired("mcp_gateway", added("p50_ms"))), 3),
        "rounds": len(ratios),
        "gateway_errors": sum(
            r["errors"]
            for k in ("gateway_c1", "gateway_c32", "mcp_gateway", "mcp_direct")
            for r in rounds_of[k]
        ),
    }


if __name__ == "__main__":
    main()
