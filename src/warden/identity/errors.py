"""Errors of the identity authority, each with a stable code and a message built from its inputs.

Credential rejections are :class:`CredentialRejected` (untrusted input: the presenter is at fault).
Faults of the CA, the key manager or the registry are :class:`~warden.errors.IdentityError`.
"""

from __future__ import annotations

from warden.errors import ConflictError, IdentityError, NotFoundError, UntrustedInputError


class InvalidSpiffeId(UntrustedInputError):
    """A string is not a SPIFFE ID as the SPIFFE ID specification defines it."""

    code = "invalid_spiffe_id"
    public_message = "invalid SPIFFE ID"

    def __init__(self, value: str, why: str) -> None:
        super().__init__(f"invalid SPIFFE ID {value[:200]!r}: {why}")
        self.value = value
        self.why = why


class InvalidName(UntrustedInputError):
    """An agent or operator name does not fit the naming rules."""

    code = "invalid_name"
    public_message = "invalid name"

    def __init__(self, value: str, why: str) -> None:
        super().__init__(f"invalid name {value[:100]!r}: {why}")


class CredentialRejected(UntrustedInputError):
    """A presented credential (X.509-SVID or JWT-SVID) failed verification.

    ``code`` says which check failed; the wire only ever shows ``credential_rejected``.
    """

    code = "credential_rejected"
    public_message = "credential rejected"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}", code=code)
        self.detail = detail


class AgentNotFound(NotFoundError):
    code = "agent_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no agent named {name!r}")
        self.name = name


class OperatorNotFound(NotFoundError):
    code = "operator_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no operator named {name!r}")
        self.name = name


class NameTaken(ConflictError):
    code = "name_taken"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")


class SpiffeIdNotReusable(ConflictError):
    code = "spiffe_id_not_reusable"

    def __init__(self, spiffe_id: str, until: str) -> None:
        super().__init__(
            f"{spiffe_id} belonged to a deleted agent and cannot be reused until {until}"
        )


class InvalidTransition(ConflictError):
    code = "invalid_transition"

    def __init__(self, name: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} {name!r}: its status is {status}")


class AgentNotActive(UntrustedInputError):
    """A credential was asked for an agent that is disabled or revoked."""

    code = "agent_not_active"
    public_message = "agent is not active"

    def __init__(self, name: str, status: str) -> None:
        super().__init__(f"agent {name!r} is {status}; no credential is issued")


class TtlOutOfBounds(UntrustedInputError):
    code = "ttl_out_of_bounds"
    public_message = "requested TTL out of bounds"

    def __init__(self, requested: int, maximum: int) -> None:
        super().__init__(f"requested TTL {requested}s exceeds the maximum {maximum}s")


class InvalidCsr(UntrustedInputError):
    code = "invalid_csr"
    public_message = "invalid certificate signing request"

    def __init__(self, why: str) -> None:
        super().__init__(f"invalid CSR: {why}")


class CaNotInitialised(IdentityError):
    code = "ca_not_initialised"

    def __init__(self) -> None:
        super().__init__("the certificate authority is not initialised: run `warden init`")


class KeyStoreError(IdentityError):
    code = "key_store_error"

    def __init__(self, why: str) -> None:
        super().__init__(f"key store: {why}")


class AlreadyInitialised(ConflictError):
    code = "already_initialised"

    def __init__(self, trust_domain: str) -> None:
        super().__init__(
            f"this store already holds trust domain {trust_domain!r}; refusing to initialise twice"
        )


class StatusUnavailable(IdentityError):
    """The verifier's view of principal status is older than its bound: it refuses to answer."""

    code = "status_unavailable"
    public_message = "identity status unavailable"

    def __init__(self, age_s: float) -> None:
        super().__init__(f"principal status is {age_s:.1f}s old and the store cannot be read")


class InvalidSelector(UntrustedInputError):
    code = "invalid_selector"
    public_message = "invalid selector"

    def __init__(self, value: str, why: str) -> None:
        super().__init__(f"invalid selector {value[:200]!r}: {why}")


class SelectorConflict(ConflictError):
    """A selector set equal to, inside, or containing another agent's: a caller could match
    both, and Warden never guesses between two identities."""

    code = "selector_conflict"

    def __init__(self, other: str) -> None:
        super().__init__(f"the selectors overlap those of agent {other!r} (equal or contained)")


class AttestationFailed(UntrustedInputError):
    """A workload's evidence did not identify exactly one active agent."""

    code = "attestation_failed"
    public_message = "no identity issued"

    def __init__(self, why: str) -> None:
        super().__init__(f"attestation failed: {why}")
        self.why = why
