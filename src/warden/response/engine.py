"""The response engine: matches what happens (raised risk factors, trust events, decisions,
manual triggers) against the active playbooks and runs their actions, in order, off the
request path.

Matching is cheap and happens where the event arises (a gateway's request thread, the risk
engine); a match is handed to a small pool of worker threads, which claim the run in the store
(one run per playbook and agent within its cooldown, across every process), carry out each
action with retries and record each step in the decision log, durably, with the event that
triggered it. Quarantine and revocation commit through the registry, whose fence and feed reach
every enforcement point.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from warden.audit.recorder import DecisionRecorder
from warden.errors import WardenError
from warden.identity.authority import IdentityAuthority
from warden.identity.registry import Agent
from warden.policy.bundle import BundleFiles
from warden.policy.engine import PolicyEngine
from warden.policy.errors import BundleRejected
from warden.policy.model import Decision, DecisionRequest
from warden.policy.signing import verify_signature
from warden.response.actions import Step, StepContext, run_action
from warden.response.playbooks import Playbook, PlaybookBundle, compile_playbooks
from warden.response.records import Incidents, Runs
from warden.risk.detectors import Factor
from warden.risk.score import MAX_SCORE
from warden.trust.events import TrustEvent, TrustEvents

log = logging.getLogger("warden.response")
ACTIVE_KEY = "playbooks_active"  # "<version> <revision>"
NAMED_POINTS = 300  # a named detector this strong agrees with a critical score
DENIAL_MEMORY = 10_000  # denial times kept per agent, at most


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


@dataclass
class RunResult:
    playbook: str
    agent: str
    run: str | None  # None: not run (a condition failed, or it ran within its cooldown)
    steps: list[Step] = field(default_factory=list)
    why_not: str = ""

    @property
    def ok(self) -> bool:
        return self.run is not None and all(s.outcome in ("done", "already") for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "agent": self.agent,
            "run": self.run,
            "steps": [s.to_dict() for s in self.steps],
            "why_not": self.why_not,
        }


class ResponseEngine:
    """Runs the active playbooks for every enforcement point and control plane process."""

    def __init__(
        self,
        authority: IdentityAuthority,
        recorder: DecisionRecorder,
        policy: PolicyEngine,
        *,
        runner: str,
        trusted_keys: list[Ed25519PublicKey] | None = None,
        require_signature: bool = False,
        workers: int = 4,
    ) -> None:
        self.authority = authority
        self.recorder = recorder
        self.policy = policy
        self.runner = runner
        self.incidents = Incidents(authority.store)
        self.runs = Runs(authority.store)
        self.active: PlaybookBundle | None = None
        self._trusted = trusted_keys or []
        self._require_signature = require_signature
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="warden-response")
        self._denials: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._pending: set[Future[RunResult]] = set()
        # Set from the active bundle, so the request path looks up only what can match.
        self._by_kind: dict[str, list[Playbook]] = {}
        self._policy_ids: frozenset[str] = frozenset()
        self.risk_of: Callable[[str], list[Any]] = lambda _agent: []
        self.on_run: Callable[[RunResult], None] | None = None  # tests, the console

    # -- the bundle ----------------------------------------------------------------------------

    def activate(self, path: Path) -> PlaybookBundle:
        """Make the bundle at ``path`` active: signature (when required or present), schema,
        and no rollback (its version must be above the last one activated on this store)."""
        try:
            files = BundleFiles.read(path)
            if self._require_signature or files.files.get("bundle.sig") is not None:
                if not self._trusted:
                    raise BundleRejected(files.source, "signed playbooks need a trusted key")
                verify_signature(files, self._trusted)
            bundle = compile_playbooks(files)
        except BundleRejected:
            raise
        except WardenError as exc:
            raise BundleRejected(str(path), exc.message) from exc
        except OSError as exc:
            raise BundleRejected(str(path), f"cannot read: {exc}") from exc
        self._claim(bundle)
        self._install(bundle)
        self.recorder.note(
            "response",
            {
                "event": "playbooks_activated",
                "name": bundle.name,
                "version": bundle.version,
                "revision": bundle.revision,
                "playbooks": [p.name for p in bundle.playbooks],
            },
        )
        return bundle

    def _claim(self, bundle: PlaybookBundle) -> None:
        store = self.authority.store
        for _ in range(10):
            stored = store.get_meta(ACTIVE_KEY)
            if stored is not None:
                version_text, _, revision = stored.partition(" ")
                if bundle.version == int(version_text) and bundle.revision == revision:
                    return
                if bundle.version <= int(version_text):
                    raise BundleRejected(
                        bundle.source,
                        f"version {bundle.version} does not follow the active version "
                        f"{version_text} (no rollback; raise the version to change playbooks)",
                    )
            if store.compare_and_set_meta(
                ACTIVE_KEY, stored, f"{bundle.version} {bundle.revision}"
            ):
                return
        raise BundleRejected(bundle.source, "the active playbooks kept changing; try again")

    def _install(self, bundle: PlaybookBundle) -> None:
        by_kind: dict[str, list[Playbook]] = {}
        for playbook in bundle.playbooks:
            if playbook.enabled:
                by_kind.setdefault(playbook.trigger.kind, []).append(playbook)
        ids = {i for p in by_kind.get("policy", []) for i in p.trigger.policy.ids}  # type: ignore[union-attr]
        with self._lock:
            self.active = bundle
            self._by_kind = by_kind
            self._policy_ids = frozenset(ids)

    # -- what happens (cheap: these run where the event arises) ----------------------------------

    def attach(self, events: TrustEvents) -> None:
        events.subscribe(self.on_event)

    def on_raised(
        self, agent: str, raised: list[Factor], score: int, parts: list[tuple[Factor, int]]
    ) -> None:
        """The risk engine raised ``raised`` against ``agent``; its score is now ``score``."""
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
            self._fire(playbook, agent, "risk", _risk_detail(score, parts))
        for playbook in by_kind.get("detector", ()):
            detector = playbook.trigger.detector
            assert detector is not None
            hit = next(
                (f for f in raised if f.code == detector.name and f.points >= detector.min_points),
                None,
            )
            if hit is not None:
                detail = {"detector": hit.code, "words": hit.words, **_risk_detail(score, parts)}
                self._fire(playbook, agent, "detector", detail)

    def on_event(self, event: TrustEvent) -> None:
        """A trust event (DLP, health) from this process's enforcement point."""
        by_kind = self._by_kind
        classes = tuple(str(c) for c in event.detail.get("classes", ()) or ())
        if event.kind in ("dlp_window_exceeded", "bulk_export", "residency_breach"):
            for playbook in by_kind.get("dlp", ()):
                trigger = playbook.trigger.dlp
                assert trigger is not None
                if event.kind not in trigger.events:
                    continue
                if trigger.classes and not set(trigger.classes) & set(classes):
                    continue
                self._fire(playbook, event.agent, "dlp", event.to_dict(), classes)
        elif event.kind == "health_changed":
            status = str(event.detail.get("to", ""))
            if status == "healthy":
                self._submit(lambda: self._clean_report(event))
                return
            for playbook in by_kind.get("health", ()):
                health = playbook.trigger.health
                assert health is not None
                if status in health.status:
                    self._fire(playbook, event.agent, "health", event.to_dict())

    def on_decision(self, request: DecisionRequest, decision: Decision) -> None:
        """Each decision an enforcement point made (after it answered)."""
        by_kind = self._by_kind
        if not decision.allowed and "denials" in by_kind:
            self._count_denial(request.subject_id, by_kind["denials"])
        if self._policy_ids:
            ids = {r.policy for r in decision.reasons} & self._policy_ids
            if ids:
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
                        self._fire(playbook, request.subject_id, "policy", detail, classes)

    def on_attestation_failed(self, agent: str, reason: str, method: str) -> None:
        for playbook in self._by_kind.get("attestation_failed", ()):
            detail = {"reason": reason, "method": method}
            self._fire(playbook, agent, "attestation_failed", detail)

    def trigger(self, name: str, agent_name: str, *, by: str, reason: str) -> RunResult:
        """Run a playbook by hand for one agent (any trigger kind), now; waits for it."""
        bundle = self.active
        playbook = bundle.by_name(name) if bundle is not None else None
        if playbook is None:
            raise WardenError(f"no active playbook {name!r}", code="playbook_not_found")
        agent = self.authority.agents.get(agent_name)
        firing = Firing(playbook, agent.spiffe_id, "manual", {"reason": reason[:500]}, by=by)
        return self.run(firing)

    def _count_denial(self, agent: str, playbooks: list[Playbook]) -> None:
        now = time.time()
        with self._lock:
            times = self._denials.setdefault(agent, deque(maxlen=DENIAL_MEMORY))
            times.append(now)
        for playbook in playbooks:
            trigger = playbook.trigger.denials
            assert trigger is not None
            recent = sum(1 for t in list(times) if t > now - trigger.within_s)
            if recent >= trigger.count:
                detail = {"denials": recent, "within_s": trigger.within_s}
                self._fire(playbook, agent, "denials", detail)

    def _fire(
        self,
        playbook: Playbook,
        agent: str,
        kind: str,
        detail: dict[str, Any],
        classes: tuple[str, ...] = (),
    ) -> None:
        firing = Firing(playbook, agent, kind, detail, classes)
        self._submit(lambda: self.run(firing))

    def _submit(self, job: Callable[[], Any]) -> None:
        try:
            future = self._pool.submit(job)
        except RuntimeError:  # shutting down
            return
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
        exc = future.exception()
        if exc is not None:
            log.error("a playbook run failed: %s", exc, exc_info=exc)

    # -- running (worker threads) --------------------------------------------------------------

    def run(self, firing: Firing) -> RunResult:
        """Check the conditions, claim the run, carry out each action, record each step."""
        playbook = firing.playbook
        result = RunResult(playbook.name, firing.agent, None)
        agent = self.authority.agents.find_by_spiffe_id(firing.agent)
        if agent is None:
            result.why_not = "not a registered agent"
            return result
        # By hand, the operator chose the agent: conditions are for what happens on its own.
        why_not = "" if firing.kind == "manual" else _conditions_fail(playbook, agent, firing)
        if why_not:
            result.why_not = why_not
            return result
        bundle = self.active
        trigger = {"kind": firing.kind, **firing.detail}
        if firing.by:
            trigger["by"] = firing.by
        key = self.runs.claim(
            playbook=playbook.name,
            version=bundle.version if bundle is not None else 0,
            agent=agent.name,
            trigger=trigger,
            runner=self.runner,
            cooldown_s=0 if firing.kind == "manual" else playbook.cooldown_s,
        )
        if key is None:
            result.why_not = "ran within its cooldown"
            return result
        result.run = key
        context = StepContext(
            engine=self,
            agent=agent,
            playbook=playbook,
            trigger=trigger,
            run=key,
            classes=firing.classes,
        )
        for action in playbook.actions:
            step = run_action(action, context)
            result.steps.append(step)
            self._record_step(context, step)
        status = "done" if result.ok else "failed"
        self.runs.finish(key, status, [s.to_dict() for s in result.steps])
        if self.on_run is not None:
            self.on_run(result)
        return result

    def _record_step(self, context: StepContext, step: Step) -> None:
        body = {
            "event": "action",
            "run": context.run,
            "playbook": context.playbook.name,
            "agent": context.agent.spiffe_id,
            "trigger": context.trigger,
            "runner": self.runner,
            **step.to_dict(),
        }
        try:
            self.recorder.append("response", body, subject=context.agent.spiffe_id)
        except Exception as exc:  # the action stands; its record is what failed
            log.error("response step of %s not recorded: %s", context.run, exc)

    def _clean_report(self, event: TrustEvent) -> None:
        """A clean report lifts restrictions held until one."""
        agent = self.authority.agents.find_by_spiffe_id(event.agent)
        if agent is None:
            return
        restrict = agent.containment.get("restrict") or {}
        if restrict.get("until") != "clean_report":
            return
        if self.authority.agents.contain(agent.name, "restrict", None, "clean report"):
            self.recorder.append(
                "response",
                {
                    "event": "lifted",
                    "agent": agent.spiffe_id,
                    "lift": "restrict",
                    "because": event.to_dict(),
                    "playbook": str(restrict.get("playbook", "")),
                },
                subject=agent.spiffe_id,
            )

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait for the runs under way (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.result(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def _risk_detail(score: int, parts: list[tuple[Factor, int]]) -> dict[str, Any]:
    return {"score": score, "factors": [[f.words, p] for f, p in parts[:5]]}


def _conditions_fail(playbook: Playbook, agent: Agent, firing: Firing) -> str:
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
