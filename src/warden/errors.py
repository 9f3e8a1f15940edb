"""The root of Warden's error hierarchy.

Every error has a stable ``code`` (safe to put on the wire and to match on in scripts) and a
human message that may carry detail for the operator's log. Each component has one base class.
Errors caused by untrusted input (a forged certificate, a malformed body) derive from
:class:`UntrustedInputError`; faults of Warden's own machinery (the store is down, a key file has
the wrong mode) do not. What crosses the wire is only the code and a short public message.
"""

from __future__ import annotations


class WardenError(Exception):
    """Base of every error Warden raises on purpose."""

    code: str = "warden_error"
    public_message: str = "request failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.public_message


class UntrustedInputError(WardenError):
    """The remote side is at fault: what it sent is malformed, forged, expired or not allowed."""

    code = "untrusted_input"


class ConfigError(WardenError):
    """The local configuration is missing, malformed or out of bounds."""

    code = "config_error"


class StoreError(WardenError):
    """The store failed (unreachable, locked, migration missing). Never the caller's fault."""

    code = "store_error"


class NotFoundError(WardenError):
    """A named object does not exist."""

    code = "not_found"
    public_message = "not found"


class ConflictError(WardenError):
    """The request conflicts with existing state (a name taken, a selector set overlapping)."""

    code = "conflict"
    public_message = "conflict"


class IdentityError(WardenError):
    """Base for faults of the identity authority itself (CA, key manager, registry)."""

    code = "identity_error"


class PolicyError(WardenError):
    """Base for faults of the policy administrator and engine."""

    code = "policy_error"


class EnforcementError(WardenError):
    """Base for faults of enforcement points."""

    code = "enforcement_error"


class AuditError(WardenError):
    """Base for faults of the decision log."""

    code = "audit_error"
