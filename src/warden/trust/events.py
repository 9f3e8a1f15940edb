"""Trust events (a DLP window exceeded, a bulk export, a residency breach, a health change)
for whoever subscribes: the response engine, the decision log, tests. Subscribers are called
in the publisher's thread and must not block; one that raises is logged and kept."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from warden.clock import isoformat, utcnow

log = logging.getLogger("warden.trust")
Subscriber = Callable[["TrustEvent"], None]


@dataclass(frozen=True)
class TrustEvent:
    kind: str  # dlp_window_exceeded | bulk_export | residency_breach | health_changed | ...
    agent: str
    detail: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: isoformat(utcnow()))

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "agent": self.agent, "at": self.at, **self.detail}


class TrustEvents:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def publish(self, event: TrustEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:
                log.error("a trust event subscriber failed on %s: %s", event.kind, exc)
