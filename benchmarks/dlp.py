"""DLP benchmark: how fast answers are classified, and what DLP adds to an answer at the
gateway.

Classification: realistic records (benchmarks/_records.py: CRM customers with names, e-mail,
phone numbers, addresses, some IBANs and card numbers; one in five a FHIR Patient) in pages of
50, classified in this process pinned to one core; records per second over every page, and
the time per KB of JSON text, p50 over pages.

Gateway: a page of 50 CRM customers (about 20 KB; no patients: the default pack lets no
agent have 50 PHI records at once) from a local mTLS upstream, through two gateways
(`warden gateway`, each its own process) running at once, one with DLP on and one with it off
(WARDEN_DLP_ENABLED=false), at 1 connection, in alternating short slices; the added latency is
the median over pairs of slices of the difference of their p50s. Direct to the upstream is
shown for scale.

    python benchmarks/dlp.py [--quick] [--json PATH]

JSON keys: classify_records_per_s, classify_p50_us_per_kb, direct_p50_ms_50_records,
gateway_p50_ms_dlp_off, gateway_p50_ms_dlp_on, gateway_added_p50_ms_dlp, gateway_errors.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_args, percentile, pin_to_one_core, report, unpin
from _records import records
from _rig import HERE, free_port, gateway, load, setup, wait_for_port
from warden.trust.classify import classify

PAGE = 50


def classification(pages: int) -> tuple[float, float]:
    """(records per second, p50 microseconds per KB), classifying decoded pages."""
    data = records(pages * PAGE, seed=11)
    documents = [{"data": data[i : i + PAGE]} for i in range(0, len(data), PAGE)]
    sizes = [len(orjson.dumps(d)) / 1024 for d in documents]
    classify(documents[0])  # patterns compiled, phone plans loaded
    per_kb, total = [], 0.0
    for document, size in zip(documents, sizes, strict=True):
        start = time.perf_counter()
        classify(document)
        elapsed = time.perf_counter() - start
        total += elapsed
        per_kb.append(elapsed * 1e6 / size)
    return len(data) / total, percentile(per_kb, 50)


def main() -> None:
    args = parse_args(__doc__ or "")
    seconds = 4.0 if args.quick else 12.0
    pairs, slice_s = (12, 0.6) if args.quick else (40, 1.0)
    core = pin_to_one_core()
    rate, us_per_kb = classification(40 if args.quick else 400)
    unpin()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="warden-dlp-bench-") as tmp:
        root = Path(tmp)
        state, upstream_creds, _, agent_creds = setup(root)
        port = free_port()
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "_upstream.py"), str(upstream_creds), str(port)]
        )
        routes = root / "routes.yaml"
        routes.write_text(
            json.dumps(
                {
                    "routes": [
                        {
                            "prefix": "/crm",
                            "upstream": f"https://127.0.0.1:{port}",
                            "upstream_id": "spiffe://bench.example/svc/ledger",
                            "resource": {
                                "type": "Endpoint",
                                "id": "crm/customers",
                                "properties": {"domain": "finance", "classification": "internal"},
                            },
                        }
                    ]
                }
            )
        )
        try:
            wait_for_port(port)
            results["direct"] = load(
                f"https://127.0.0.1:{port}/crm/records", agent_creds, 1, seconds / 2
            )
            # Both gateways up at once, measured in alternating slices: this machine's speed
            # drifts by more than DLP costs, and a drift hits both sides of each pair alike.
            ports = {"off": free_port(), "on": free_port()}
            processes = [
                gateway(
                    state,
                    routes,
                    ports[side],
                    WARDEN_DLP_ENABLED=str(side == "on").lower(),
                    WARDEN_GATEWAY_NAME=f"gateway-dlp-{side}",  # credentials of its own
                )
                for side in ("off", "on")
            ]
            try:
                urls = {}
                for side, gateway_port in ports.items():
                    wait_for_port(gateway_port)
                    urls[side] = f"https://localhost:{gateway_port}/crm/records"
                    load(urls[side], agent_creds, 2, 1.0)  # up and warm
                for _ in range(pairs):
                    for side in ("off", "on"):
                        results.setdefault(side, []).append(
                            load(urls[side], agent_creds, 1, slice_s)
                        )
            finally:
                for process in processes:
                    process.terminate()
                    process.wait()
        finally:
            upstream.terminate()
            upstream.wait()

    added = [
        on["p50_ms"] - off["p50_ms"] for off, on in zip(results["off"], results["on"], strict=True)
    ]
    off_p50 = statistics.median(r["p50_ms"] for r in results["off"])
    on_p50 = statistics.median(r["p50_ms"] for r in results["on"])
    figures = {
        "classify_records_per_s": round(rate),
        "classify_p50_us_per_kb": round(us_per_kb, 1),
        "direct_p50_ms_50_records": round(results["direct"]["p50_ms"], 3),
        "gateway_p50_ms_dlp_off": round(off_p50, 3),
        "gateway_p50_ms_dlp_on": round(on_p50, 3),
        "gateway_added_p50_ms_dlp": round(statistics.median(added), 3),
        "gateway_errors": sum(r["errors"] for side in ("off", "on") for r in results[side])
        + results["direct"]["errors"],
    }
    rows = [
        (f"records classified per second ({core})", figures["classify_records_per_s"], "rec/s",
         ">= 20000"),
        ("classification time per KB of JSON, p50", figures["classify_p50_us_per_kb"], "us", ""),
        ("50 records direct, p50", figures["direct_p50_ms_50_records"], "ms", ""),
        ("50 records through the gateway, DLP off, p50", figures["gateway_p50_ms_dlp_off"], "ms",
         ""),
        ("50 records through the gateway, DLP on, p50", figures["gateway_p50_ms_dlp_on"], "ms", ""),
        ("added by DLP, p50", figures["gateway_added_p50_ms_dlp"], "ms", "<= 0.5"),
        ("answers other than 200", figures["gateway_errors"], "", "0"),
    ]  # fmt: skip
    report(f"DLP benchmark ({'quick' if args.quick else 'full'})", rows, figures, args.json)


if __name__ == "__main__":
    main()
