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
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from warden.audit.recorder import DecisionRecorder
from warden.errors import NotFoundError, WardenError
from warden.identity.authority import IdentityAuthority
from warden.policy.bundle import BundleFiles
from warden.policy.errors import BundleRejected
from warden.policy.signing import verify_signature
from warden.response.actions import Step, StepContext, run_action
from warden.response.approvals import Approval, Approvals
from warden.response.matching import Firing, Matcher, conditions_fail
from warden.response.playbooks import PlaybookBundle, compile_playbooks
from warden.response.records import Incident, Incidents, Runs
from warden.trust.events import TrustEvent, TrustEvents

log = logging.getLogger("warden.response")
# Actions that only hold the agent: idempotent, run first (see ResponseEngine.run).
CONTAINING = frozenset({"revoke", "quarantine", "throttle", "restrict", "require_approval"})
ACTIVE_KEY = "playbooks_active"  # "<version> <revision>"


@dataclass
class RunResult:
    playbook: str
    agent: str
    run: str | None  # None: not run (a condition failed, or it ran within its cooldown)
    steps: list[Step] = field(default_factory=list)
    why_not: str = ""

    @property
    def ok(self) -> bool:
        return self.run is not None and all(
            s.outcome in ("done", "already", "pending") for s in self.steps
        )

    @property
    def status(self) -> str:
        """done; failed (an action failed); incomplete (one names an unconfigured webhook or
        hook, which only the operator can fix)."""
        outcomes = {s.outcome for s in self.steps}
        if "failed" in outcomes:
            return "failed"
        return "incomplete" if "not_configured" in outcomes else "done"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "playbook": self.playbook,
            "agent": self.agent,
            "run": self.run,
            "steps": [s.to_dict() for s in self.steps],
            "why_not": self.why_not,
        }


class ResponseEngine(Matcher):
    """Runs the active playbooks for every enforcement point and control plane process."""

    def __init__(
        self,
        authority: IdentityAuthority,
        recorder: DecisionRecorder,
        *,
        runner: str,
        trusted_keys: list[Ed25519PublicKey] | None = None,
        require_signature: bool = False,
        workers: int = 4,
    ) -> None:
        super().__init__()
        self.authority = authority
        self.recorder = recorder
        self.runner = runner
        self.incidents = Incidents(authority.store)
        self.runs = Runs(authority.store)
        self.approvals = Approvals(authority.store, on_release=self.carry_out_release)
        self._trusted = trusted_keys or []
        self._require_signature = require_signature
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="warden-response")
        self._pending: set[Future[RunResult]] = set()
        self._started: dict[tuple[str, str], float] = {}
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
        self.install(bundle)
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

    def trigger(self, name: str, agent_name: str, *, by: str, reason: str) -> RunResult:
        """Run a playbook by hand for one agent (any trigger kind), now; waits for it."""
        bundle = self.active
        playbook = bundle.by_name(name) if bundle is not None else None
        if playbook is None:
            raise NotFoundError(f"no active playbook {name!r}", code="playbook_not_found")
        agent = self.authority.agents.get(agent_name)
        firing = Firing(playbook, agent.spiffe_id, "manual", {"reason": reason[:500]}, by=by)
        return self.run(firing)

    def attach(self, events: TrustEvents) -> None:
        events.subscribe(self.on_event)

    def fire(self, firing: Firing) -> None:
        self._submit(lambda: self.run(firing))

    def clean_report(self, event: TrustEvent) -> None:
        self._submit(lambda: self._clean_report(event))

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
        """Check the conditions, contain, claim the run, carry out the rest, record each step.

        The leading actions that only hold the agent (revoke, quarantine, throttle, restrict,
        require approval) run before the run is claimed in the store, so no write waits ahead
        of them: they are idempotent, and two enforcement points that see the same event may
        both contain (the second finds it done). What has effects outside (an incident, a
        notification, a hook) runs once, for whoever claimed the run.
        """
        playbook = firing.playbook
        result = RunResult(playbook.name, firing.agent, None)
        agent = self.authority.agents.find_by_spiffe_id(firing.agent)
        if agent is None:
            result.why_not = "not a registered agent"
            return result
        # By hand, the operator chose the agent: conditions are for what happens on its own.
        manual = firing.kind == "manual"
        why_not = "" if manual else conditions_fail(playbook, agent, firing)
        if why_not:
            result.why_not = why_not
            return result
        cooldown = 0.0 if manual else playbook.cooldown_s
        if not self._first_here(playbook.name, agent.name, cooldown):
            result.why_not = "ran within its cooldown"
            return result
        trigger = {"kind": firing.kind, **firing.detail}
        if firing.by:
            trigger["by"] = firing.by
        context = StepContext(self, agent, playbook, trigger, run="", classes=firing.classes)
        lead = 0
        while lead < len(playbook.actions) and playbook.actions[lead].kind in CONTAINING:
            result.steps.append(run_action(playbook.actions[lead], context))
            lead += 1
        bundle = self.active
        key = self.runs.claim(
            playbook=playbook.name,
            version=bundle.version if bundle is not None else 0,
            agent=agent.name,
            trigger=trigger,
            runner=self.runner,
            cooldown_s=cooldown,
        )
        for step in result.steps:
            self._record_step(context, step, run=key or "")
        if key is None:  # another enforcement point's run: its side effects are its own
            result.why_not = "ran within its cooldown"
            return result
        result.run = context.run = key
        for action in playbook.actions[lead:]:
            step = run_action(action, context)
            result.steps.append(step)
            self._record_step(context, step, run=key)
        self.runs.finish(key, result.status, [s.to_dict() for s in result.steps])
        if self.on_run is not None:
            self.on_run(result)
        return result

    def _first_here(self, playbook: str, agent: str, cooldown_s: float) -> bool:
        """Whether this process has not started this playbook for this agent within its
        cooldown (a burst of events runs it once; the store decides across processes)."""
        now = time.monotonic()
        with self._lock:
            last = self._started.get((playbook, agent))
            if cooldown_s > 0 and last is not None and now - last < cooldown_s:
                return False
            self._started[(playbook, agent)] = now
        return True

    def _record_step(self, context: StepContext, step: Step, *, run: str) -> None:
        body = {
            "event": "action",
            "run": run,
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

    def decide_approval(
        self, approval_id: str, *, approve: bool, by: str, reason: str = ""
    ) -> Approval:
        """Approve or deny a parked request or a release, on record (the API and the CLI)."""
        decided = self.approvals.decide(approval_id, approve=approve, by=by, reason=reason)
        self.recorder.append(
            "response",
            {
                "event": "approval",
                "approval": approval_id,
                "outcome": decided.status,
                "by": by,
                "kind": decided.kind,
                "action": decided.action,
                "decision_id": decided.decision_id or "",
                "reason": reason,
            },
            subject=str(decided.detail.get("spiffe_id", "")) or None,
        )
        return decided

    def resolve_incident(self, incident_id: str, *, by: str, resolution: str) -> Incident:
        """Close an incident, on record."""
        resolved = self.incidents.resolve(incident_id, by=by, resolution=resolution)
        self.recorder.append(
            "response", {"event": "incident_resolved", "incident": incident_id, "by": by}
        )
        return resolved

    def carry_out_release(self, approval: Approval) -> None:
        """An approved release: lift what it names, each on record."""
        agent = self.authority.agents.get(approval.agent)
        lifted = []
        for kind in approval.detail.get("lift", []):
            if kind == "quarantine":
                if agent.status == "quarantined":
                    self.authority.agents.release(agent.name, f"approval {approval.id}")
                    lifted.append(kind)
            elif self.authority.agents.contain(agent.name, kind, None, f"approval {approval.id}"):
                lifted.append(kind)
        for kind in lifted:
            self.recorder.append(
                "response",
                {
                    "event": "lifted",
                    "agent": agent.spiffe_id,
                    "lift": kind,
                    "approval": approval.id,
                    "approved_by": approval.decided_by or "",
                    "playbook": str(approval.detail.get("playbook", "")),
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
