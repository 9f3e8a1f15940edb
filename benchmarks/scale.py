"""Warden as separate processes: a control plane (`warden serve`) and gateways (`warden
gateway`) on one PostgreSQL and one Redis, each process with its own SVID.

Measured in one run:
- revocation propagation: an operator revokes an agent through the control plane's API; each
  gateway is probed on a keep-alive connection until it refuses; the time from the API's
  answer (the commit) to the first refusal. Two gateways read the revocation fence in Redis;
  a third follows the principal feed alone (the baseline: how far the feed lags);
- leaked requests: 32 connections across both fenced gateways call as an agent that is then
  revoked; a leak is an allowed answer to a request sent after the revocation committed;
- throughput at 32 connections through one gateway, then through two at once, and the
  gateways' CPU per request (this machine has two cores: the load generator, the upstream and
  the gateways share them).

  python benchmarks/scale.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from _common import parse_args, percentile, report
from _rig import (
    HERE,
    context_for,
    cpu_seconds,
    free_port,
    gateway,
    load,
    stop_processes,
    trust_domain,
    wait_for_port,
    write_svid,
)

TRUST_DOMAIN = "bench.example"


def setup(root: Path, database_url: str, agents: int) -> dict[str, Any]:
    """A trust domain on PostgreSQL: the upstream's SVID, an operator's, agents'."""
    authority, upstream = trust_domain(root, database_url)
    settings, store = authority.settings, authority.store
    bundle = authority.ca.bundle.to_pem()
    authority.operators.add("ops", role="admin", created_by="bench")
    operator = write_svid(root / "ops", authority.issuer.issue_operator_x509("ops"), bundle)
    creds = {}
    for name in ["load-bot", "victim-bot", *(f"bot-{i}" for i in range(agents))]:
        authority.agents.register(name, owner="bench", groups=["finance"])
        creds[name] = write_svid(root / name, authority.issuer.issue_agent_x509(name), bundle)
    store.dispose()
    return {"state": settings.state_dir, "upstream": upstream, "operator": operator, **creds}


def control_plane(state: Path, port: int, env: dict[str, str]) -> Any:
    return subprocess.Popen(
        [
            sys.executable, "-m", "warden.cli.main", "--state-dir", str(state), "serve",
            "--host", "127.0.0.1", "--port", str(port),
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )  # fmt: skip


def client_context(creds: Path) -> ssl.SSLContext:
    return context_for(creds, creds / "bundle.pem")


def revoke(plane: str, operator: Path, name: str) -> float:
    """Revoke through the control plane's API; the time its answer arrived (the commit)."""
    with httpx.Client(base_url=plane, timeout=10, verify=client_context(operator)) as client:
        answer = client.post(f"/v1/agents/{name}/revoke", json={"reason": "bench"})
        done = time.perf_counter()
        answer.raise_for_status()
    return done


async def first_refusal(session: aiohttp.ClientSession, url: str, stop: float) -> float:
    """Call ``url`` until it refuses; when the refusal arrived."""
    while time.perf_counter() < stop:
        async with session.get(url) as response:
            await response.read()
            if response.status != 200:
                return time.perf_counter()
    return float("inf")


async def propagation(
    urls: dict[str, str], creds: Path, plane: str, operator: Path, name: str
) -> dict[str, float]:
    """Milliseconds from the commit to each gateway's first refusal of ``name``."""
    sessions = {
        side: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_context(creds), limit=1)
        )
        for side in urls
    }
    try:
        for side, url in urls.items():  # warm: a connection open and the agent known
            async with sessions[side].get(url) as response:
                await response.read()
                assert response.status == 200, await response.text()
        committed = await asyncio.to_thread(revoke, plane, operator, name)
        stop = committed + 5.0
        found = await asyncio.gather(
            *(first_refusal(sessions[side], url, stop) for side, url in urls.items())
        )
        return {
            side: max(0.0, (at - committed) * 1000) for side, at in zip(urls, found, strict=True)
        }
    finally:
        for session in sessions.values():
            await session.close()


async def leaks(
    urls: list[str], creds: Path, plane: str, operator: Path, seconds: float
) -> dict[str, int]:
    """32 connections calling as ``victim-bot``; revoked halfway. Answers counted by when
    their request was sent against when the revocation committed."""
    sent: list[tuple[float, float, int]] = []  # (sent, received, status)
    stop = time.perf_counter() + seconds
    committed: list[float] = []

    async def caller(session: aiohttp.ClientSession, url: str) -> None:
        while time.perf_counter() < stop:
            begin = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    sent.append((begin, time.perf_counter(), response.status))
            except aiohttp.ClientError:
                sent.append((begin, time.perf_counter(), 0))

    async def revoker() -> None:
        await asyncio.sleep(seconds / 2)
        committed.append(await asyncio.to_thread(revoke, plane, operator, "victim-bot"))

    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(creds), limit=16))
        for _ in urls
    ]
    try:
        await asyncio.gather(
            revoker(),
            *(caller(sessions[i % 2], urls[i % 2]) for i in range(32)),
        )
    finally:
        for session in sessions:
            await session.close()
    at = committed[0]
    return {
        "leaked": sum(1 for s, _, status in sent if status == 200 and s > at),
        "in_flight_finished": sum(1 for s, r, status in sent if status == 200 and s <= at < r),
        "allowed_before": sum(1 for s, r, status in sent if status == 200 and r <= at),
        "refused_after": sum(1 for s, _, status in sent if status != 200 and s > at),
    }


def main() -> None:
    # The tests' throwaway servers (the repository root is on the path through _rig).
    from tests.support.postgres import start_cluster
    from tests.support.redis import start_redis

    args = parse_args(__doc__ or "")
    trials = 10 if args.quick else 40
    seconds = 3.0 if args.quick else 8.0
    with tempfile.TemporaryDirectory(prefix="warden-scale-") as tmp:
        root = Path(tmp)
        cluster = start_cluster()
        redis = start_redis()
        processes: list[Any] = []
        try:
            database_url = cluster.dsn("postgres")
            made = setup(root, database_url, trials)
            state = made["state"]
            env = {"WARDEN_DATABASE_URL": database_url}
            fenced = {**env, "WARDEN_REDIS_URL": redis.url}
            upstream_port, plane_port = free_port(), free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "_upstream.py"),
                        str(made["upstream"]),
                        str(upstream_port),
                    ]
                )
            )
            processes.append(control_plane(state, plane_port, fenced))
            routes = root / "routes.json"
            routes.write_text(
                json.dumps(
                    {
                        "routes": [
                            {
                                "prefix": "/ledger",
                                "upstream": f"https://127.0.0.1:{upstream_port}",
                                "upstream_id": f"spiffe://{TRUST_DOMAIN}/svc/ledger",
                                "resource": {
                                    "type": "Endpoint",
                                    "id": "ledger/invoices",
                                    "properties": {
                                        "domain": "finance",
                                        "classification": "internal",
                                    },
                                },
                            }
                        ]
                    }
                )
            )
            ports = {"a": free_port(), "b": free_port(), "feed-only": free_port()}
            gateways = {
                side: gateway(
                    state,
                    routes,
                    port,
                    WARDEN_GATEWAY_NAME=f"gateway-{side}",
                    **(env if side == "feed-only" else fenced),
                )
                for side, port in ports.items()
            }
            processes += list(gateways.values())
            for port in (upstream_port, plane_port, *ports.values()):
                wait_for_port(port)
            plane = f"https://localhost:{plane_port}"
            urls = {side: f"https://localhost:{port}/ledger/x" for side, port in ports.items()}

            # Revocation propagation, fenced gateways and the feed-only one.
            found: dict[str, list[float]] = {side: [] for side in urls}
            for i in range(trials):
                name = f"bot-{i}"
                for side, ms in asyncio.run(
                    propagation(urls, made[name], plane, made["operator"], name)
                ).items():
                    found[side].append(ms)
            fenced_ms = found["a"] + found["b"]

            # Throughput: one gateway, then two at once; CPU of the gateways meanwhile.
            load(urls["a"], made["load-bot"], 4, 1.0)  # warm
            one = load(urls["a"], made["load-bot"], 32, seconds)
            before = {side: cpu_seconds(gateways[side].pid) for side in ("a", "b")}
            results: dict[str, dict[str, float]] = {}

            def run(side: str) -> None:
                results[side] = load(urls[side], made["load-bot"], 16, seconds)

            threads = [threading.Thread(target=run, args=(side,)) for side in ("a", "b")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            cpu = sum(cpu_seconds(gateways[side].pid) - before[side] for side in ("a", "b"))
            two_rps = results["a"]["rps"] + results["b"]["rps"]
            served = two_rps * seconds

            leaked = asyncio.run(
                leaks([urls["a"], urls["b"]], made["victim-bot"], plane, made["operator"], seconds)
            )
        finally:
            stop_processes(processes)
            redis.kill()
            cluster.stop()

    figures = {
        "revocation_p50_ms_multi": round(statistics.median(fenced_ms), 2),
        "revocation_p99_ms_multi": round(percentile(fenced_ms, 99), 2),
        "revocation_p50_ms_feed_only": round(statistics.median(found["feed-only"]), 2),
        "revocation_p99_ms_feed_only": round(percentile(found["feed-only"], 99), 2),
        "leaked_requests_after_revoke": leaked["leaked"],
        "in_flight_finished_after_revoke": leaked["in_flight_finished"],
        "refused_after_revoke": leaked["refused_after"],
        "rps_1_gateway": round(one["rps"]),
        "rps_2_gateways": round(two_rps),
        "gateway_cpu_ms_per_req_multi": round(cpu / max(served, 1) * 1000, 3),
        "errors": int(one.get("errors", 0) + sum(r.get("errors", 0) for r in results.values())),
    }
    report(
        f"Scale: control plane + gateways as processes on PostgreSQL and Redis"
        f"{' (quick)' if args.quick else ''}",
        [
            (
                "revocation to refusal, fenced gateways p50",
                figures["revocation_p50_ms_multi"],
                "ms",
                "",
            ),
            (
                "revocation to refusal, fenced gateways p99",
                figures["revocation_p99_ms_multi"],
                "ms",
                "<= 250",
            ),
            ("baseline: feed-only gateway p50", figures["revocation_p50_ms_feed_only"], "ms", ""),
            ("baseline: feed-only gateway p99", figures["revocation_p99_ms_feed_only"], "ms", ""),
            (
                "requests allowed after the commit (32 conns)",
                figures["leaked_requests_after_revoke"],
                "",
                "0",
            ),
            (
                "in flight at the commit, finished",
                figures["in_flight_finished_after_revoke"],
                "",
                "",
            ),
            ("refused after the commit", figures["refused_after_revoke"], "", ""),
            ("throughput, 1 gateway, 32 conns", figures["rps_1_gateway"], "req/s", ""),
            ("throughput, 2 gateways, 16 + 16 conns", figures["rps_2_gateways"], "req/s", ""),
            (
                "gateway CPU per request (2 gateways)",
                figures["gateway_cpu_ms_per_req_multi"],
                "ms",
                "",
            ),
            ("answers other than 200 under load", figures["errors"], "", "0"),
        ],
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
