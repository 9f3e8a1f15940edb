"""Records per agent and data class in sliding windows (the last minute, the last hour).

A response's records are added only through :meth:`DlpWindows.take`, which checks every
limit and adds the counts in one step under a lock: two concurrent responses cannot both fit
under a limit that only one of them fits under. The windows are also the policy engine's
``dlp`` signals (a live mapping: ``decide()`` reads the counts as they are, and an agent
never seen has known zero counts).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from warden.clock import utcnow
from warden.policy.snapshot import Signal

WINDOWS = {"minute": 60.0, "hour": 3600.0}
CLASSES = ("pii", "phi", "pci", "confidential")
MAX_AGENTS = 200_000


@dataclass
class _Series:
    """One agent's records of one class: (time, count) in arrival order, with running sums."""

    events: deque[tuple[float, int]] = field(default_factory=deque)
    minute_start: int = 0  # index into events of the first one still in the minute
    sums: dict[str, int] = field(default_factory=lambda: {"minute": 0, "hour": 0})

    def prune(self, now: float) -> None:
        events = self.events
        while events and now - events[0][0] >= WINDOWS["hour"]:
            _, count = events.popleft()
            self.sums["hour"] -= count
            if self.minute_start > 0:
                self.minute_start -= 1
            else:
                self.sums["minute"] -= count
        while (
            self.minute_start < len(events)
            and now - events[self.minute_start][0] >= WINDOWS["minute"]
        ):
            self.sums["minute"] -= events[self.minute_start][1]
            self.minute_start += 1

    def add(self, now: float, count: int) -> None:
        self.events.append((now, count))
        self.sums["minute"] += count
        self.sums["hour"] += count


class SharedStateUnavailable(Exception):
    """The shared windows or throttles (Redis) could not be asked: what needs them is
    refused."""


@dataclass(frozen=True)
class Exceeded:
    data_class: str
    window: str
    limit: int
    current: int
    adding: int

    @property
    def reason(self) -> str:
        return f"{self.data_class}_per_{self.window}"


class Windows(Protocol):
    """What DLP needs of its windows: in this process (:class:`DlpWindows`) or shared by
    every gateway (:class:`warden.shared.redis_state.RedisWindows`)."""

    def counts(self, agent: str) -> dict[str, int]: ...

    def take(
        self, agent: str, adding: Mapping[str, int], limits: Mapping[tuple[str, str], int]
    ) -> list[Exceeded]: ...


class DlpWindows(Mapping[str, Signal]):
    """Sliding windows for every agent; ``clock`` is injectable (seconds, monotonic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def counts(self, agent: str) -> dict[str, int]:
        """``{"phi_per_minute": 3, ...}`` for every class and window."""
        now = self._clock()
        out = {}
        with self._lock:
            for data_class in CLASSES:
                series = self._series.get((agent, data_class))
                if series is not None:
                    series.prune(now)
                for window in WINDOWS:
                    out[f"{data_class}_per_{window}"] = series.sums[window] if series else 0
        return out

    def take(
        self, agent: str, adding: Mapping[str, int], limits: Mapping[tuple[str, str], int]
    ) -> list[Exceeded]:
        """Add ``adding`` (records per class) unless a limit ((class, window) -> most records)
        would be passed; then nothing is added and the limits passed are returned."""
        now = self._clock()
        with self._lock:
            exceeded = []
            for (data_class, window), limit in limits.items():
                series = self._series.get((agent, data_class))
                if series is not None:
                    series.prune(now)
                current = series.sums[window] if series else 0
                count = adding.get(data_class, 0)
                if count and current + count > limit:
                    exceeded.append(Exceeded(data_class, window, limit, current, count))
            if exceeded:
                return exceeded
            for data_class, count in adding.items():
                if count <= 0 or data_class not in CLASSES:
                    continue
                key = (agent, data_class)
                series = self._series.get(key)
                if series is None:
                    if len(self._series) >= MAX_AGENTS:
                        self._evict(now)
                    series = self._series[key] = _Series()
                series.prune(now)
                series.add(now, count)
            return []

    def _evict(self, now: float) -> None:
        """Drop series with nothing left in the hour (bounded memory with many agents)."""
        for key, series in list(self._series.items()):
            series.prune(now)
            if not series.events:
                del self._series[key]

    # -- the policy engine's dlp signals -------------------------------------------------------

    def __getitem__(self, agent: str) -> Signal:
        return Signal(self.counts(agent), utcnow())

    def get(self, agent: str, default: object = None) -> Signal:
        return self[agent]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter({agent for agent, _ in self._series})

    def __len__(self) -> int:
        with self._lock:
            return len({agent for agent, _ in self._series})
