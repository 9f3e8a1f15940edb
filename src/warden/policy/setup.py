"""Assembling the policy engine from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority
from warden.policy.administrator import PolicyAdministrator
from warden.policy.engine import PolicyEngine
from warden.policy.errors import BundleRejected
from warden.policy.packs import shipped_policies
from warden.policy.signing import load_public_key

log = logging.getLogger("warden.policy")


def bundle_path(authority: IdentityAuthority) -> Path:
    """The configured bundle, or the default pack shipped with Warden."""
    return authority.settings.policy_bundle or shipped_policies() / "default"


def open_policy_engine(
    authority: IdentityAuthority, clock: Callable[[], datetime] = utcnow
) -> PolicyEngine:
    """An engine with the configured bundle active (if it passes) and shadow (if any).

    A bundle that fails at start leaves no bundle active: every decision is then a deny that
    says so, never an allow.
    """
    settings = authority.settings
    administrator = PolicyAdministrator(
        authority.store,
        trusted_keys=[load_public_key(p.read_bytes()) for p in settings.policy_signing_keys],
        require_signature=settings.policy_require_signature,
    )
    try:
        administrator.activate(bundle_path(authority))
    except BundleRejected as exc:
        log.error("no policy bundle active: %s", exc.message)
    if settings.policy_shadow_bundle is not None:
        try:
            administrator.set_shadow(settings.policy_shadow_bundle)
        except BundleRejected as exc:
            log.error("no shadow bundle: %s", exc.message)
    return PolicyEngine(
        authority.store,
        administrator,
        view=authority.status,
        signal_max_age_s=settings.signal_max_age_s,
        clock=clock,
    )
