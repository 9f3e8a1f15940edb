"""Assembling the response engine of a process from its settings and its parts."""

from __future__ import annotations

import logging
from pathlib import Path

from warden.audit.recorder import DecisionRecorder
from warden.identity.authority import IdentityAuthority
from warden.policy.errors import BundleRejected
from warden.policy.packs import shipped_playbooks
from warden.policy.signing import load_public_key
from warden.response.engine import ResponseEngine
from warden.risk.engine import RiskEngine
from warden.trust.events import TrustEvents

log = logging.getLogger("warden.response")
# What this process already said is not configured: `warden up` runs two response engines
# (the control plane's and the gateway's) on the same playbooks, and one warning is enough.
_reported: set[str] = set()


def playbooks_path(authority: IdentityAuthority) -> Path:
    """The configured playbooks, or the defaults shipped with Warden."""
    return authority.settings.playbooks or shipped_playbooks() / "default"


def open_response_engine(
    authority: IdentityAuthority,
    recorder: DecisionRecorder,
    *,
    runner: str,
    risk: RiskEngine | None = None,
    events: TrustEvents | None = None,
) -> ResponseEngine | None:
    """The process's response engine with the configured playbooks active, fed by ``risk``
    and ``events``; None when response is switched off. Playbooks that fail to activate leave
    none active (logged, and the engine still answers manual lookups with nothing)."""
    settings = authority.settings
    if not settings.response_enabled:
        return None
    engine = ResponseEngine(
        authority,
        recorder,
        runner=runner,
        trusted_keys=[load_public_key(p.read_bytes()) for p in settings.policy_signing_keys],
        require_signature=settings.policy_require_signature,
    )
    try:
        bundle = engine.activate(playbooks_path(authority))
    except BundleRejected as exc:
        log.error("no playbooks active: %s", exc.message)
    else:
        for missing in bundle.unconfigured(settings.response_webhooks, settings.response_hooks):
            if missing not in _reported:
                _reported.add(missing)
                log.warning("playbook %s is not configured: that action will not run", missing)
    if risk is not None:
        risk.on_raised = engine.on_raised
        engine.risk_of = lambda agent: [list(p) for p in risk.assessment(agent).factors]
    if events is not None:
        engine.attach(events)
    return engine
