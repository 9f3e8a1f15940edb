"""Errors of the policy administrator."""

from __future__ import annotations

from warden.errors import PolicyError


class PolicyPackInvalid(PolicyError):
    """A policy pack does not parse or does not validate against its schema."""

    code = "policy_pack_invalid"

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"policy pack {where}: {why}")
