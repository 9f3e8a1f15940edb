"""What a gateway asks Redis for each request, in one asynchronous round trip: whether the
revocation fence refuses the credential, the risk other enforcement points published for the
agent, and the agent's DLP counts for the decision.

Asked before ``decide()`` in the request's own task, so the event loop never waits on Redis
and a decision reads the counts and the shared risk from memory
(:data:`~warden.shared.client.PREFETCHED`). Redis unreachable: the answer is None, the fence
is skipped (the principal feed alone bounds revocations), the DLP counts are unknown (the
default pack refuses sensitive data) and only the gateway's own risk counts.
"""

from __future__ import annotations

import asyncio
import logging

import redis
import redis.asyncio

from warden.shared.client import (
    PREFETCHED,
    TIMEOUT_S,
    Breaker,
    Prefetched,
    TlsFiles,
    tls_options,
)
from warden.shared.fence import credential_key, fence_reason, principal_key
from warden.shared.redis_state import WINDOW_SUMS, RedisWindows, counts_of
from warden.shared.risk import risk_key
from warden.trust.windows import CLASSES

log = logging.getLogger("warden.shared")

# KEYS[1]: the principal's fence, KEYS[2]: the credential's, KEYS[3]: the agent's shared
# risk, KEYS[4..]: DLP hashes per class.
GATE = (
    WINDOW_SUMS
    + """
local out = {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '',
             redis.call('GET', KEYS[3]) or ''}
for i = 4, #KEYS do
  local m, h = window_sums(KEYS[i], false)
  table.insert(out, m)
  table.insert(out, h)
end
return out
"""
)


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

    async def fenced(self, spiffe_id: str, credential_id: str) -> str | None:
        """Why the fence refuses this credential (None: it does not, or Redis cannot say);
        what else was read is left in :data:`PREFETCHED` for the decision."""
        PREFETCHED.set(None)
        if self.breaker.open:
            return None
        keys = [
            principal_key(spiffe_id),
            credential_key(credential_id),
            risk_key(spiffe_id),
            *(RedisWindows.key(spiffe_id, c) for c in CLASSES),
        ]
        try:
            principal, credential, risk, *sums = await self._script(keys=keys)
        except (redis.RedisError, OSError) as exc:
            self.breaker.failed()
            log.warning("shared state unavailable: %s", exc)
            return None
        PREFETCHED.set(Prefetched(spiffe_id, counts_of(sums), risk or b""))
        return fence_reason(principal, credential)

    async def warm(self, connections: int = 8) -> int:
        """Open pooled connections before the first request needs them (a mutual-TLS
        handshake can take longer than a request's short timeout while a burst of first
        requests opens connections at once); returns how many opened. Failures here are not
        the request path's: the breaker is left alone."""
        answers: list[object] = []
        for _ in range(2):  # a second round for those that timed out
            answers = await asyncio.gather(
                *(self.client.ping() for _ in range(connections)), return_exceptions=True
            )
            if all(a is True for a in answers):
                break
        return sum(a is True for a in answers)

    async def close(self) -> None:
        await self.client.aclose()
