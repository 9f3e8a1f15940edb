"""Prometheus metrics and health probes for every Warden process.

Each server (control plane, gateway) has its own registry, so several can live in one
process (tests, ``warden up``) without colliding. What is measured: decisions by enforcement
point and outcome, the latency of ``decide()`` and of whole gateway requests, the principal
feed's sequence and age (how stale revocations could be), the age of the policy snapshot, and
a readiness verdict with its reasons.

The probes and ``/metrics`` are served on a plain-HTTP listener of their own
(``metrics_host``/``metrics_port``; port 0 picks a free one), kept apart from the mTLS ports so
that a scraper and a load balancer's health check need no client certificate, and nothing of
the request path is reachable through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets for a decision (microseconds to milliseconds) and for a whole request.
DECIDE_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05)
REQUEST_BUCKETS = (5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

Check = Callable[[], str | None]  # None: fine; else why not ready


@dataclass
class Metrics:
    """The metrics of one server, and the checks that make it ready."""

    component: str  # "gateway" | "control-plane"
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    checks: dict[str, Check] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        r = self.registry
        self.decisions = Counter(
            "warden_decisions",
            "Decisions made, by enforcement point and outcome.",
            ["component", "decision"],
            registry=r,
        )
        self.decide_seconds = Histogram(
            "warden_decide_seconds",
            "Time in decide(), policy evaluation with live context.",
            ["component"],
            buckets=DECIDE_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "warden_request_seconds",
            "Whole requests through the gateway, from the head read to the answer sent.",
            ["component"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.feed_sequence = Gauge(
            "warden_feed_sequence", "Last principal-feed entry applied.", registry=r
        )
        self.feed_age = Gauge(
            "warden_feed_age_seconds",
            "Seconds since the principal feed was last caught up (revocations this stale).",
            registry=r,
        )
        self.snapshot_age = Gauge(
            "warden_policy_snapshot_age_seconds",
            "Seconds since the active policy snapshot was built.",
            registry=r,
        )
        self.ready = Gauge("warden_ready", "1 when the process is ready to serve.", registry=r)
        self._readings: list[Callable[[], None]] = []
        # Bound once: a label lookup per request is work the request path need not do.
        self._outcomes = {d: self.decisions.labels(self.component, d) for d in ("allow", "deny")}
        self._decide = self.decide_seconds.labels(self.component)
        self._request = self.request_seconds.labels(self.component)

    def decided(self, decision: str, seconds: float | None = None) -> None:
        counter = self._outcomes.get(decision) or self.decisions.labels(self.component, decision)
        counter.inc()
        if seconds is not None:
            self.timed_decide(seconds)

    def timed_decide(self, seconds: float) -> None:
        self._decide.observe(seconds)

    def timed_request(self, seconds: float) -> None:
        self._request.observe(seconds)

    def reading(self, read: Callable[[], None]) -> None:
        """A gauge refresh run at each scrape and probe (ages are read when asked for)."""
        self._readings.append(read)

    def readiness(self) -> list[str]:
        """Why this process is not ready (empty: it is)."""
        for read in self._readings:
            read()
        problems = []
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:  # a check that cannot run is a reason not to be ready
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                problems.append(f"{name}: {problem}")
        self.ready.set(0 if problems else 1)
        return problems

    def exposition(self) -> bytes:
        self.readiness()
        return bytes(generate_latest(self.registry))


class ProbeApp:
    """``/livez`` (the event loop answers), ``/readyz`` (every check passes) and ``/metrics``;
    anything else is 404. A plain ASGI app: nothing here needs a framework."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _answer(send, 405, b"method not allowed\n")
        elif path == "/livez":
            await _answer(send, 200, b"ok\n")
        elif path == "/readyz":
            problems = self.metrics.readiness()
            body = ("ready\n" if not problems else "\n".join(problems) + "\n").encode()
            await _answer(send, 503 if problems else 200, body)
        elif path == "/metrics":
            await _answer(send, 200, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        else:
            await _answer(send, 404, b"not found\n")


async def _answer(
    send: Any, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def probe_server(metrics: Metrics, host: str, port: int) -> uvicorn.Server:
    """The probe listener, to serve beside the main server on the same event loop."""
    config = uvicorn.Config(
        ProbeApp(metrics),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        interface="asgi3",
    )
    return uvicorn.Server(config)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (for port 0)."""
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    return int(server.config.port)


def process_metrics(component: str, status: Any, engine: Any) -> Metrics:
    """The metrics and readiness checks every deciding process has: a policy loaded, the
    principal feed (``status``, a :class:`~warden.identity.feed.PrincipalView`) within its
    bound (a stale view cannot see revocations)."""
    metrics = Metrics(component)

    def policy() -> str | None:
        return None if engine.snapshot is not None else "no policy bundle is active"

    def feed() -> str | None:
        age, bound = status.age_s, status.max_staleness_s
        return None if age <= bound else f"principal feed {age:.1f} s old (bound {bound} s)"

    def read() -> None:
        metrics.feed_sequence.set(status.sequence)
        metrics.feed_age.set(status.age_s)
        metrics.snapshot_age.set(time.monotonic() - engine.built_at)

    metrics.checks.update({"policy": policy, "principal feed": feed})
    metrics.reading(read)
    return metrics
