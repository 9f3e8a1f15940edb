"""What a gateway asks Redis for each request, in one asynchronous round trip: whether the
revocation fence refuses the credential, and the agent's DLP counts for the decision.

Asked before ``decide()`` in the request's own task, so the event loop never waits on Redis
and a decision reads the counts from memory: :data:`PREFETCHED` holds them for the task (a
context variable: each request's task sees its own). Redis unreachable: the answer is None,
the fence is skipped (the principal feed alone bounds revocations) and the DLP counts are
unknown (the default pack refuses sensitive data).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

import redis
import redis.asyncio

from warden.shared.client import PREFIX, TIMEOUT_S, Breaker, TlsFiles, tls_options
from warden.shared.redis_state import RedisWindows
from warden.shared.risk import risk_key
from warden.trust.windows import CLASSES

log = logging.getLogger("warden.shared")

# KEYS[1]: the principal's fence, KEYS[2]: the credential's, KEYS[3]: the agent's shared
# risk, KEYS[4..]: DLP hashes per class.
GATE = """
local t = redis.call('TIME')
local second = tonumber(t[1])
local minute = math.floor(second / 60)
local out = {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '',
             redis.call('GET', KEYS[3]) or ''}
for i = 4, #KEYS do
  local fields = redis.call('HGETALL', KEYS[i])
  local m, h = 0, 0
  for j = 1, #fields, 2 do
    local name, count = fields[j], tonumber(fields[j + 1])
    local kind, at = string.sub(name, 1, 1), tonumber(string.sub(name, 2))
    if kind == 's' and at > second - 60 then m = m + count end
    if kind == 'm' and at > minute - 60 then h = h + count end
  end
  table.insert(out, m)
  table.insert(out, h)
end
return out
"""


@dataclass(frozen=True)
class Prefetched:
    """What the gate read for the request being decided in this task."""

    agent: str
    counts: dict[str, int]  # its DLP windows
    risk: bytes  # the risk another enforcement point published for it (JSON), or b""


PREFETCHED: ContextVar[Prefetched | None] = ContextVar("warden_prefetched", default=None)


@dataclass(frozen=True)
class GateView:
    fenced: str | None  # why the fence refuses the credential, or None
    counts: dict[str, int]


class SharedGate:
    def __init__(
        self, url: str, breaker: Breaker | None = None, tls: TlsFiles | None = None
    ) -> None:
        self.client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            **tls_options(url, tls),
        )
        self._script = self.client.register_script(GATE)
        self.breaker = breaker or Breaker()

    async def look(self, spiffe_id: str, credential_id: str) -> GateView | None:
        keys = [
            f"{PREFIX}fence:p:{spiffe_id}",
            f"{PREFIX}fence:c:{credential_id}",
            risk_key(spiffe_id),
            *(RedisWindows.key(spiffe_id, c) for c in CLASSES),
        ]
        if self.breaker.open:
            PREFETCHED.set(None)
            return None
        try:
            principal, credential, risk, *sums = await self._script(keys=keys)
        except (redis.RedisError, OSError) as exc:
            self.breaker.failed()
            log.warning("shared state unavailable: %s", exc)
            PREFETCHED.set(None)
            return None
        counts = {}
        for i, data_class in enumerate(CLASSES):
            counts[f"{data_class}_per_minute"] = int(sums[2 * i])
            counts[f"{data_class}_per_hour"] = int(sums[2 * i + 1])
        PREFETCHED.set(Prefetched(spiffe_id, counts, risk or b""))
        fenced = None
        if credential:
            fenced = "revoked"
        elif principal:
            fenced = "principal_" + principal.decode().partition(":")[0]
        return GateView(fenced, counts)

    async def close(self) -> None:
        await self.client.aclose()
