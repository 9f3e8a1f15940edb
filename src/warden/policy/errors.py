"""Errors of the policy administrator."""

from __future__ import annotations

from warden.errors import PolicyError


class PolicyPackInvalid(PolicyError):
    """A policy pack does not parse or does not validate against its schema."""

    code = "policy_pack_invalid"

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"policy pack {where}: {why}")


class BundleRejected(PolicyError):
    """A policy bundle was refused (bad signature, rollback, failing tests...). The previous
    good bundle stays active."""

    code = "bundle_rejected"

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"policy bundle {where} rejected: {why}")
        self.why = why
