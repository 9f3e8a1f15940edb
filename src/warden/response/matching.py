"""Matching what happens against the active playbooks' triggers.

:class:`Matcher` is cheap: it runs where the event arises (a gateway's request path, the risk
engine) and only hands a :class:`Firing` on. The live engine runs each firing; a dry run
(``warden playbook dry-run``) replays recorded events through the same matcher and collects
them instead.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from warden.identity.registry import Agent
from warden.policy.model import Decision, DecisionRequest
from warden.response.playbooks import Playbook, PlaybookBundle
from warden.risk.detectors import Factor
from warden.risk.score import MAX_SCORE
from warden.trust.events import TrustEvent

NAMED_POINTS = 300  # a named detector this strong agrees with a critical score
DENIAL_MEMORY = 10_000  # denial times kept per agent, at most
DLP_EVENTS = ("dlp_window_exceeded", "bulk_export", "residency_breach")


@dataclass(frozen=True)
class Firing:
    """A playbook's trigger matched for an agent (SPIFFE ID): what tripped it, and when."""

    playbook: Playbook
    agent: str
    kind: str
    detail: dict[str, Any]
    classes: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)
    by: str = ""  # who triggered it by hand


class Matcher(ABC):
    """The triggers of one playbook bundle; :meth:`fire` says what to do with a match."""

    def __init__(self) -> None:
        self.active: PlaybookBundle | None = None
        self._by_kind: dict[str, list[Playbook]] = {}
        self._policy_ids: frozenset[str] = frozenset()
        self._denials: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def install(self, bundle: PlaybookBundle) -> None:
        by_kind: dict[str, list[Playbook]] = {}
        for playbook in bundle.playbooks:
            if playbook.enabled:
                by_kind.setdefault(playbook.trigger.kind, []).append(playbook)
        ids = {
            i for p in by_kind.get("policy", []) if p.trigger.policy for i in p.trigger.policy.ids
        }
        with self._lock:
            self.active = bundle
            self._by_kind = by_kind
            self._policy_ids = frozenset(ids)

    # -- what a match does (the engine runs it; a dry run collects it) ---------------------------

    @abstractmethod
    def fire(self, firing: Firing) -> None:
        """What a match does: the engine runs it, a dry run collects it."""

    def clean_report(self, event: TrustEvent) -> None:  # noqa: B027  (a dry run lifts nothing)
        """A workload's health is back to healthy: restrictions held until then end."""

    # -- the inputs ------------------------------------------------------------------------------

    def on_raised(
        self,
        agent: str,
        raised: list[Factor],
        score: int,
        parts: list[tuple[Factor, int]],
        at: float | None = None,
    ) -> None:
        """The risk engine raised ``raised`` against ``agent``; its score is now ``score``."""
        at = time.time() if at is None else at
        by_kind = self._by_kind
        for playbook in by_kind.get("risk", ()):
            trigger = playbook.trigger.risk
            assert trigger is not None
            counted = [(f, p) for f, p in parts if f.code not in trigger.ignore]
            if min(MAX_SCORE, sum(p for _, p in counted)) < trigger.at_least:
                continue
            named = [f for f, p in counted if f.named and p >= NAMED_POINTS]
            if trigger.named and not named:
                continue
            self.fire(Firing(playbook, agent, "risk", risk_detail(score, parts), at=at))
        for playbook in by_kind.get("detector", ()):
            detector = playbook.trigger.detector
            assert detector is not None
            hit = next(
                (f for f in raised if f.code == detector.name and f.points >= detector.min_points),
                None,
            )
            if hit is not None:
                detail = {"detector": hit.code, "words": hit.words, **risk_detail(score, parts)}
                self.fire(Firing(playbook, agent, "detector", detail, at=at))

    def on_event(self, event: TrustEvent, at: float | None = None) -> None:
        """A trust event (DLP, health) from this process's enforcement point."""
        at = time.time() if at is None else at
        by_kind = self._by_kind
        classes = tuple(str(c) for c in event.detail.get("classes", ()) or ())
        if event.kind in DLP_EVENTS:
            for playbook in by_kind.get("dlp", ()):
                trigger = playbook.trigger.dlp
                assert trigger is not None
                if event.kind not in trigger.events:
                    continue
                if trigger.classes and not set(trigger.classes) & set(classes):
                    continue
                self.fire(Firing(playbook, event.agent, "dlp", event.to_dict(), classes, at))
        elif event.kind == "health_changed":
            status = str(event.detail.get("to", ""))
            if status == "healthy":
                self.clean_report(event)
                return
            for playbook in by_kind.get("health", ()):
                health = playbook.trigger.health
                assert health is not None
                if status in health.status:
                    self.fire(Firing(playbook, event.agent, "health", event.to_dict(), at=at))

    def on_decision(
        self, request: DecisionRequest, decision: Decision, at: float | None = None
    ) -> None:
        """Each decision an enforcement point made (after it answered)."""
        by_kind = self._by_kind
        if not decision.allowed and "denials" in by_kind:
            self._count_denial(request.subject_id, by_kind["denials"], at)
        if not self._policy_ids:
            return
        ids = {r.policy for r in decision.reasons} & self._policy_ids
        if not ids:
            return
        at = time.time() if at is None else at
        for playbook in by_kind.get("policy", ()):
            trigger = playbook.trigger.policy
            assert trigger is not None
            if ids & set(trigger.ids) and trigger.decision in ("any", decision.decision):
                classification = request.resource.properties.get("classification")
                detail = {
                    "decision_id": decision.decision_id,
                    "decision": decision.decision,
                    "policies": sorted(ids),
                    "action": request.action,
                    "resource": f"{request.resource.type}:{request.resource.id}",
                }
                classes = (str(classification),) if classification else ()
                self.fire(Firing(playbook, request.subject_id, "policy", detail, classes, at))

    def on_attestation_failed(
        self, agent: str, reason: str, method: str, at: float | None = None
    ) -> None:
        at = time.time() if at is None else at
        for playbook in self._by_kind.get("attestation_failed", ()):
            detail = {"reason": reason, "method": method}
            self.fire(Firing(playbook, agent, "attestation_failed", detail, at=at))

    def _count_denial(self, agent: str, playbooks: list[Playbook], at: float | None) -> None:
        now = time.time() if at is None else at
        with self._lock:
            times = self._denials.setdefault(agent, deque(maxlen=DENIAL_MEMORY))
            times.append(now)
            snapshot = list(times)
        for playbook in playbooks:
            trigger = playbook.trigger.denials
            assert trigger is not None
            recent = sum(1 for t in snapshot if now - trigger.within_s < t <= now)
            if recent >= trigger.count:
                detail = {"denials": recent, "within_s": trigger.within_s}
                self.fire(Firing(playbook, agent, "denials", detail, at=now))


def risk_detail(score: int, parts: list[tuple[Factor, int]]) -> dict[str, Any]:
    return {"score": score, "factors": [[f.words, p] for f, p in parts[:5]]}


def conditions_fail(playbook: Playbook, agent: Agent, firing: Firing) -> str:
    """Why the playbook's conditions do not hold (empty when they do)."""
    when = playbook.when
    for key, value in when.labels.items():
        if agent.labels.get(key) != value:
            return f"label {key}={value} does not hold"
    if when.data_classes and not set(when.data_classes) & set(firing.classes):
        return f"none of {', '.join(when.data_classes)} involved"
    at = datetime.fromtimestamp(firing.at, UTC)
    if when.hours_utc is not None:
        start, end = when.hours_utc
        inside = start <= at.hour < end if start <= end else (at.hour >= start or at.hour < end)
        if not inside:
            return f"outside hours {start}-{end} UTC"
    if when.weekdays and at.weekday() not in when.weekdays:
        return "not on a listed weekday"
    return ""
