"""Risk shared by every enforcement point: each publishes its engine's score for an agent to
Redis when it moves, and each decision reads the agent's highest score, its own or one
another gateway published (faded since with the same half-life), so an agent that acts out
of character on one gateway is restricted on all of them at its next request.

On a gateway the published score arrives with the request's other shared state, in the
gate's one round trip (:mod:`warden.shared.gate`); elsewhere (the control plane's decision
API) it is read when asked for. Redis unreachable: each engine's own score still counts.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

import redis

from warden.policy.snapshot import Signal
from warden.risk.engine import RiskEngine
from warden.risk.score import HALF_LIFE_S, MAX_SCORE
from warden.shared.client import PREFETCHED, PREFIX, Breaker

log = logging.getLogger("warden.shared")
KEEP_S = 2 * 3600  # a published score has faded to nothing long before this


def risk_key(agent: str) -> str:
    return f"{PREFIX}risk:{agent}"


class SharedRisk(Mapping[str, Signal]):
    """The ``risk`` source of a policy engine whose enforcement point shares risk."""

    def __init__(
        self, local: RiskEngine, client: redis.Redis, breaker: Breaker | None = None
    ) -> None:
        self.local = local
        self.client = client
        self.breaker = breaker or Breaker()
        self._outbox: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        threading.Thread(target=self._send, daemon=True, name="warden-risk-share").start()
        local.share = self.publish

    def publish(self, agent: str, score: int, factors: list[list[Any]], at: float) -> None:
        """Queued: a request that moved a score never waits for Redis."""
        self._outbox.put((agent, json.dumps({"score": score, "factors": factors, "at": at})))

    def _send(self) -> None:
        while True:
            agent, record = self._outbox.get()
            try:
                self.client.set(risk_key(agent), record, ex=KEEP_S)
            except redis.RedisError as exc:
                self.breaker.failed()
                log.warning("risk of %s not shared: %s", agent, exc)

    def __getitem__(self, agent: str) -> Signal:
        own = self.local[agent]
        published = self._published(agent)
        if not published:
            return own
        try:
            record = json.loads(published)
            fade = 0.5 ** (max(0.0, self.local.clock() - float(record["at"])) / HALF_LIFE_S)
            score = min(MAX_SCORE, round(int(record["score"]) * fade))
            factors = [[str(w), round(int(p) * fade)] for w, p in record["factors"]]
        except (ValueError, KeyError, TypeError):
            return own  # a record not of ours: this engine's score stands
        if score <= int(own.values.get("score", 0)):
            return own
        return Signal({"score": score, "factors": factors}, own.at)

    def _published(self, agent: str) -> bytes:
        prefetched = PREFETCHED.get()
        if prefetched is not None and prefetched.agent == agent:
            return prefetched.risk
        if self.breaker.open:
            return b""
        try:
            return cast(bytes, self.client.get(risk_key(agent)) or b"")
        except redis.RedisError:
            self.breaker.failed()
            return b""

    def get(self, agent: str, default: Any = None) -> Signal:
        return self[agent]

    def __iter__(self) -> Iterator[str]:
        return iter(self.local)

    def __len__(self) -> int:
        return len(self.local)
