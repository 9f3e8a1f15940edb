"""Opening the decision log of an installation: its keys from the CA, masking and witness
from the settings."""

from __future__ import annotations

from pathlib import Path

from warden.audit.checkpoint import VerifierKey
from warden.audit.entries import DEFAULT_MASKED, Masking
from warden.audit.log import DecisionLog
from warden.audit.witness import (
    HttpWitnessClient,
    WitnessDirectory,
    WitnessPublisher,
    WitnessTarget,
    proof_source,
)
from warden.identity.authority import IdentityAuthority


def open_decision_log(authority: IdentityAuthority, *, follow_events: bool = False) -> DecisionLog:
    """The log, with its writer started. ``follow_events``: also copy identity and policy
    events into it (the control plane does; gateways only append their decisions)."""
    settings = authority.settings
    keys = authority.ca.log_keys()
    masking = Masking.of(settings.audit_mask_keys or DEFAULT_MASKED, keys.fingerprint)
    witness = None
    target = witness_target(settings.audit_witness, VerifierKey.parse(keys.verifier_key))
    if target is not None:
        witness = WitnessPublisher(target, proof_source(authority.store.engine))
    return DecisionLog(
        authority.store,
        keys,
        masking=masking,
        checkpoint_interval_s=settings.audit_checkpoint_interval_s,
        witness=witness,
        follow_events=follow_events,
    )


def witness_target(where: str | None, key: VerifierKey) -> WitnessTarget | None:
    """A witness from its setting: an http(s) URL, or a directory."""
    if not where:
        return None
    if where.startswith(("http://", "https://")):
        return HttpWitnessClient(where, key)
    return WitnessDirectory(Path(where), key)
