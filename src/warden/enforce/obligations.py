"""Obligations a decision carries, applied by the enforcement point.

``throttle:N/m`` (or ``/s``, ``/h``): a token bucket per agent and route; an empty bucket turns
the allow into a deny answered with 429 and ``Retry-After``. ``approval``: the request is parked
and answered with its decision id. ``redact:FIELD``: the field is replaced in JSON responses,
at any depth. ``max_records:N``: a JSON array (top level, or the first array in the top-level
object) is cut to N records.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from warden import untrusted_json

REDACTED = "[REDACTED]"
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_throttle(obligation: str) -> tuple[float, float] | None:
    """``throttle:10/m`` -> (capacity 10, refill 10 per 60 s); None when malformed."""
    try:
        count, unit = obligation.split(":", 1)[1].split("/", 1)
        capacity = float(int(count))
        return capacity, capacity / UNITS[unit.strip()]
    except (ValueError, KeyError, IndexError):
        return None


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Throttle(Protocol):
    """Token buckets: in this process (:class:`Throttles`) or shared by every gateway
    (:class:`warden.shared.redis_state.RedisThrottles`)."""

    def take(self, agent: str, route: str, obligation: str) -> float: ...


@dataclass
class Throttles:
    """Token buckets per (agent, route, obligation)."""

    buckets: dict[tuple[str, str, str], _Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Callable[[], float] = time.monotonic  # seconds; a simulator drives its own

    def take(self, agent: str, route: str, obligation: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        parsed = parse_throttle(obligation)
        if parsed is None:
            return 60.0  # a malformed throttle fails closed
        capacity, rate = parsed
        now = self.clock()
        key = (agent, route, obligation)
        with self.lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate


def needs_body(obligations: tuple[str, ...]) -> bool:
    return any(o.startswith(("redact:", "max_records:")) for o in obligations)


def apply_to_body(obligations: tuple[str, ...], body: bytes) -> tuple[bytes, list[str]]:
    """Apply response obligations to a JSON body; returns the new body and what was done.
    A body that is not JSON cannot be inspected: it is refused (ValueError), never passed."""
    document = untrusted_json.loads(body)
    done: list[str] = []
    for obligation in obligations:
        kind, _, value = obligation.partition(":")
        if kind == "redact" and value:
            if _redact(document, value):
                done.append(obligation)
        elif kind == "max_records":
            limit = int(value)
            if _cap(document, limit):
                done.append(obligation)
    return json.dumps(document, separators=(",", ":")).encode(), done


def _redact(node: Any, key: str) -> bool:
    changed = False
    if isinstance(node, dict):
        for name in list(node):
            if name == key:
                node[name] = REDACTED
                changed = True
            else:
                changed |= _redact(node[name], key)
    elif isinstance(node, list):
        for item in node:
            changed |= _redact(item, key)
    return changed


def _cap(document: Any, limit: int) -> bool:
    if isinstance(document, list):
        if len(document) > limit:
            del document[limit:]
            return True
        return False
    if isinstance(document, dict):
        for value in document.values():
            if isinstance(value, list):
                if len(value) > limit:
                    del value[limit:]
                    return True
                return False
    return False
