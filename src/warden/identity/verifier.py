"""The one credential verifier every enforcement point and API uses.

An X.509-SVID or JWT-SVID is accepted only when every check passes: it chains to the current
trust bundle (X.509: RFC 5280 path validation by ``cryptography``; JWT: ES256 by ``kid``), it
obeys the SPIFFE SVID rules, it is inside its validity window, its principal exists and is
active, it carries the principal's current credential epoch, and it is not individually revoked.
Each failure is a :class:`CredentialRejected` whose ``code`` names the check.

The expensive, stable part (signatures and path validation) is cached per credential until it
expires or the bundle changes; principal status and revocation are checked on every call, so a
revocation bites on the very next verification.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import jwt
from cryptography import x509
from cryptography.x509 import verification

from warden.clock import utcnow
from warden.identity.bundle import TrustBundle
from warden.identity.errors import CredentialRejected, InvalidSpiffeId
from warden.identity.spiffe_id import SpiffeId
from warden.identity.x509_profile import decode_epoch

EPOCH_CLAIM = "warden_epoch"
MAX_CHAIN_DEPTH = 4
CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class PrincipalState:
    """What the verifier needs to know of a principal: is it active, and its current epoch."""

    status: str
    epoch: int


class CredentialStatus(Protocol):
    """Live status of principals and individually revoked credentials."""

    def principal_state(self, spiffe_id: str) -> PrincipalState | None:
        """The principal's state, or None if no such principal exists."""

    def is_revoked(self, credential_id: str) -> bool:
        """Whether the X.509 serial (hex) or JWT ``jti`` was revoked."""


@dataclass(frozen=True, slots=True)
class VerifiedCredential:
    """A credential that passed every check."""

    spiffe_id: SpiffeId
    kind: Literal["x509", "jwt"]
    credential_id: str
    expires_at: datetime
    epoch: int
    audience: tuple[str, ...] = ()


class CredentialVerifier:
    """Verifies X.509-SVIDs and JWT-SVIDs against a bundle and live principal status."""

    def __init__(
        self,
        bundle: Callable[[], TrustBundle],
        status: CredentialStatus,
        *,
        clock_skew_s: int = 30,
    ) -> None:
        self._bundle = bundle
        self._status = status
        self._skew = clock_skew_s
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], VerifiedCredential] = {}
        self._cache_sequence = -1

    # -- X.509 ------------------------------------------------------------------------------

    def verify_x509(
        self, chain: Sequence[x509.Certificate], *, now: datetime | None = None
    ) -> VerifiedCredential:
        """Verify a presented chain (leaf first, then intermediates)."""
        if not chain:
            raise CredentialRejected("no_certificate", "no client certificate was presented")
        now = now or utcnow()
        bundle = self._bundle()
        leaf = chain[0]
        # Certificates hash and compare by their DER encoding: the same chain is the same key.
        key = ("x509", tuple(chain))
        credential = self._cached(key, bundle, now)
        if credential is None:
            credential = self._verify_x509_uncached(leaf, list(chain[1:]), bundle, now)
            self._remember(key, credential, bundle)
        return self._check_status(credential)

    def _verify_x509_uncached(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        bundle: TrustBundle,
        now: datetime,
    ) -> VerifiedCredential:
        spiffe_id = _leaf_spiffe_id(leaf)
        if not spiffe_id.member_of(bundle.trust_domain):
            raise CredentialRejected(
                "wrong_trust_domain",
                f"{spiffe_id} is not in trust domain {bundle.trust_domain}",
            )
        if now < leaf.not_valid_before_utc:
            raise CredentialRejected("not_yet_valid", f"valid from {leaf.not_valid_before_utc}")
        if now > leaf.not_valid_after_utc:
            raise CredentialRejected("expired", f"expired at {leaf.not_valid_after_utc}")
        if not bundle.x509_authorities:
            raise CredentialRejected("untrusted_chain", "the trust bundle holds no authority")
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(bundle.x509_authorities)))
            .time(now)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, [*intermediates, *bundle.intermediates])
        except verification.VerificationError as exc:
            raise CredentialRejected("untrusted_chain", str(exc)) from exc
        epoch = decode_epoch(leaf)
        if epoch is None:
            raise CredentialRejected("missing_epoch", "the SVID carries no credential epoch")
        return VerifiedCredential(
            spiffe_id=spiffe_id,
            kind="x509",
            credential_id=format(leaf.serial_number, "x"),
            expires_at=leaf.not_valid_after_utc,
            epoch=epoch,
        )

    # -- JWT --------------------------------------------------------------------------------

    def verify_jwt(
        self, token: str, audience: str, *, now: datetime | None = None
    ) -> VerifiedCredential:
        """Verify a JWT-SVID presented to ``audience``."""
        now = now or utcnow()
        bundle = self._bundle()
        key = ("jwt", token, audience)
        credential = self._cached(key, bundle, now)
        if credential is None:
            credential = self._verify_jwt_uncached(token, audience, bundle, now)
            self._remember(key, credential, bundle)
        return self._check_status(credential)

    def _verify_jwt_uncached(
        self, token: str, audience: str, bundle: TrustBundle, now: datetime
    ) -> VerifiedCredential:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise CredentialRejected("malformed_token", str(exc)) from exc
        if header.get("alg") != "ES256":
            raise CredentialRejected("alg_not_allowed", f"alg {header.get('alg')!r} is refused")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise CredentialRejected("missing_kid", "the token header has no kid")
        public_key = bundle.jwt_key(kid)
        if public_key is None:
            raise CredentialRejected("unknown_kid", f"kid {kid!r} is not in the trust bundle")
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=["ES256"],
                audience=audience,
                leeway=self._skew,
                options={"require": ["exp", "iat", "sub", "aud", "jti"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise CredentialRejected("expired", str(exc)) from exc
        except jwt.ImmatureSignatureError as exc:
            raise CredentialRejected("not_yet_valid", str(exc)) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise CredentialRejected(f"missing_{exc.claim}", str(exc)) from exc
        except jwt.InvalidAudienceError as exc:
            raise CredentialRejected("wrong_audience", str(exc)) from exc
        except jwt.InvalidSignatureError as exc:
            raise CredentialRejected("bad_signature", str(exc)) from exc
        except jwt.PyJWTError as exc:
            raise CredentialRejected("malformed_token", str(exc)) from exc
        # PyJWT checks exp against the wall clock; check against ``now`` too (tests, replays).
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        if now > expires_at + timedelta(seconds=self._skew):
            raise CredentialRejected("expired", f"expired at {expires_at}")
        try:
            spiffe_id = SpiffeId.parse(claims["sub"])
        except InvalidSpiffeId as exc:
            raise CredentialRejected("invalid_subject", exc.why) from exc
        if not spiffe_id.member_of(bundle.trust_domain):
            raise CredentialRejected(
                "wrong_trust_domain",
                f"{spiffe_id} is not in trust domain {bundle.trust_domain}",
            )
        epoch = claims.get(EPOCH_CLAIM)
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise CredentialRejected("missing_epoch", "the token carries no credential epoch")
        aud = claims["aud"]
        return VerifiedCredential(
            spiffe_id=spiffe_id,
            kind="jwt",
            credential_id=str(claims["jti"]),
            expires_at=expires_at,
            epoch=epoch,
            audience=tuple(aud) if isinstance(aud, list) else (str(aud),),
        )

    # -- shared -----------------------------------------------------------------------------

    def recheck(
        self, credential: VerifiedCredential, *, now: datetime | None = None
    ) -> VerifiedCredential:
        """Whether a credential verified earlier still holds: unexpired, its principal still
        active at the same epoch, the credential not revoked (for long-lived streams)."""
        now = now or utcnow()
        if now > credential.expires_at:
            raise CredentialRejected("expired", f"expired at {credential.expires_at}")
        return self._check_status(credential)

    def _check_status(self, credential: VerifiedCredential) -> VerifiedCredential:
        state = self._status.principal_state(str(credential.spiffe_id))
        if state is None:
            raise CredentialRejected("unknown_principal", f"{credential.spiffe_id} is unknown")
        if state.status != "active":
            raise CredentialRejected(
                f"principal_{state.status}", f"{credential.spiffe_id} is {state.status}"
            )
        if credential.epoch < state.epoch:
            raise CredentialRejected(
                "stale_epoch",
                f"credential epoch {credential.epoch} is older than {state.epoch}",
            )
        if credential.epoch > state.epoch:
            # Only the CA mints epochs; a newer one than the registry knows is not ours.
            raise CredentialRejected("unknown_epoch", f"credential epoch {credential.epoch}")
        if self._status.is_revoked(credential.credential_id):
            raise CredentialRejected("revoked", f"credential {credential.credential_id} revoked")
        return credential

    def _cached(
        self, key: tuple[Any, ...], bundle: TrustBundle, now: datetime
    ) -> VerifiedCredential | None:
        if self._cache_sequence != bundle.sequence:
            return None
        credential = self._cache.get(key)
        if credential is None:
            return None
        if now > credential.expires_at:
            raise CredentialRejected("expired", f"expired at {credential.expires_at}")
        return credential

    def _remember(
        self, key: tuple[Any, ...], credential: VerifiedCredential, bundle: TrustBundle
    ) -> None:
        with self._lock:
            if self._cache_sequence != bundle.sequence or len(self._cache) >= CACHE_LIMIT:
                self._cache = {}
                self._cache_sequence = bundle.sequence
            self._cache[key] = credential


def _leaf_spiffe_id(leaf: x509.Certificate) -> SpiffeId:
    """Apply the X.509-SVID leaf rules and return its SPIFFE ID."""
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise CredentialRejected("leaf_is_ca", "a leaf SVID must not be a CA certificate")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CredentialRejected("bad_key_usage", "the SVID has no key usage") from exc
    if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        raise CredentialRejected("bad_key_usage", "a leaf SVID must only sign, not certify")
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise CredentialRejected("no_uri_san", "the SVID has no URI SAN") from exc
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        code = "no_uri_san" if not uris else "multiple_uri_sans"
        raise CredentialRejected(code, f"an SVID has exactly one URI SAN, not {len(uris)}")
    try:
        return SpiffeId.parse(uris[0])
    except InvalidSpiffeId as exc:
        raise CredentialRejected("invalid_spiffe_id", exc.why) from exc
