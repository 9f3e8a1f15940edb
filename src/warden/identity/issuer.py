"""Issuing SVIDs to registered principals, within their bounds, and revoking single ones."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.exc import IntegrityError

from warden.clock import utcnow
from warden.config import Settings
from warden.errors import StoreError, UntrustedInputError
from warden.identity.ca import CertificateAuthority, IssuedX509
from warden.identity.errors import AgentNotActive, TtlOutOfBounds
from warden.identity.feed import append_change
from warden.identity.registry import AgentRegistry, OperatorRegistry
from warden.identity.spiffe_id import SpiffeId, validate_name
from warden.identity.verifier import EPOCH_CLAIM
from warden.shared.fence import RevocationFence
from warden.store import Store, schema

MAX_AUDIENCES = 16


@dataclass(frozen=True)
class IssuedJwt:
    token: str
    spiffe_id: str
    audience: tuple[str, ...]
    jti: str
    expires_at: datetime


class CredentialIssuer:
    """Turns a registered, active principal into X.509-SVIDs and JWT-SVIDs."""

    def __init__(
        self,
        ca: CertificateAuthority,
        agents: AgentRegistry,
        operators: OperatorRegistry,
        store: Store,
        settings: Settings,
        on_change: Callable[[], object] | None = None,
        fence: RevocationFence | None = None,
    ) -> None:
        self._on_change = on_change or (lambda: None)
        self._fence = fence
        self._ca = ca
        self._agents = agents
        self._operators = operators
        self._store = store
        self._settings = settings

    def issue_agent_x509(
        self,
        name: str,
        *,
        ttl_s: int | None = None,
        public_key: ec.EllipticCurvePublicKey | None = None,
        now: datetime | None = None,
    ) -> IssuedX509:
        """An X.509-SVID for agent ``name``; pass ``public_key`` (from a CSR) to keep its key."""
        agent = self._agents.get(name)
        if agent.status != "active":
            raise AgentNotActive(name, agent.status)
        cap = min(agent.max_svid_ttl_s, self._settings.x509_svid_max_ttl_s)
        ttl = _bounded_ttl(ttl_s, min(self._settings.x509_svid_ttl_s, cap), cap)
        return self._ca.issue_x509_svid(
            SpiffeId.parse(agent.spiffe_id),
            ttl_s=ttl,
            epoch=agent.credential_epoch,
            public_key=public_key,
            now=now,
        )

    def issue_agent_jwt(
        self,
        name: str,
        audience: Sequence[str],
        *,
        ttl_s: int | None = None,
        now: datetime | None = None,
    ) -> IssuedJwt:
        """A JWT-SVID for agent ``name``, valid only for ``audience``."""
        audiences = tuple(audience)
        if (
            not audiences
            or len(audiences) > MAX_AUDIENCES
            or any(not a or len(a) > 512 for a in audiences)
        ):
            raise UntrustedInputError(
                f"a JWT-SVID needs 1-{MAX_AUDIENCES} non-empty audiences", code="invalid_audience"
            )
        agent = self._agents.get(name)
        if agent.status != "active":
            raise AgentNotActive(name, agent.status)
        ttl = _bounded_ttl(ttl_s, self._settings.jwt_svid_ttl_s, self._settings.jwt_svid_max_ttl_s)
        now = now or utcnow()
        expires_at = now + timedelta(seconds=ttl)
        jti = str(uuid.uuid4())
        claims = {
            "sub": agent.spiffe_id,
            "aud": list(audiences) if len(audiences) > 1 else audiences[0],
            "exp": int(expires_at.timestamp()),
            "iat": int(now.timestamp()),
            "jti": jti,
            EPOCH_CLAIM: agent.credential_epoch,
        }
        return IssuedJwt(
            token=self._ca.sign_jwt_svid(claims),
            spiffe_id=agent.spiffe_id,
            audience=audiences,
            jti=jti,
            expires_at=expires_at,
        )

    def issue_operator_x509(self, name: str, *, now: datetime | None = None) -> IssuedX509:
        operator = self._operators.get(name)
        if operator.status != "active":
            raise AgentNotActive(name, operator.status)
        return self._ca.issue_x509_svid(
            SpiffeId.parse(operator.spiffe_id),
            ttl_s=self._settings.operator_svid_ttl_s,
            epoch=operator.credential_epoch,
            now=now,
        )

    def issue_service_x509(
        self,
        name: str,
        *,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        now: datetime | None = None,
        ttl_s: int | None = None,
    ) -> IssuedX509:
        """An SVID for one of Warden's own servers (``spiffe://<td>/svc/<name>``).

        It may carry DNS and IP SANs besides its one URI SAN, so ordinary TLS clients can check
        the host name too. ``ttl_s`` (at most ``tls_cert_max_ttl_s``): for infrastructure that
        reloads its certificate files by hand or on a schedule; Warden's processes renew theirs
        at half the default lifetime.
        """
        validate_name(name)
        if ttl_s is None:
            ttl_s = self._settings.x509_svid_ttl_s
        elif not 60 <= ttl_s <= self._settings.tls_cert_max_ttl_s:
            raise UntrustedInputError(
                f"ttl must be between 60 s and tls_cert_max_ttl_s "
                f"({self._settings.tls_cert_max_ttl_s} s)",
                code="invalid_ttl",
            )
        return self._ca.issue_x509_svid(
            SpiffeId.for_principal(self._ca.trust_domain, "svc", name),
            ttl_s=ttl_s,
            epoch=0,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            now=now,
        )

    def revoke_credential(
        self, *, credential_id: str, kind: str, spiffe_id: str, not_after: datetime, reason: str
    ) -> None:
        """Revoke one X.509 serial (hex) or JWT ``jti`` until it would have expired anyway."""
        if kind not in ("x509", "jwt"):
            raise UntrustedInputError("kind must be x509 or jwt", code="invalid_kind")
        credential_id = credential_id.lower() if kind == "x509" else credential_id
        if self._fence is not None:  # in Redis before it commits: no gateway lags it
            self._fence.revoke_credential(credential_id)
        try:
            with self._store.begin() as conn:
                conn.execute(
                    schema.revoked_credentials.insert().values(
                        credential_id=credential_id,
                        kind=kind,
                        spiffe_id=spiffe_id,
                        not_after=not_after,
                        revoked_at=utcnow(),
                        reason=reason[:2000],
                    )
                )
                append_change(
                    conn,
                    spiffe_id=spiffe_id,
                    change="credential",
                    status="revoked",
                    epoch=-1,
                    credential_id=credential_id,
                    not_after=not_after,
                    reason=reason,
                )
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise  # already revoked is fine; anything else is not
        self._on_change()


def _bounded_ttl(requested: int | None, default: int, cap: int) -> int:
    if requested is None:
        return min(default, cap)
    if requested < 30 or requested > cap:
        raise TtlOutOfBounds(requested, cap)
    return requested
