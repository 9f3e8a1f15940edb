"""Containment: from the request that trips a playbook to the moment every enforcement point
denies the agent, while the agent keeps sending at 32 connections.

Each trial is a fresh agent of the finance group calling the ledger through the gateways at
32 connections. One request goes to payroll: the default policy pack denies it
(``payroll-only-hr``) and a playbook watching that policy quarantines the agent. Measured:

- the time from sending that request to the first refusal on every gateway (a probe
  connection per gateway, kept open), over the trials;
- leaked requests: allowed answers to requests sent after the quarantine committed (the time
  the playbook run recorded for its quarantine step, read from the store afterwards). A
  request already past its decision at that moment may finish; none sent later may pass.

Embedded: one `warden gateway` process on SQLite (the gateway runs the playbook). Across
processes: a control plane and two gateways on PostgreSQL and Redis; the trigger goes to one
gateway, the other learns of the quarantine through the revocation fence.

  python benchmarks/containment.py [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from _common import parse_args, percentile, report
from _rig import HERE, context_for, free_port, gateway, stop_processes, wait_for_port
from scale import control_plane
from scale import setup as domain

TRUST_DOMAIN = "bench.example"
CONNECTIONS = 32
PLAYBOOKS = {
    "manifest.yaml": "name: containment-bench\nversion: 1\n",
    "payroll.yaml": (
        "name: payroll-attempt\n"
        "description: a finance agent that reaches for payroll is quarantined\n"
        "trigger:\n  policy: {ids: [payroll-only-hr], decision: deny}\n"
        "actions:\n  - quarantine: {}\n"
    ),
}


def routes_file(root: Path, upstream_port: int) -> Path:
    def route(prefix: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {
            "prefix": prefix,
            "upstream": f"https://127.0.0.1:{upstream_port}",
            "upstream_id": f"spiffe://{TRUST_DOMAIN}/svc/ledger",
            "resource": {"type": "Endpoint", "id": prefix.strip("/"), "properties": properties},
        }

    path = root / "routes.json"
    finance = {"domain": "finance", "classification": "internal"}
    payroll = {**finance, "tags": ["payroll"]}
    path.write_text(json.dumps({"routes": [route("/ledger", finance), route("/payroll", payroll)]}))
    return path


def context(creds: Path) -> ssl.SSLContext:
    return context_for(creds, creds / "bundle.pem")


@dataclass
class Trial:
    """Wall-clock times of one trial, and what the load got."""

    sent: float  # the triggering request left the agent
    answered: float  # its denial came back
    refused: float  # the last gateway's first refusal came back
    load: list[tuple[float, int]]  # (sent at, status) of every load request


async def trial(gateways: list[str], creds: Path) -> Trial:
    """One agent: load at 32 connections, the trigger, each gateway probed until it refuses."""
    sent: list[tuple[float, int]] = []
    stop = asyncio.Event()
    load = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context(creds), limit=0))
        for _ in gateways
    ]
    probes = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context(creds), limit=1))
        for _ in gateways
    ]

    async def caller(session: aiohttp.ClientSession, url: str) -> None:
        while not stop.is_set():
            begin = time.time()
            try:
                async with session.get(url) as response:
                    await response.read()
                    sent.append((begin, response.status))
            except aiohttp.ClientError:
                sent.append((begin, 0))

    async def refused(session: aiohttp.ClientSession, url: str, deadline: float) -> float:
        while time.time() < deadline:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    return time.time()
        return float("inf")

    try:
        for session, base in zip(probes, gateways, strict=True):  # warm, and the agent known
            async with session.get(f"{base}/ledger/x") as response:
                await response.read()
                assert response.status == 200, await response.text()
        callers = [
            asyncio.create_task(
                caller(load[i % len(gateways)], f"{gateways[i % len(gateways)]}/ledger/x")
            )
            for i in range(CONNECTIONS)
        ]
        await asyncio.sleep(0.3)
        started = time.time()
        async with probes[0].get(f"{gateways[0]}/payroll/x") as response:
            await response.read()
            assert response.status == 403, await response.text()
        answered = time.time()
        found = await asyncio.gather(
            *(
                refused(s, f"{base}/ledger/x", started + 5)
                for s, base in zip(probes, gateways, strict=True)
            )
        )
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*callers)
    finally:
        for session in (*load, *probes):
            await session.close()
    return Trial(started, answered, max(found), sent)


def committed_at(store_url: str, agent: str) -> float:
    """When the quarantine of ``agent`` committed, as its playbook run recorded it."""
    from warden.response.records import Runs
    from warden.store import open_store

    store = open_store(store_url, migrate=False)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for run in Runs(store).list(agent=agent):
                for step in run["steps"]:
                    if step["action"] == "quarantine" and step["outcome"] == "done":
                        at = datetime.fromisoformat(step["at"].replace("Z", "+00:00"))
                        return at.timestamp()
            time.sleep(0.05)
    finally:
        store.dispose()
    raise RuntimeError(f"no quarantine of {agent} on record")


@dataclass
class Figures:
    committed_ms: list[float] = field(default_factory=list)  # trigger sent -> quarantine committed
    refused_ms: list[float] = field(default_factory=list)  # trigger sent -> refusal seen everywhere
    answered_ms: list[float] = field(default_factory=list)  # the trigger's own round trip
    leaked: int = 0
    sent: int = 0


def measure(gateways: list[str], made: dict[str, Any], store_url: str, trials: int) -> Figures:
    """Containment over ``trials`` agents."""
    figures = Figures()
    for i in range(trials):
        name = f"bot-{i}"
        found = asyncio.run(trial(gateways, made[name]))
        at = committed_at(store_url, name)
        figures.committed_ms.append((at - found.sent) * 1000)
        figures.refused_ms.append((found.refused - found.sent) * 1000)
        figures.answered_ms.append((found.answered - found.sent) * 1000)
        figures.leaked += sum(1 for began, status in found.load if status == 200 and began > at)
        figures.sent += len(found.load)
    return figures


def upstream_process(made: dict[str, Any], port: int) -> Any:
    return subprocess.Popen(
        [sys.executable, str(HERE / "_upstream.py"), str(made["upstream"]), str(port)]
    )


def embedded(root: Path, trials: int) -> Figures:
    root.mkdir()
    made = domain(root, None, trials)  # type: ignore[arg-type]
    playbooks = write_playbooks(root)
    upstream_port, port = free_port(), free_port()
    processes = [upstream_process(made, upstream_port)]
    try:
        processes.append(
            gateway(
                made["state"],
                routes_file(root, upstream_port),
                port,
                WARDEN_PLAYBOOKS=str(playbooks),
            )
        )
        wait_for_port(upstream_port)
        wait_for_port(port)
        url = f"sqlite:///{(made['state'] / 'warden.db').resolve()}"
        return measure([f"https://localhost:{port}"], made, url, trials)
    finally:
        stop_processes(processes)


def across_processes(root: Path, trials: int) -> Figures:
    from tests.support.postgres import start_cluster
    from tests.support.redis import start_redis

    root.mkdir()
    cluster = start_cluster()
    redis = start_redis()
    processes: list[Any] = []
    try:
        url = cluster.dsn("postgres")
        made = domain(root, url, trials)
        env = {
            "WARDEN_DATABASE_URL": url,
            "WARDEN_REDIS_URL": redis.url,
            "WARDEN_PLAYBOOKS": str(write_playbooks(root)),
        }
        upstream_port, plane_port = free_port(), free_port()
        processes.append(upstream_process(made, upstream_port))
        processes.append(control_plane(made["state"], plane_port, env))
        routes = routes_file(root, upstream_port)
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            processes.append(
                gateway(made["state"], routes, port, WARDEN_GATEWAY_NAME=f"gateway-{i}", **env)
            )
        for port in (upstream_port, plane_port, *ports):
            wait_for_port(port)
        return measure([f"https://localhost:{p}" for p in ports], made, url, trials)
    finally:
        stop_processes(processes)
        redis.kill()
        cluster.stop()


def write_playbooks(root: Path) -> Path:
    directory = root / "playbooks"
    directory.mkdir(exist_ok=True)
    for name, text in PLAYBOOKS.items():
        (directory / name).write_text(text)
    return directory


def main() -> None:
    args = parse_args(__doc__ or "")
    trials = 10 if args.quick else 100
    with tempfile.TemporaryDirectory(prefix="warden-contain-") as tmp:
        one = embedded(Path(tmp) / "embedded", trials)
        multi = across_processes(Path(tmp) / "multi", trials)

    def p(values: list[float], q: float) -> float:
        return round(statistics.median(values) if q == 50 else percentile(values, q), 2)

    figures = {
        "contain_p50_ms": p(one.committed_ms, 50),
        "contain_p99_ms": p(one.committed_ms, 99),
        "contain_p50_ms_multi": p(multi.committed_ms, 50),
        "contain_p99_ms_multi": p(multi.committed_ms, 99),
        "refusal_seen_p99_ms": p(one.refused_ms, 99),
        "refusal_seen_p99_ms_multi": p(multi.refused_ms, 99),
        "trigger_round_trip_p50_ms": p(one.answered_ms, 50),
        "trigger_round_trip_p50_ms_multi": p(multi.answered_ms, 50),
        "leaked_requests_after_trigger": one.leaked + multi.leaked,
        "load_requests": one.sent + multi.sent,
        "trials": trials,
    }
    report(
        f"Containment: trigger to every enforcement point denying ({trials} trials, "
        f"{CONNECTIONS} connections){' (quick)' if args.quick else ''}",
        [
            (
                "embedded: trigger sent -> quarantine committed p50",
                figures["contain_p50_ms"],
                "ms",
                "",
            ),
            (
                "embedded: trigger sent -> quarantine committed p99",
                figures["contain_p99_ms"],
                "ms",
                "<= 100",
            ),
            (
                "across processes: trigger -> committed p50",
                figures["contain_p50_ms_multi"],
                "ms",
                "",
            ),
            (
                "across processes: trigger -> committed p99",
                figures["contain_p99_ms_multi"],
                "ms",
                "<= 300",
            ),
            ("embedded: trigger -> a refusal seen p99", figures["refusal_seen_p99_ms"], "ms", ""),
            (
                "across processes: -> refusals seen on both p99",
                figures["refusal_seen_p99_ms_multi"],
                "ms",
                "",
            ),
            (
                "baseline: the trigger's own round trip p50",
                figures["trigger_round_trip_p50_ms"],
                "ms",
                "",
            ),
            (
                "baseline: same, across processes p50",
                figures["trigger_round_trip_p50_ms_multi"],
                "ms",
                "",
            ),
            (
                "requests allowed after the quarantine committed",
                figures["leaked_requests_after_trigger"],
                "",
                "0",
            ),
            ("load requests sent meanwhile", figures["load_requests"], "", ""),
        ],
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
