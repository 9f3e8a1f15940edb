"""The actions a playbook runs. Each is idempotent (doing it twice leaves what doing it once
did: an agent quarantined already is left so and says ``already``) and retried with backoff
when what it needs (the store, a webhook receiver) fails for a moment."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from warden.clock import isoformat, utcnow
from warden.errors import ConfigError, StoreError
from warden.identity.errors import AgentNotFound, InvalidTransition
from warden.identity.registry import Agent
from warden.response import notify
from warden.response.playbooks import (
    Action,
    Incident,
    Notify,
    Playbook,
    Release,
    Reprovision,
    RequireApproval,
    Restrict,
    Throttle,
)

if TYPE_CHECKING:
    from warden.response.engine import ResponseEngine

log = logging.getLogger("warden.response")


class Already(Exception):
    """The action's effect holds already (idempotence, not failure)."""


class NotConfigured(Exception):
    """The playbook names a webhook or hook that Warden's configuration does not have."""


@dataclass
class Step:
    action: str
    outcome: str  # done | already | failed | not_configured | pending
    detail: str
    attempts: int = 1
    at: str = field(default_factory=lambda: isoformat(utcnow()))  # when it ended (committed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "outcome": self.outcome,
            "detail": self.detail[:2000],
            "attempts": self.attempts,
            "at": self.at,
        }


@dataclass
class StepContext:
    engine: ResponseEngine
    agent: Agent
    playbook: Playbook
    trigger: dict[str, Any]
    run: str
    classes: tuple[str, ...] = ()
    incident: str | None = None  # set by an ``incident`` step, for the steps after it
    fresh: str | None = None  # the agent a ``reprovision`` step registered
    done: list[str] = field(default_factory=list)

    @property
    def why(self) -> str:
        return f"playbook {self.playbook.name} ({self.trigger.get('kind', '?')})"


# kind -> (attempts, first backoff in seconds): the store recovers in moments, a receiver may
# take longer.
RETRY = {"notify": (5, 0.5), "reprovision": (3, 1.0)}
DEFAULT_RETRY = (4, 0.05)
# What a hook inherits from Warden's environment (no secrets, no WARDEN_* settings).
HOOK_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")
TRANSIENT = (StoreError, httpx.HTTPError, OSError, TimeoutError)


def run_action(action: Action, context: StepContext) -> Step:
    """Carry out one action with retries; never raises."""
    attempts, delay = RETRY.get(action.kind, DEFAULT_RETRY)
    perform = ACTIONS[action.kind]
    for attempt in range(1, attempts + 1):
        try:
            detail = perform(action.terms, context)
        except Already as exc:
            return Step(action.kind, "already", str(exc), attempt)
        except (NotConfigured, ConfigError) as exc:
            return Step(action.kind, "not_configured", str(exc), attempt)
        except TRANSIENT as exc:
            if attempt == attempts:
                return Step(action.kind, "failed", f"{type(exc).__name__}: {exc}", attempt)
            time.sleep(delay * 2 ** (attempt - 1))
            continue
        except Exception as exc:
            log.exception("%s: %s failed", context.run, action.kind)
            return Step(action.kind, "failed", f"{type(exc).__name__}: {exc}", attempt)
        context.done.append(action.kind)
        outcome = "pending" if detail.startswith("pending") else "done"
        return Step(action.kind, outcome, detail, attempt)
    raise AssertionError("unreachable")


def _revoke(_terms: Any, c: StepContext) -> str:
    before = c.agent.credential_epoch
    agent = c.engine.authority.agents.revoke(c.agent.name, c.why)
    return (
        f"credential epoch {before} -> {agent.credential_epoch}: every X.509-SVID and JWT-SVID "
        "issued to the agent is refused, renewals too"
    )


def _quarantine(_terms: Any, c: StepContext) -> str:
    try:
        c.engine.authority.agents.quarantine(c.agent.name, c.why)
    except InvalidTransition as exc:
        if c.engine.authority.agents.get(c.agent.name).status == "quarantined":
            raise Already("quarantined already") from exc
        raise
    return "every enforcement point denies the agent until it is released"


def _throttle(terms: Throttle, c: StepContext) -> str:
    held = {"rate": terms.rate, "route": terms.route, "playbook": c.playbook.name}
    return _hold(c, "throttle", held, f"capped at {terms.rate} on {terms.route or 'every route'}")


def _restrict(terms: Restrict, c: StepContext) -> str:
    held = {"classes": list(terms.classes), "until": terms.until, "playbook": c.playbook.name}
    until = "a clean vulnerability report" if terms.until == "clean_report" else "a release"
    return _hold(c, "restrict", held, f"only {', '.join(terms.classes)} data until {until}")


def _require_approval(terms: RequireApproval, c: StepContext) -> str:
    held = {
        "actions": list(terms.actions),
        "timeout_s": terms.timeout_s,
        "playbook": c.playbook.name,
    }
    return _hold(c, "approval", held, f"{', '.join(terms.actions)} wait for the owner")


def _hold(c: StepContext, kind: str, terms: dict[str, Any], words: str) -> str:
    terms["since"] = isoformat(utcnow())
    current = c.engine.authority.agents.get(c.agent.name).containment.get(kind) or {}
    if {k: v for k, v in current.items() if k != "since"} == {
        k: v for k, v in terms.items() if k != "since"
    }:
        raise Already(f"{kind} held already")
    c.engine.authority.agents.contain(c.agent.name, kind, terms, c.why)
    return words


def _incident(terms: Incident, c: StepContext) -> str:
    factors = c.engine.risk_of(c.agent.spiffe_id) or list(c.trigger.get("factors", []))
    incident = c.engine.incidents.open(
        agent=c.agent.name,
        spiffe_id=c.agent.spiffe_id,
        playbook=c.playbook.name,
        title=terms.title or f"{c.playbook.name}: {c.agent.name}",
        severity=terms.severity,
        events=[{"run": c.run, **c.trigger}],
        factors=factors,
    )
    c.incident = incident.id
    return f"incident {incident.id}"


def _notify(terms: Notify, c: StepContext) -> str:
    webhook = c.engine.authority.settings.response_webhooks.get(terms.webhook)
    if webhook is None:
        raise NotConfigured(f"no webhook {terms.webhook!r} in response_webhooks")
    message = {
        "summary": f"{c.playbook.name} ran for {c.agent.name} ({c.trigger.get('kind')})",
        "agent": c.agent.name,
        "spiffe_id": c.agent.spiffe_id,
        "owner": c.agent.owner,
        "playbook": c.playbook.name,
        "trigger": c.trigger,
        "score": c.trigger.get("score"),
        "actions": list(c.done),
        "incident": c.incident,
        "run": c.run,
        "at": isoformat(utcnow()),
    }
    status = notify.send(webhook, message, event_id=f"{c.run}:{len(c.done)}")
    return f"{terms.webhook} answered {status}"


class HookFailed(OSError):
    """The hook ran and failed (retried: it may depend on something that comes back)."""


def _reprovision(terms: Reprovision, c: StepContext) -> str:
    """A fresh identity for the agent (registered once per run, kept across retries), then
    the operator's hook, which starts the new instance (through ``warden run``, the launcher
    attestor). The old agent is left as the steps before left it, for investigation."""
    settings = c.engine.authority.settings
    argv = settings.response_hooks.get(terms.hook)
    if not argv:
        raise NotConfigured(f"no hook {terms.hook!r} in response_hooks")
    if c.fresh is None:
        c.fresh = _fresh_identity(c)
    fresh = c.engine.authority.agents.get(c.fresh)
    env = {k: os.environ[k] for k in HOOK_ENV if k in os.environ}
    env.update(
        {
            "WARDEN_AGENT": fresh.name,
            "WARDEN_AGENT_SPIFFE_ID": fresh.spiffe_id,
            "WARDEN_PREVIOUS_AGENT": c.agent.name,
            "WARDEN_PREVIOUS_SPIFFE_ID": c.agent.spiffe_id,
            "WARDEN_PLAYBOOK": c.playbook.name,
            "WARDEN_RUN": c.run,
            "WARDEN_INCIDENT": c.incident or "",
            "WARDEN_STATE_DIR": str(settings.state_dir.resolve()),
        }
    )
    try:
        done = subprocess.run(  # an argv the operator configured, never a shell
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=settings.response_hook_timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HookFailed(f"{terms.hook} ran past {settings.response_hook_timeout_s:g} s") from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-500:]
        raise HookFailed(f"{terms.hook} exited {done.returncode}: {said}")
    status = c.engine.authority.agents.get(c.agent.name).status
    return f"{terms.hook} started {fresh.name} ({fresh.spiffe_id}); {c.agent.name} stays {status}"


def _fresh_identity(c: StepContext) -> str:
    """Register ``<name>-r<N>`` with the old agent's owner, purpose, groups and labels."""
    base = re.sub(r"-r[0-9]+$", "", c.agent.name)[:58]
    agents = c.engine.authority.agents
    old = agents.get(c.agent.name)
    for n in range(1, 1000):
        name = f"{base}-r{n}"
        try:
            agents.get(name)
        except AgentNotFound:
            agents.register(
                name,
                owner=old.owner,
                purpose=old.purpose,
                labels={**old.labels, "replaces": old.name},
                groups=old.groups,
            )
            return name
    raise HookFailed(f"no free name for a fresh instance of {base}")


def _release(terms: Release, c: StepContext) -> str:
    """Asks for the release; an approver's ``approve`` carries it out."""
    pending = [
        a
        for a in c.engine.approvals.list(status="pending", agent=c.agent.name)
        if a.kind == "release" and sorted(a.detail.get("lift", [])) == sorted(terms.lift)
    ]
    if pending:
        raise Already(f"release asked already: approval {pending[0].id}")
    approval = c.engine.approvals.park(
        agent=c.agent.name,
        kind="release",
        action="release:" + ",".join(terms.lift),
        resource=f"Agent:{c.agent.spiffe_id}",
        decision_id=None,
        detail={
            "lift": list(terms.lift),
            "playbook": c.playbook.name,
            "run": c.run,
            "spiffe_id": c.agent.spiffe_id,
            "owner": c.agent.owner,
        },
        timeout_s=terms.timeout_s,
    )
    return f"pending: approval {approval.id} lifts {', '.join(terms.lift)} once approved"


ACTIONS: dict[str, Callable[[Any, StepContext], str]] = {
    "revoke": _revoke,
    "quarantine": _quarantine,
    "throttle": _throttle,
    "restrict": _restrict,
    "require_approval": _require_approval,
    "notify": _notify,
    "incident": _incident,
    "reprovision": _reprovision,
    "release": _release,
}
