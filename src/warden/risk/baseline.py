"""What normal looks like for one agent, learned online from its stream of requests.

Everything here is a running statistic that one observation updates in constant time: the
request rate at each hour of the day (requests in the last minute, as exponentially weighted
mean and variance), the hours it works, the targets, methods and networks it uses, the data
classes it touches, the records it gets (per answer, and in the last ten minutes) and sends,
its deny rate, the argument names it passes, and keyed fingerprints of the payment details and
destinations it uses (a routing number that changes; never the number itself). Recent history
(the last ten minutes) is kept exactly, in a bounded queue.

A baseline is serialised to JSON to survive restarts; the recent history is not (it is ten
minutes long and rebuilds itself).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW_S = 600.0  # the recent history: ten minutes
RATE_S = 60.0  # the rate is requests in the last minute
BURST_S = 10.0  # and a burst, requests in the last ten seconds
ALPHA = 0.02  # how fast a running statistic follows what it sees
MAX_KEYS = 512  # targets, networks... remembered per agent (the rarest are forgotten)
MAX_VALUES = 16  # fingerprints remembered per payment detail or destination
MAX_RECENT = 4096


def network_of(address: str) -> str:
    """The /24 of an IPv4 address, the /64 of an IPv6 one ("" when it is neither)."""
    if ":" in address:
        return ":".join(address.split(":")[:4]) + "::/64"
    parts = address.split(".")
    return ".".join(parts[:3]) + ".0/24" if len(parts) == 4 else ""


@dataclass
class Running:
    """An exponentially weighted mean and variance."""

    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def add(self, value: float, alpha: float = ALPHA, edge_sds: float = 4.0) -> None:
        """Take ``value`` in. Once there is history, a value far out of the usual is taken at
        the edge of the usual and with a twentieth of the weight: a burst cannot teach that
        bursts are normal, while a lasting change of pace is learned, only more slowly."""
        n, mean = self.n, self.mean
        if n >= 30:
            a = alpha
            # The spread has floors: a steady figure's tiny variance must not make every
            # small change "far out".
            spread = max(math.sqrt(self.var), 0.25 * abs(mean), 0.5)
            edge = mean + edge_sds * spread
            if value > edge:
                value, a = edge, alpha / 20
        elif n == 0:
            self.mean, self.var, self.n = value, 0.0, 1
            return
        else:
            a = max(alpha, 1.0 / (n + 1))  # plain averages until there is history
        delta = value - mean
        self.mean = mean + a * delta
        self.var = (1 - a) * (self.var + a * delta * delta)
        self.n = n + 1

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def to_json(self) -> list[float]:
        return [self.mean, self.var, self.n]

    @classmethod
    def from_json(cls, data: list[float]) -> Running:
        return cls(float(data[0]), float(data[1]), int(data[2]))


@dataclass
class Recent:
    """The last ten minutes of one agent, exactly (not persisted)."""

    events: deque[tuple[float, int, bool, str, int]] = field(
        default_factory=lambda: deque(maxlen=MAX_RECENT)
    )  # (at, records, denied, network, sensitive records)

    records_held: int = 0  # sums over ``events``, kept as they change
    sensitive_held: int = 0
    denied_at: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_RECENT))
    minute: deque[float] = field(default_factory=deque)  # request times, the last minute
    burst: deque[float] = field(default_factory=deque)  # and the last ten seconds

    def add(self, at: float, records: int, denied: bool, network: str, sensitive: int) -> None:
        if len(self.events) == self.events.maxlen:
            self._drop()
        self.events.append((at, records, denied, network, sensitive))
        self.minute.append(at)
        self.burst.append(at)
        if denied:
            self.denied_at.append(at)
        self.records_held += records
        self.sensitive_held += sensitive

    def prune(self, now: float) -> None:
        events = self.events
        while events and now - events[0][0] > WINDOW_S:
            self._drop()

    def _drop(self) -> None:
        _, records, _, _, sensitive = self.events.popleft()
        self.records_held -= records
        self.sensitive_held -= sensitive

    def last_minute(self, now: float) -> int:
        """Requests in the last minute (kept apart, pruned as time passes: O(1) however fast
        the agent calls)."""
        minute = self.minute
        while minute and now - minute[0] > RATE_S:
            minute.popleft()
        return len(minute)

    def in_burst(self, now: float) -> int:
        """Requests in the last ten seconds (likewise kept apart)."""
        burst = self.burst
        while burst and now - burst[0] > BURST_S:
            burst.popleft()
        return len(burst)

    def records(self) -> int:
        return self.records_held

    def sensitive(self) -> int:
        return self.sensitive_held

    def count(self, now: float, within: float = 120.0) -> int:
        return sum(1 for e in self.events if now - e[0] <= within)

    def denials(self, now: float, within: float = 120.0) -> int:
        """Denials in the last ``within`` seconds (kept apart: most requests are allowed, and
        this is asked at every request)."""
        count = 0
        for at in reversed(self.denied_at):
            if now - at > within:
                break
            count += 1
        return count

    def networks(self, now: float, within: float = RATE_S) -> set[str]:
        return {e[3] for e in self.events if now - e[0] <= within and e[3]}


@dataclass
class Baseline:
    first_at: float
    last_at: float = 0.0
    events: int = 0
    rate: list[Running] = field(default_factory=lambda: [Running() for _ in range(24)])
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)
    targets: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    networks: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    arg_names: dict[str, int] = field(default_factory=dict)  # "target|name"
    payments: dict[str, list[str]] = field(default_factory=dict)  # "target|arg|owner" -> fps
    destinations: dict[str, list[str]] = field(default_factory=dict)  # "target|arg" -> fps
    records: Running = field(default_factory=Running)  # log1p(records) per answer
    volume: Running = field(default_factory=Running)  # log1p(records in the last 10 minutes)
    # log1p(PII/PHI/PCI records in the last ten minutes), per hour of the day: agents read
    # sensitive data in daily batches, so 07:00 is compared with other days' 07:00.
    sensitive: list[Running] = field(default_factory=lambda: [Running() for _ in range(24)])
    sensitive_all: Running = field(default_factory=Running)  # the same at every hour
    outbound: Running = field(default_factory=Running)  # log1p(records sent) per request
    denied: Running = field(default_factory=Running)  # 1 for a deny, 0 for an allow
    recent: Recent = field(default_factory=Recent)
    # Since when the sensitive records of the last ten minutes have stayed far above the
    # usual (0: they have not); like ``recent``, not persisted.
    sensitive_high_since: float = 0.0
    events_in_hours: float = 0.0  # sum(hours), kept as it changes (0: not known yet)
    windows_sampled_at: float = 0.0  # when the ten-minute sums were last taken in
    rate_sampled_at: float = 0.0  # when the rate was

    def learned(self, now: float, events: int, seconds: float) -> bool:
        """Past its learning period: enough requests, over enough time."""
        return self.events >= events and now - self.first_at >= seconds

    def hour_share(self, hour: int) -> float:
        total = self.events_in_hours or sum(self.hours)
        return self.hours[hour] / total if total else 0.0

    # -- updating ------------------------------------------------------------------------------

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1
        if len(table) > MAX_KEYS:  # forget the rarest (one pass, rarely)
            del table[min(table, key=table.__getitem__)]

    def remember(self, table: dict[str, list[str]], key: str, value: str) -> None:
        values = table.setdefault(key, [])
        if value in values:
            values.remove(value)
        values.append(value)  # the most recent last
        if len(values) > MAX_VALUES:
            del values[0]
        if len(table) > MAX_KEYS:
            del table[next(iter(table))]

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "events": self.events,
            "rate": [r.to_json() for r in self.rate],
            "hours": self.hours,
            "targets": self.targets,
            "methods": self.methods,
            "networks": self.networks,
            "classes": self.classes,
            "arg_names": self.arg_names,
            "payments": self.payments,
            "destinations": self.destinations,
            "records": self.records.to_json(),
            "volume": self.volume.to_json(),
            "sensitive": [r.to_json() for r in self.sensitive],
            "sensitive_all": self.sensitive_all.to_json(),
            "outbound": self.outbound.to_json(),
            "denied": self.denied.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        return cls(
            first_at=float(data["first_at"]),
            last_at=float(data["last_at"]),
            events=int(data["events"]),
            rate=[Running.from_json(r) for r in data["rate"]],
            hours=[float(h) for h in data["hours"]],
            targets=dict(data["targets"]),
            methods=dict(data["methods"]),
            networks=dict(data["networks"]),
            classes=dict(data["classes"]),
            arg_names=dict(data["arg_names"]),
            payments={k: list(v) for k, v in data["payments"].items()},
            destinations={k: list(v) for k, v in data["destinations"].items()},
            records=Running.from_json(data["records"]),
            volume=Running.from_json(data["volume"]),
            sensitive=[Running.from_json(r) for r in data["sensitive"]],
            sensitive_all=Running.from_json(data["sensitive_all"]),
            outbound=Running.from_json(data["outbound"]),
            denied=Running.from_json(data["denied"]),
        )
