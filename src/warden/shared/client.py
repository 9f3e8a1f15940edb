"""The Redis client every shared piece uses: short timeouts, so a request never hangs on
Redis; what needs Redis and cannot reach it fails closed, in its own way."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

PREFIX = "warden:"
TIMEOUT_S = 0.25  # a request waits this long for Redis at most


@dataclass(frozen=True)
class TlsFiles:
    """A process's SVID and the trust bundle, for a ``rediss://`` URL: the process proves who
    it is to Redis, and Redis's certificate (issued by the trust domain's CA) is checked."""

    certfile: Path
    keyfile: Path
    ca_file: Path

    def options(self) -> dict[str, Any]:
        return {
            "ssl_certfile": str(self.certfile),
            "ssl_keyfile": str(self.keyfile),
            "ssl_ca_certs": str(self.ca_file),
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
        }


def tls_options(url: str, tls: TlsFiles | None) -> dict[str, Any]:
    return tls.options() if tls is not None and url.startswith("rediss://") else {}


def connect(url: str, tls: TlsFiles | None = None) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_S,
        socket_connect_timeout=TIMEOUT_S,
        health_check_interval=30,
        **tls_options(url, tls),
    )


class Breaker:
    """Fail fast while Redis is down: after a failure, calls are refused at once for
    ``pause_s`` instead of each waiting out its timeout (on a gateway's event loop, a timeout
    per request would stall every request)."""

    def __init__(self, pause_s: float = 1.0) -> None:
        self.pause_s = pause_s
        self._down_until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._down_until

    def failed(self) -> None:
        self._down_until = time.monotonic() + self.pause_s


@dataclass(frozen=True)
class Prefetched:
    """What a gateway's gate read from Redis for the request being decided in this task."""

    agent: str
    counts: dict[str, int]  # its DLP windows
    risk: bytes  # the risk another enforcement point published for it (JSON), or b""


# Set by the gate in each request's own task (a context variable: each task sees its own),
# read by the windows and the shared risk when decide() asks for the same agent.
PREFETCHED: ContextVar[Prefetched | None] = ContextVar("warden_prefetched", default=None)
