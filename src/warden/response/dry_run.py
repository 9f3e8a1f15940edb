"""``warden playbook dry-run``: replay what the decision log recorded through a playbook
bundle, and say what it would have done, without doing any of it.

Replayed: trust events (DLP windows, bulk exports, residency, health changes), risk level
changes (as the score and factors recorded then) and decisions (denial bursts, policy ids).
Conditions (labels as the agents have them now, data classes, time) and cooldowns are applied
as a live run would. Detector triggers need the factor that was raised, which the log keeps
only in words: they are reported as not replayable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from warden.audit.reader import LogReader
from warden.identity.registry import Agent, AgentRegistry
from warden.policy.model import Decision, DecisionRequest, Reason, Resource
from warden.response.matching import Firing, Matcher, conditions_fail
from warden.response.playbooks import PlaybookBundle
from warden.risk.detectors import Factor
from warden.trust.events import TrustEvent

CHUNK = 1000
ENVELOPE = ("v", "kind", "at", "event", "agent")


@dataclass(frozen=True)
class WouldRun:
    at: float
    agent: str
    playbook: str
    trigger: str
    actions: tuple[str, ...]
    why_not: str  # empty: it would have run

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "agent": self.agent,
            "playbook": self.playbook,
            "trigger": self.trigger,
            "actions": list(self.actions),
            "would_run": not self.why_not,
            "why_not": self.why_not,
        }


class DryRun(Matcher):
    def __init__(self, bundle: PlaybookBundle, agents: AgentRegistry) -> None:
        super().__init__()
        self.install(bundle)
        self._agents = agents
        self._known: dict[str, Agent | None] = {}
        self._last: dict[tuple[str, str], float] = {}
        self.found: list[WouldRun] = []

    def fire(self, firing: Firing) -> None:
        playbook = firing.playbook
        if firing.agent not in self._known:
            self._known[firing.agent] = self._agents.find_by_spiffe_id(firing.agent)
        agent = self._known[firing.agent]
        why_not = "not a registered agent now" if agent is None else ""
        if agent is not None:
            why_not = conditions_fail(playbook, agent, firing)
        key = (playbook.name, firing.agent)
        last = self._last.get(key)
        if not why_not and last is not None and firing.at - last < playbook.cooldown_s:
            why_not = "within its cooldown"
        if not why_not:
            self._last[key] = firing.at
        self.found.append(
            WouldRun(
                firing.at,
                agent.name if agent is not None else firing.agent,
                playbook.name,
                firing.kind,
                tuple(playbook.action_kinds()),
                why_not,
            )
        )

    def replay(self, entry: dict[str, Any]) -> None:
        at = _seconds(str(entry.get("at", "")))
        kind = entry.get("kind")
        if kind == "trust":
            event = str(entry.get("event", ""))
            agent = str(entry.get("agent", ""))
            detail = {
                k: v for k, v in entry.items() if k not in ("v", "kind", "at", "event", "agent")
            }
            if event == "risk_changed":
                named = bool(detail.get("contain"))
                parts = [
                    (Factor("recorded", int(p), str(w), named=named), int(p))
                    for w, p in detail.get("factors", [])
                ]
                self.on_raised(agent, [], int(detail.get("score", 0)), parts, at)
            else:
                self.on_event(TrustEvent(event, agent, detail), at)
        elif kind == "decision":
            request, decision = _decision(entry)
            self.on_decision(request, decision, at)


def dry_run(
    reader: LogReader, bundle: PlaybookBundle, agents: AgentRegistry, *, last: int = 10_000
) -> tuple[list[WouldRun], int]:
    """What ``bundle`` would have done over the ``last`` entries of the log; and how many
    entries were replayed."""
    runner = DryRun(bundle, agents)
    end = reader.size()
    start = max(0, end - last)
    for chunk in range(start, end, CHUNK):
        for _seq, raw in reader.entries(chunk, min(end, chunk + CHUNK)):
            runner.replay(json.loads(raw))
    return runner.found, end - start


def not_replayable(bundle: PlaybookBundle) -> list[str]:
    return [p.name for p in bundle.playbooks if p.trigger.kind in ("detector", "manual")]


def _seconds(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _decision(entry: dict[str, Any]) -> tuple[DecisionRequest, Decision]:
    subject = entry.get("subject") or {}
    resource = entry.get("resource") or {}
    request = DecisionRequest(
        subject_type=str(subject.get("type", "Agent")),
        subject_id=str(subject.get("id", "")),
        action=str(entry.get("action", "")),
        resource=Resource(
            str(resource.get("type", "")),
            str(resource.get("id", "")),
            dict(resource.get("properties") or {}),
        ),
        context={},
    )
    decision = Decision(
        decision_id=str(entry.get("decision_id", "")),
        decision="allow" if entry.get("decision") == "allow" else "deny",
        reasons=tuple(
            Reason(str(r.get("policy", "")), r.get("effect", "forbid"), str(r.get("message", "")))
            for r in entry.get("reasons", [])
        ),
        obligations=tuple(entry.get("obligations", [])),
        risk=dict(entry.get("risk") or {}),
        policy_revision=str(entry.get("policy_revision", "")),
        work_order=entry.get("work_order"),
        at=datetime.fromtimestamp(_seconds(str(entry.get("at", ""))), UTC),
    )
    return request, decision
