"""Two gateway builds on one rig, their loads alternated: how to judge a change to the request
path on a machine whose speed drifts by 2x within minutes.

Each side is a source tree (``SRC`` is put first on ``PYTHONPATH``, so a checkout of an older
commit, `git worktree add /tmp/old HEAD~1`, runs against the working tree) and optionally a
number of worker processes (``SRC:WORKERS``). Both gateways serve the same state directory,
upstreams and routes as `benchmarks/gateway.py`; every round runs each load once through each
side, the side going first alternating, and the figures are medians over the rounds with the
median of the per-round ratios (B / A), which a slow spell of the machine hits on both sides.

    python benchmarks/compare_gateways.py SRC_A[:WORKERS] SRC_B[:WORKERS]
        [--rounds N] [--seconds S] [--c32] [--quick] [--json PATH]

JSON keys: ``{load}_{figure}_{a|b|ratio}`` for each load (c1, mcp; c32 with ``--c32``) and
figure (p50_ms, rps, cpu_ms: the gateway's CPU per request); ``ratio`` is B over A, the median
of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import report
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a", help="source tree of side A, optionally :WORKERS")
    parser.add_argument("b", help="source tree of side B, optionally :WORKERS")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=1.5, help="per load and round")
    parser.add_argument("--c32", action="store_true", help="add the 32-connection load")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 s")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    args = parser.parse_args()
    rounds, seconds = (3, 1.0) if args.quick else (args.rounds, args.seconds)
    sides = {"a": args.a, "b": args.b}
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="warden-gw-compare-") as tmp:
        root = Path(tmp)
        state, upstream_creds, tools_creds, agent = setup(root)
        port, mcp_port = free_port(), free_port()
        children = [
            subprocess.Popen(
                [sys.executable, str(HERE / "_upstream.py"), str(upstream_creds), str(port)]
            ),
            subprocess.Popen(
                [sys.executable, str(HERE / "_mcp_upstream.py"), str(tools_creds), str(mcp_port)]
            ),
        ]
        call = root / "mcp-call.json"
        call.write_text(json.dumps(MCP_CALL))
        routes = bench_routes(root, port, mcp_port)
        gateways: dict[str, tuple[Any, int]] = {}
        try:
            wait_for_port(port)
            wait_for_port(mcp_port)
            for side, spec in sides.items():
                gateways[side] = _start(spec, state, routes)
                children.append(gateways[side][0])
            loads = [("c1", "/ledger/invoices?limit=10", 1, None), ("mcp", "/mcp/bench", 1, call)]
            if args.c32:
                loads.append(("c32", "/ledger/invoices?limit=10", 32, None))
            for _, gateway_port in gateways.values():  # both up and warm
                for _, path, _, spec in loads:
                    load(f"https://localhost:{gateway_port}{path}", agent, 4, 1.0, spec)
            for number in range(rounds):
                order = ["a", "b"] if number % 2 == 0 else ["b", "a"]
                for name, path, concurrency, spec in loads:
                    for side in order:
                        process, gateway_port = gateways[side]
                        before = cpu_seconds(process.pid)
                        url = f"https://localhost:{gateway_port}{path}"
                        measured = load(url, agent, concurrency, seconds, spec)
                        measured["cpu_ms"] = (
                            (cpu_seconds(process.pid) - before) / measured["all_requests"] * 1000
                        )
                        samples.setdefault((name, side), []).append(measured)
                print(f"round {number + 1} of {rounds} done", file=sys.stderr)
        finally:
            for child in children:
                child.terminate()
                child.wait()
    figures, rows = _figures(samples, [name for name, *_ in loads])
    report(f"gateway A ({args.a}) against B ({args.b}), {rounds} rounds", rows, figures, args.json)


def _start(spec: str, state: Path, routes: Path) -> tuple[Any, int]:
    source, _, workers = spec.partition(":")
    gateway_port = free_port()
    pythonpath = str(Path(source).resolve())
    process = gateway(state, routes, gateway_port, workers=int(workers or 1), PYTHONPATH=pythonpath)
    wait_for_port(gateway_port)
    time.sleep(1.0)  # the policy watcher's first look (it activates the bundle once)
    return process, gateway_port


def _figures(
    samples: dict[tuple[str, str], list[dict[str, float]]], loads: list[str]
) -> tuple[dict[str, float], list[tuple[str, float, str, str]]]:
    """Per load and figure: each side's median and the median of the rounds' B / A."""
    figures: dict[str, float] = {}
    rows: list[tuple[str, float, str, str]] = []
    for name in loads:
        a, b = samples[(name, "a")], samples[(name, "b")]
        for key, unit in (("p50_ms", "ms"), ("rps", "req/s"), ("cpu_ms", "ms/req")):
            figures[f"{name}_{key}_a"] = round(median(r[key] for r in a), 3)
            figures[f"{name}_{key}_b"] = round(median(r[key] for r in b), 3)
            ratio = median(y[key] / x[key] for x, y in zip(a, b, strict=True))
            figures[f"{name}_{key}_ratio"] = round(ratio, 3)
            rows.append((f"{name} {key}, A", figures[f"{name}_{key}_a"], unit, ""))
            rows.append((f"{name} {key}, B", figures[f"{name}_{key}_b"], unit, ""))
            rows.append((f"{name} {key}, B / A (median of rounds)", ratio, "x", ""))
        errors = sum(r["errors"] for r in a + b)
        rows.append((f"{name} answers other than 200", float(errors), "", "0"))
    return figures, rows


if __name__ == "__main__":
    main()
