"""The risk engine: every observation scored against its agent's baseline, in memory, in
microseconds; the score and its top factors ready for the next decision.

:meth:`RiskEngine.observe` runs the named detectors and the anomaly model on a request, raises
their factors, then learns from the request. :meth:`RiskEngine.signal` takes trust events
(a workload turning vulnerable, a DLP breach). The engine is the policy engine's live ``risk``
source: ``decide()`` reads the current score from memory and never waits for a model. A change
of level (low, medium, high, critical) is published as a trust event for the response engine.

Time is the caller's: observations carry their own times, and ``clock`` (seconds) is what
"now" is for decisions, so a simulator can play days of traffic in seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from warden.policy.decide import risk_level as level
from warden.policy.snapshot import Signal
from warden.risk import detectors
from warden.risk.baseline import Baseline, network_of
from warden.risk.detectors import Factor, Fingerprint
from warden.risk.model import AnomalyModel, squash
from warden.risk.observation import Observation
from warden.risk.observation import Signal as TrustSignal
from warden.risk.score import RiskState, would_contain
from warden.trust.events import TrustEvent, TrustEvents

NOTHING_AGAINST: Mapping[str, Any] = MappingProxyType({"score": 0, "factors": ()})
SHARE_STEP = 25  # points a score moves before other enforcement points are told
HEALTH_POINTS = {"degraded": 650, "compromised": 900, "unknown": 200}
SIGNAL_POINTS = {"dlp_window_exceeded": 300, "residency_breach": 400, "bulk_export": 300}


@dataclass(frozen=True)
class Learning:
    """The learning period: a baseline is trusted after this many requests over this long."""

    events: int = 200
    seconds: float = 20 * 3600.0


@dataclass(frozen=True)
class Assessment:
    score: int
    level: str
    factors: tuple[tuple[str, int], ...]  # (plain words, points), largest first
    contain: str | None  # what the default playbooks would act on, or None


class RiskEngine(Mapping[str, Signal]):
    def __init__(
        self,
        fingerprint: Fingerprint,
        *,
        clock: Callable[[], float] = time.time,
        learning: Learning = Learning(),
        events: TrustEvents | None = None,
        model: AnomalyModel | None = None,
    ) -> None:
        self._fingerprint = fingerprint
        self.clock = clock
        self.learning = learning
        self.events = events or TrustEvents()
        self.model = model if model is not None else AnomalyModel()
        self._baselines: dict[str, Baseline] = {}
        self._states: dict[str, RiskState] = {}
        self._levels: dict[str, str] = {}
        self.dirty: set[str] = set()  # baselines changed since they were last saved
        # What decide() reads: an agent's signal, made again on its next event or after a
        # second (scores fade), so a decision costs a dictionary lookup.
        self._signals: dict[str, tuple[float, Signal]] = {}
        self._last_when = (0.0, datetime.fromtimestamp(0, UTC))
        # Where other enforcement points learn this engine's scores (Redis, when shared):
        # called with (agent, score, factors, at) when a score moves by SHARE_STEP or more.
        self.share: Callable[[str, int, list[list[Any]], float], None] | None = None
        self._shared: dict[str, int] = {}
        # Who acts on raised factors (the response engine): called outside the lock with
        # (agent, the factors just raised, the score after, its contributions). Scores only
        # rise when a factor is raised, so a threshold is never crossed unseen.
        self.on_raised: Callable[[str, list[Factor], int, list[tuple[Factor, int]]], None] | None
        self.on_raised = None
        self._lock = threading.Lock()

    # -- what happens ----------------------------------------------------------------------------

    def observe(self, obs: Observation) -> int:
        """Score one request, learn from it; its agent's score after it."""
        hour = int(obs.at // 3600 % 24)  # UTC
        obs.network = network_of(obs.source_ip)
        with self._lock:
            baseline = self._baselines.get(obs.agent)
            if baseline is None:
                baseline = self._baselines[obs.agent] = Baseline(first_at=obs.at)
            state = self._states.setdefault(obs.agent, RiskState())
            learned = baseline.learned(obs.at, self.learning.events, self.learning.seconds)
            found = detectors.assess(baseline, obs, hour, learned, self._fingerprint)
            if learned:
                opinion = self.model.assess(_features(baseline, obs, hour))
                if opinion is not None:
                    found.append(opinion)
            raised = [factor for factor in found if factor.points]
            for factor in raised:
                state.raise_factor(factor, obs.at)
            detectors.learn(baseline, obs, hour, self._fingerprint)
            self.dirty.add(obs.agent)
            self._signals.pop(obs.agent, None)
            score = state.score(obs.at)
        self._publish_level(obs.agent, score, state, obs.at)
        if raised:
            self._tell_raised(obs.agent, raised, score, state, obs.at)
        return score

    def signal(self, event: TrustSignal) -> int:
        """A trust event about an agent; its score after it."""
        factor: Factor | None = None
        if event.kind == "health_changed":
            status = str(event.detail.get("to", ""))
            points = HEALTH_POINTS.get(status, 0)
            if not points:  # healthy again: the workload factor no longer holds
                return self._change(event.agent, event.at, drop="workload_health")
            reasons = event.detail.get("reasons") or []
            why = f": {reasons[0]}" if reasons else ""
            factor = Factor("workload_health", points, f"workload {status}{why}")
        elif event.kind in SIGNAL_POINTS:
            # A window breach is also the denial the request sees: one event, one factor.
            code = "limit_hit" if event.kind == "dlp_window_exceeded" else event.kind
            factor = Factor(code, SIGNAL_POINTS[event.kind], _signal_words(event))
        return self._change(event.agent, event.at, factor)

    def flag(self, agent: str, points: int, words: str, at: float | None = None) -> int:
        """A factor from outside the detectors (an operator's concern, another system's
        finding); named, as someone answers for it."""
        now = self.clock() if at is None else at
        return self._change(agent, now, Factor("reported", points, words))

    def clear(self, agent: str, code: str = "reported") -> int:
        """Withdraw one factor (an operator's report found groundless); the score after."""
        return self._change(agent, self.clock(), drop=code)

    def _change(self, agent: str, at: float, factor: Factor | None = None, drop: str = "") -> int:
        """Raise ``factor`` or withdraw the factor ``drop``; the score after, published."""
        with self._lock:
            state = self._states.setdefault(agent, RiskState())
            if drop:
                state.factors.pop(drop, None)
            if factor is not None:
                state.raise_factor(factor, at)
            self._signals.pop(agent, None)
            score = state.score(at)
        self._publish_level(agent, score, state, at)
        if factor is not None and factor.points:
            self._tell_raised(agent, [factor], score, state, at)
        return score

    def _tell_raised(
        self, agent: str, raised: list[Factor], score: int, state: RiskState, at: float
    ) -> None:
        if self.on_raised is None:
            return
        with self._lock:
            parts = state.contributions(at)
        self.on_raised(agent, raised, score, parts)

    # -- what is known ---------------------------------------------------------------------------

    def assessment(self, agent: str, now: float | None = None) -> Assessment:
        now = self.clock() if now is None else now
        with self._lock:
            state = self._states.get(agent)
            parts = state.contributions(now) if state is not None else []
        score = min(1000, sum(p for _, p in parts))
        return Assessment(
            score, level(score), tuple((f.words, p) for f, p in parts), would_contain(parts)
        )

    def baseline(self, agent: str) -> Baseline | None:
        with self._lock:
            return self._baselines.get(agent)

    def summary(self, agent: str) -> dict[str, Any] | None:
        """What the agent's baseline says, for people (see :func:`summarise`)."""
        with self._lock:
            b = self._baselines.get(agent)
            if b is None:
                return None
            return _summary(b, self.clock(), self.learning)

    def baselines(self) -> dict[str, dict[str, Any]]:
        """The baselines changed since the last call, as JSON (for the store); clears them."""
        with self._lock:
            agents, self.dirty = self.dirty, set()
        out = {}
        for agent in agents:  # one at a time: requests wait for one agent's, never for all
            with self._lock:
                baseline = self._baselines.get(agent)
                if baseline is not None:
                    out[agent] = baseline.to_json()
        return out

    def load(self, baselines: Mapping[str, dict[str, Any]]) -> None:
        """Baselines saved before a restart."""
        for agent, data in baselines.items():
            try:
                baseline = Baseline.from_json(data)
            except (KeyError, TypeError, ValueError, IndexError):
                continue  # of another version: learned again
            with self._lock:
                self._baselines[agent] = baseline

    # -- the policy engine's risk signals ----------------------------------------------------------

    def __getitem__(self, agent: str) -> Signal:
        now = self.clock()
        state = self._states.get(agent)
        if state is None or not state.factors:  # most agents, most of the time
            return Signal(NOTHING_AGAINST, self._when(now))
        cached = self._signals.get(agent)
        if cached is not None and 0.0 <= now - cached[0] < 1.0:
            return cached[1]
        with self._lock:
            parts = state.contributions(now)
        signal = Signal(
            {
                "score": min(1000, sum(p for _, p in parts)),
                "factors": [[f.words, p] for f, p in parts[:5]],
            },
            self._when(now),
        )
        self._signals[agent] = (now, signal)
        return signal

    def _when(self, now: float) -> datetime:
        """``now`` as a datetime, converted at most every tenth of a second (a signal's age
        is checked against bounds of seconds)."""
        last, when = self._last_when
        if not 0.0 <= now - last < 0.1:
            when = datetime.fromtimestamp(now, UTC)
            self._last_when = (now, when)
        return when

    def get(self, agent: str, default: object = None) -> Signal:
        return self[agent]  # an agent never seen has a known score: nothing against it

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._states))

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)

    # -- events for the response engine ------------------------------------------------------------

    def _publish_level(self, agent: str, score: int, state: RiskState, at: float) -> None:
        if self.share is not None:
            shared = self._shared.get(agent, 0)
            if abs(score - shared) >= SHARE_STEP or (score == 0) != (shared == 0):
                self._shared[agent] = score
                with self._lock:
                    parts = state.contributions(at)
                self.share(agent, score, [[f.words, p] for f, p in parts[:5]], at)
        now_level = level(score)
        before = self._levels.get(agent, "low")
        if now_level == before:
            return
        self._levels[agent] = now_level
        with self._lock:
            parts = state.contributions(at)
        self.events.publish(
            TrustEvent(
                "risk_changed",
                agent,
                {
                    "from": before,
                    "to": now_level,
                    "score": score,
                    "factors": [[f.words, p] for f, p in parts[:5]],
                    "contain": would_contain(parts),
                },
            )
        )


def summarise(saved: dict[str, Any], now: float, learning: Learning) -> dict[str, Any]:
    """A saved baseline (its JSON), for people: how much it has seen, whether it is past its
    learning period, and its most used targets, networks and data classes."""
    return _summary(Baseline.from_json(saved), now, learning)


def _summary(b: Baseline, now: float, learning: Learning) -> dict[str, Any]:
    return {
        "requests": b.events,
        "learned": b.learned(now, learning.events, learning.seconds),
        "since": datetime.fromtimestamp(b.first_at, UTC).isoformat(),
        "targets": _top(b.targets),
        "networks": _top(b.networks),
        "data_classes": _top(b.classes),
        "active_hours": [h for h in range(24) if b.hour_share(h) >= 0.01],
    }


def _top(counts: dict[str, int], n: int = 5) -> list[str]:
    return sorted(counts, key=lambda k: -counts[k])[:n]


def _signal_words(event: TrustSignal) -> str:
    detail = event.detail
    if event.kind == "dlp_window_exceeded":
        return f"DLP window {detail.get('window', '')} exceeded"
    if event.kind == "residency_breach":
        return f"data from {', '.join(detail.get('regions', []))} sent out of its region"
    return f"bulk export of {detail.get('records', '?')} records"


def _features(b: Baseline, obs: Observation, hour: int) -> dict[str, float]:
    """How far this request is from the agent's normal, feature by feature, in [0, 1)."""
    recent = b.recent
    rate = b.rate[hour]
    bound = max(rate.mean + 3 * rate.std, 1.0)
    records_usual = max(math.expm1(b.records.mean + 3 * b.records.std), 1.0)
    volume_usual = max(math.expm1(b.volume.mean + 3 * b.volume.std), 2.0)
    sent_usual = max(math.expm1(b.outbound.mean + 3 * b.outbound.std), 1.0)
    network = obs.network
    return {
        "rate": squash((recent.last_minute(obs.at) + 1) / bound),
        "records": squash(obs.records / records_usual),
        "volume": squash((recent.records() + obs.records) / volume_usual),
        "new_target": 0.0 if obs.target in b.targets else 1.0,
        "new_network": 0.0 if not network or network in b.networks else 1.0,
        "hour": 1.0 - min(1.0, b.hour_share(hour) * 24),
        "denials": squash(recent.denials(obs.at) / 3),
        "sent": squash(obs.outbound_records / sent_usual),
    }
