"""The Redis client every shared piece uses: short timeouts, so a request never hangs on
Redis; what needs Redis and cannot reach it fails closed, in its own way."""

from __future__ import annotations

import redis

PREFIX = "warden:"
TIMEOUT_S = 0.25  # a request waits this long for Redis at most


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_S,
        socket_connect_timeout=TIMEOUT_S,
        health_check_interval=30,
    )
