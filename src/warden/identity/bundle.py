"""Trust bundles: the public material that verifies a trust domain's credentials.

A bundle holds the X.509 authorities (root certificates) and the JWT authorities (public keys by
``kid``). It renders as PEM, and as a SPIFFE bundle: a JWK Set whose keys carry ``use``
``x509-svid`` (with ``x5c``) or ``jwt-svid`` (with ``kid``), plus ``spiffe_sequence`` and
``spiffe_refresh_hint``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REFRESH_HINT_S = 300


def _b64url_int(value: int, length: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(length, "big")).decode().rstrip("=")


def ec_public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The JWK members of a P-256 public key."""
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url_int(numbers.x, 32),
        "y": _b64url_int(numbers.y, 32),
    }


@dataclass(frozen=True)
class JwtAuthority:
    kid: str
    public_key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class TrustBundle:
    """An immutable snapshot of one trust domain's authorities."""

    trust_domain: str
    x509_authorities: tuple[x509.Certificate, ...]
    jwt_authorities: tuple[JwtAuthority, ...]
    sequence: int = 0
    # Intermediates Warden issued (active and retiring): help for path building only, never
    # trust anchors, and not part of the published bundle. TLS stacks hand applications only
    # the leaf, so the verifier completes the chain with these.
    intermediates: tuple[x509.Certificate, ...] = ()
    _jwt_by_kid: dict[str, ec.EllipticCurvePublicKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_jwt_by_kid", {a.kid: a.public_key for a in self.jwt_authorities})

    def jwt_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The JWT authority with ``kid``, or None."""
        return self._jwt_by_kid.get(kid)

    def to_pem(self) -> bytes:
        """The X.509 authorities as concatenated PEM (what TLS stacks take as a CA file)."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.x509_authorities)

    def to_jwt_jwks(self) -> dict[str, Any]:
        """Only the JWT authorities, each with its ``kid``: what JWT validators (and the
        Workload API's ``FetchJWTBundles``) expect."""
        return {
            "keys": [
                {**ec_public_jwk(a.public_key), "use": "jwt-svid", "kid": a.kid, "alg": "ES256"}
                for a in self.jwt_authorities
            ]
        }

    def to_jwks(self) -> dict[str, Any]:
        """The SPIFFE bundle format (a JWK Set with SPIFFE members)."""
        keys: list[dict[str, Any]] = []
        for cert in self.x509_authorities:
            public = cert.public_key()
            if not isinstance(public, ec.EllipticCurvePublicKey):
                continue
            der = cert.public_bytes(serialization.Encoding.DER)
            keys.append(
                {
                    **ec_public_jwk(public),
                    "use": "x509-svid",
                    "x5c": [base64.b64encode(der).decode()],
                }
            )
        for authority in self.jwt_authorities:
            keys.append(
                {**ec_public_jwk(authority.public_key), "use": "jwt-svid", "kid": authority.kid}
            )
        return {
            "keys": keys,
            "spiffe_sequence": self.sequence,
            "spiffe_refresh_hint": REFRESH_HINT_S,
        }
