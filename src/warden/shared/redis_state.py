"""DLP windows and throttles shared by every gateway, in Redis.

Each check-and-take is one Lua script, so it is atomic in Redis: two gateways answering the
same agent at once cannot both fit under a limit only one of them fits under. Scripts read the
time from Redis itself (``TIME``), so the gateways' clocks do not have to agree.

Windows are kept in buckets: a hash per agent and data class with one field per second (the
minute window) and one per minute (the hour window). A record leaves a window when its whole
bucket has: up to a second (a minute) late, never early, so a limit is never overshot.

Redis unreachable or failing: :meth:`RedisWindows.get` gives no signal (the policy then sees
the agent's DLP counts as unknown, and the default pack refuses sensitive data), and a take
raises :class:`SharedStateUnavailable`, which the gateway turns into a denial. Decisions that
need no shared counter go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import redis

from warden.clock import utcnow
from warden.enforce.obligations import parse_throttle
from warden.policy.snapshot import Signal
from warden.shared.client import PREFETCHED, PREFIX, Breaker
from warden.trust.windows import CLASSES, Exceeded, SharedStateUnavailable

log = logging.getLogger("warden.shared")

# Lua: the minute and hour sums of one window hash (fields 's<second>' and 'm<minute>'),
# deleting buckets that have left their window when ``prune`` is true. Prefixed to every
# script that reads windows.
WINDOW_SUMS = """
local t = redis.call('TIME')
local second = tonumber(t[1])
local minute = math.floor(second / 60)
local function window_sums(key, prune)
  local fields = redis.call('HGETALL', key)
  local m, h = 0, 0
  for j = 1, #fields, 2 do
    local name, count = fields[j], tonumber(fields[j + 1])
    local kind, at = string.sub(name, 1, 1), tonumber(string.sub(name, 2))
    local inside = (kind == 's' and at > second - 60) or (kind == 'm' and at > minute - 60)
    if inside then
      if kind == 's' then m = m + count else h = h + count end
    elseif prune then
      redis.call('HDEL', key, name)
    end
  end
  return m, h
end
"""

# KEYS: one hash per data class. ARGV: limit_minute, limit_hour, adding (per key, in order;
# a limit < 0: none). Returns {} when taken, else {index, window, current} per limit passed.
TAKE = (
    WINDOW_SUMS
    + """
local over = {}
local sums = {}
for i, key in ipairs(KEYS) do
  local m, h = window_sums(key, true)
  local lm, lh, add = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  if add > 0 and lm >= 0 and m + add > lm then table.insert(over, {i, 'minute', m}) end
  if add > 0 and lh >= 0 and h + add > lh then table.insert(over, {i, 'hour', h}) end
  sums[i] = add
end
if #over > 0 then return over end
for i, key in ipairs(KEYS) do
  if sums[i] > 0 then
    redis.call('HINCRBY', key, 's' .. second, sums[i])
    redis.call('HINCRBY', key, 'm' .. minute, sums[i])
    redis.call('EXPIRE', key, 3720)
  end
end
return over
"""
)

# KEYS: one hash per data class. Returns minute, hour, minute, hour... in key order.
COUNTS = (
    WINDOW_SUMS
    + """
local out = {}
for i, key in ipairs(KEYS) do
  local m, h = window_sums(key, false)
  table.insert(out, m)
  table.insert(out, h)
end
return out
"""
)


def counts_of(sums: list[Any]) -> dict[str, int]:
    """``{"phi_per_minute": 3, ...}`` from the (minute, hour) sums of every class's hash."""
    out = {}
    for i, data_class in enumerate(CLASSES):
        out[f"{data_class}_per_minute"] = int(sums[2 * i])
        out[f"{data_class}_per_hour"] = int(sums[2 * i + 1])
    return out


# A token bucket. KEYS[1]: the bucket. ARGV: capacity, tokens per second. Returns the wait in
# milliseconds (0: a token was taken).
THROTTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return wait
"""


class RedisWindows(Mapping[str, Signal]):
    """The :class:`~warden.trust.windows.DlpWindows` interface, shared through Redis."""

    def __init__(self, client: redis.Redis, breaker: Breaker | None = None) -> None:
        self.client = client
        self._take = client.register_script(TAKE)
        self._counts = client.register_script(COUNTS)
        self.breaker = breaker or Breaker()

    @staticmethod
    def key(agent: str, data_class: str) -> str:
        return f"{PREFIX}dlp:{agent}:{data_class}"

    def counts(self, agent: str) -> dict[str, int]:
        """``{"phi_per_minute": 3, ...}``; raises :class:`SharedStateUnavailable`."""
        if self.breaker.open:
            raise SharedStateUnavailable("Redis failed a moment ago")
        try:
            sums = self._counts(keys=[self.key(agent, c) for c in CLASSES])
        except redis.RedisError as exc:
            self.breaker.failed()
            raise SharedStateUnavailable(str(exc)) from exc
        return counts_of(sums)

    def take(
        self, agent: str, adding: Mapping[str, int], limits: Mapping[tuple[str, str], int]
    ) -> list[Exceeded]:
        """Add ``adding`` unless a limit would be passed (then nothing is added and the limits
        passed are returned); raises :class:`SharedStateUnavailable`."""
        classes = [c for c in CLASSES if adding.get(c, 0) > 0 or any(k[0] == c for k in limits)]
        if not classes:
            return []
        args: list[int] = []
        for data_class in classes:
            args += [
                limits.get((data_class, "minute"), -1),
                limits.get((data_class, "hour"), -1),
                max(0, int(adding.get(data_class, 0))),
            ]
        if self.breaker.open:
            raise SharedStateUnavailable("Redis failed a moment ago")
        try:
            over = self._take(keys=[self.key(agent, c) for c in classes], args=args)
        except redis.RedisError as exc:
            self.breaker.failed()
            raise SharedStateUnavailable(str(exc)) from exc
        exceeded = []
        for index, window, current in over:
            data_class = classes[int(index) - 1]
            name = window.decode() if isinstance(window, bytes) else str(window)
            exceeded.append(
                Exceeded(
                    data_class,
                    name,
                    limits[(data_class, name)],
                    int(current),
                    int(adding.get(data_class, 0)),
                )
            )
        return exceeded

    # -- the policy engine's dlp signals -------------------------------------------------------

    def __getitem__(self, agent: str) -> Signal:
        signal: Signal | None = self.get(agent)
        if signal is None:
            raise KeyError(agent)
        return signal

    def get(self, agent: str, default: Any = None) -> Any:
        """The agent's counts, or ``default`` when Redis cannot say (unknown, never zero).
        A gateway's request has them already (:mod:`warden.shared.gate`)."""
        prefetched = PREFETCHED.get()
        if prefetched is not None and prefetched.agent == agent:
            return Signal(prefetched.counts, utcnow())
        try:
            return Signal(self.counts(agent), utcnow())
        except SharedStateUnavailable as exc:
            log.warning("DLP windows unavailable: %s", exc)
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(())  # agents are not listed: the windows are asked for one agent at a time

    def __len__(self) -> int:
        return 0


class RedisThrottles:
    """The :class:`~warden.enforce.obligations.Throttles` interface, shared through Redis."""

    def __init__(self, client: redis.Redis, breaker: Breaker | None = None) -> None:
        self._throttle = client.register_script(THROTTLE)
        self.breaker = breaker or Breaker()

    def take(self, agent: str, route: str, obligation: str) -> float:
        """0 when a token was taken, else the seconds until one is; raises
        :class:`SharedStateUnavailable`."""
        parsed = parse_throttle(obligation)
        if parsed is None:
            return 60.0  # a malformed throttle fails closed
        capacity, rate = parsed
        key = f"{PREFIX}throttle:{agent}:{route}:{obligation}"
        if self.breaker.open:
            raise SharedStateUnavailable("Redis failed a moment ago")
        try:
            wait_ms = self._throttle(keys=[key], args=[capacity, rate])
        except redis.RedisError as exc:
            self.breaker.failed()
            raise SharedStateUnavailable(str(exc)) from exc
        return int(wait_ms) / 1000.0
