"""Root and intermediate CA, JWT-SVID signing keys, issuance and rotation.

The root signs intermediates; the active intermediate signs X.509-SVIDs; a separate ES256 key
(rotated with the intermediate) signs JWT-SVIDs, so no key serves two purposes. Certificates and
public keys live in the store, private keys in the :class:`KeyManager`. Rotation keeps the
previous intermediate's JWT key in the bundle until every token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from warden.clock import as_utc, utcnow
from warden.config import Settings
from warden.identity.bundle import JwtAuthority, TrustBundle
from warden.identity.ca.keys import KeyManager
from warden.identity.ca.log_keys import LogKeys
from warden.identity.errors import (
    AlreadyInitialised,
    CaNotInitialised,
    InvalidCsr,
    KeyStoreError,
)
from warden.identity.spiffe_id import SpiffeId, validate_trust_domain
from warden.identity.x509_profile import encode_epoch
from warden.store import Store, schema

TRUST_DOMAIN_KEY = "trust_domain"
BUNDLE_SEQUENCE_KEY = "bundle_sequence"
LOG_KEY_REF = "audit-log-1"
BACKDATE = timedelta(seconds=30)  # tolerate clocks of verifiers that run a little behind


@dataclass(frozen=True)
class IssuedX509:
    """A freshly issued X.509-SVID: the leaf, the chain up to (not including) the root."""

    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: ec.EllipticCurvePrivateKey | None  # set when Warden generated the key

    @property
    def serial_hex(self) -> str:
        return format(self.cert.serial_number, "x")

    def cert_chain_pem(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.chain)
        )

    def key_pem(self) -> bytes:
        if self.key is None:
            raise ValueError("the key of this SVID is held by the workload")
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class _Authority:
    id: str
    kind: str
    status: str
    pem: str
    key_ref: str
    not_before: datetime
    not_after: datetime
    seq: int


def _key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).decode().rstrip("=")


def generate_workload_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key for a workload that does not bring its own CSR."""
    return ec.generate_private_key(ec.SECP256R1())


def load_csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The public key of a PEM CSR whose self-signature verifies. Only P-256 keys are taken."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidCsr("not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise InvalidCsr("its signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidCsr("only ECDSA P-256 keys are accepted")
    return key


class CertificateAuthority:
    """Warden's CA for one trust domain. Thread-safe; reload with :meth:`refresh`."""

    def __init__(self, store: Store, keys: KeyManager, settings: Settings) -> None:
        self._store = store
        self._keys = keys
        self._settings = settings
        self._lock = threading.Lock()
        trust_domain = store.get_meta(TRUST_DOMAIN_KEY)
        if trust_domain is None:
            raise CaNotInitialised()
        self.trust_domain = trust_domain
        self.refresh()

    # -- set-up and rotation ----------------------------------------------------------------

    @classmethod
    def initialise(
        cls, store: Store, keys: KeyManager, settings: Settings, trust_domain: str
    ) -> CertificateAuthority:
        """Create the root, the first intermediate and the first JWT key of ``trust_domain``."""
        validate_trust_domain(trust_domain)
        existing = store.get_meta(TRUST_DOMAIN_KEY)
        if existing is not None:
            raise AlreadyInitialised(existing)
        now = utcnow()
        root_key = keys.create_key("root-1")
        root = _build_ca_cert(
            subject_key=root_key.public_key(),
            issuer_key=root_key,
            issuer_cert=None,
            trust_domain=trust_domain,
            common_name="Warden Root CA",
            path_length=1,
            not_before=now - BACKDATE,
            not_after=now + timedelta(seconds=settings.root_ttl_s),
        )
        with store.begin() as conn:
            conn.execute(
                schema.meta.insert(),
                [
                    {"key": TRUST_DOMAIN_KEY, "value": trust_domain},
                    {"key": BUNDLE_SEQUENCE_KEY, "value": "1"},
                ],
            )
            conn.execute(
                schema.authorities.insert().values(
                    id="root-1",
                    kind="root",
                    status="active",
                    pem=root.public_bytes(serialization.Encoding.PEM).decode(),
                    key_ref="root-1",
                    not_before=root.not_valid_before_utc,
                    not_after=root.not_valid_after_utc,
                    created_at=now,
                    seq=1,
                )
            )
        ca = cls(store, keys, settings)
        ca._add_intermediate(seq=1, now=now)
        ca.refresh()
        return ca

    def rotate_intermediate(self, now: datetime | None = None) -> str:
        """Make a new intermediate and JWT key active; the previous ones start retiring.

        SVIDs signed by the previous intermediate stay valid (they chain to the same root), and
        the previous JWT key stays in the bundle until every token it signed has expired.
        Returns the new intermediate's id.
        """
        now = now or utcnow()
        with self._lock:
            seq = max(a.seq for a in self._authorities if a.kind == "intermediate") + 1
            with self._store.begin() as conn:
                conn.execute(
                    schema.authorities.update()
                    .where(schema.authorities.c.kind.in_(("intermediate", "jwt")))
                    .where(schema.authorities.c.status == "active")
                    .values(status="retiring")
                )
            self._add_intermediate(seq=seq, now=now)
        self.refresh()
        return f"intermediate-{seq}"

    def retire_expired(self, now: datetime | None = None) -> int:
        """Drop retiring authorities whose overlap has passed from the bundle. Returns how many."""
        now = now or utcnow()
        jwt_cutoff = now - timedelta(seconds=self._settings.jwt_svid_max_ttl_s) - BACKDATE
        x509_cutoff = now - timedelta(seconds=self._settings.x509_svid_max_ttl_s) - BACKDATE
        changed = 0
        with self._store.begin() as conn:
            for authority in self._authorities:
                if authority.status != "retiring":
                    continue
                cutoff = jwt_cutoff if authority.kind == "jwt" else x509_cutoff
                replaced_at = self._replaced_at(authority)
                if replaced_at is not None and replaced_at <= cutoff:
                    conn.execute(
                        schema.authorities.update()
                        .where(schema.authorities.c.id == authority.id)
                        .values(status="retired")
                    )
                    changed += 1
            if changed:
                self._bump_bundle_sequence(conn)
        self.refresh()
        return changed

    def _replaced_at(self, authority: _Authority) -> datetime | None:
        successors = [
            a.not_before + BACKDATE
            for a in self._authorities
            if a.kind == authority.kind and a.seq == authority.seq + 1
        ]
        return successors[0] if successors else None

    def _add_intermediate(self, *, seq: int, now: datetime) -> None:
        root = self._active("root")
        root_key = self._keys.load_key(root.key_ref)
        root_cert = x509.load_pem_x509_certificate(root.pem.encode())
        key = self._keys.create_key(f"intermediate-{seq}")
        not_after = min(
            now + timedelta(seconds=self._settings.intermediate_ttl_s),
            root_cert.not_valid_after_utc,
        )
        cert = _build_ca_cert(
            subject_key=key.public_key(),
            issuer_key=root_key,
            issuer_cert=root_cert,
            trust_domain=self.trust_domain,
            common_name=f"Warden Intermediate CA {seq}",
            path_length=0,
            not_before=now - BACKDATE,
            not_after=not_after,
        )
        jwt_key = self._keys.create_key(f"jwt-{seq}")
        jwt_public = jwt_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self._store.begin() as conn:
            conn.execute(
                schema.authorities.insert(),
                [
                    {
                        "id": f"intermediate-{seq}",
                        "kind": "intermediate",
                        "status": "active",
                        "pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                        "key_ref": f"intermediate-{seq}",
                        "not_before": cert.not_valid_before_utc,
                        "not_after": cert.not_valid_after_utc,
                        "created_at": now,
                        "seq": seq,
                    },
                    {
                        "id": _key_id(jwt_key.public_key()),
                        "kind": "jwt",
                        "status": "active",
                        "pem": jwt_public.decode(),
                        "key_ref": f"jwt-{seq}",
                        "not_before": now - BACKDATE,
                        "not_after": not_after,
                        "created_at": now,
                        "seq": seq,
                    },
                ],
            )
            self._bump_bundle_sequence(conn)

    @staticmethod
    def _bump_bundle_sequence(conn: Any) -> None:
        current = conn.execute(
            select(schema.meta.c.value).where(schema.meta.c.key == BUNDLE_SEQUENCE_KEY)
        ).scalar_one()
        conn.execute(
            schema.meta.update()
            .where(schema.meta.c.key == BUNDLE_SEQUENCE_KEY)
            .values(value=str(int(current) + 1))
        )

    def refresh(self) -> None:
        """Reload authorities from the store (another process may have rotated them)."""
        with self._store.begin() as conn:
            rows = conn.execute(
                select(schema.authorities).where(schema.authorities.c.status != "retired")
            ).all()
            sequence = conn.execute(
                select(schema.meta.c.value).where(schema.meta.c.key == BUNDLE_SEQUENCE_KEY)
            ).scalar_one_or_none()
        authorities = [
            _Authority(
                id=r.id,
                kind=r.kind,
                status=r.status,
                pem=r.pem,
                key_ref=r.key_ref,
                not_before=as_utc(r.not_before),
                not_after=as_utc(r.not_after),
                seq=r.seq,
            )
            for r in rows
        ]
        self._authorities = authorities
        self._bundle = TrustBundle(
            trust_domain=self.trust_domain,
            x509_authorities=tuple(
                x509.load_pem_x509_certificate(a.pem.encode())
                for a in authorities
                if a.kind == "root"
            ),
            jwt_authorities=tuple(
                JwtAuthority(
                    kid=a.id,
                    public_key=_load_ec_public(a.pem),
                )
                for a in sorted(authorities, key=lambda a: a.seq)
                if a.kind == "jwt"
            ),
            sequence=int(sequence or 0),
            intermediates=tuple(
                x509.load_pem_x509_certificate(a.pem.encode())
                for a in authorities
                if a.kind == "intermediate"
            ),
        )
        if any(a.kind == "intermediate" and a.status == "active" for a in authorities):
            active = self._active("intermediate")
            self._intermediate = x509.load_pem_x509_certificate(active.pem.encode())
            self._intermediate_key_ref = active.key_ref
            jwt_active = self._active("jwt")
            self._jwt_kid = jwt_active.id
            self._jwt_key_ref = jwt_active.key_ref

    def _active(self, kind: str) -> _Authority:
        for authority in self._authorities:
            if authority.kind == kind and authority.status == "active":
                return authority
        raise CaNotInitialised()

    # -- issuance ---------------------------------------------------------------------------

    @property
    def bundle(self) -> TrustBundle:
        """The current trust bundle (roots and JWT keys), an immutable snapshot."""
        return self._bundle

    @property
    def intermediate(self) -> x509.Certificate:
        return self._intermediate

    def issue_x509_svid(
        self,
        spiffe_id: SpiffeId,
        *,
        ttl_s: int,
        epoch: int,
        public_key: ec.EllipticCurvePublicKey | None = None,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        now: datetime | None = None,
    ) -> IssuedX509:
        """Sign an X.509-SVID for ``spiffe_id``; generate its key unless one is given.

        The caller (the registry) has already checked the principal and bounded the TTL.
        """
        now = now or utcnow()
        key = None
        if public_key is None:
            key = generate_workload_key()
            public_key = key.public_key()
        intermediate = self._intermediate
        issuer_key = self._keys.load_key(self._intermediate_key_ref)
        not_after = min(now + timedelta(seconds=ttl_s), intermediate.not_valid_after_utc)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
        sans += [x509.DNSName(name) for name in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Warden"),
                        x509.NameAttribute(NameOID.COMMON_NAME, spiffe_id.name or "spiffe"),
                    ]
                )
            )
            .issuer_name(intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(_aki(intermediate), critical=False)
            .add_extension(encode_epoch(epoch), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
        return IssuedX509(cert=cert, chain=(intermediate,), key=key)

    def log_keys(self) -> LogKeys:
        """The decision log's keys, named ``<trust domain>/warden-log``; made on first use
        (an installation from before the log gets them then)."""
        name = f"{self.trust_domain}/warden-log"
        try:
            key = self._keys.load_ed25519_key(LOG_KEY_REF)
        except KeyStoreError:
            try:
                key = self._keys.create_ed25519_key(LOG_KEY_REF)
            except KeyStoreError:  # another process made it first
                key = self._keys.load_ed25519_key(LOG_KEY_REF)
        keys = LogKeys(name, key)
        if self._store.get_meta("audit.verifier_key") != keys.verifier_key:
            self._store.set_meta("audit.verifier_key", keys.verifier_key)
        return keys

    def sign_jwt_svid(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` as a JWT-SVID (ES256) with the active JWT key."""
        key = self._keys.load_key(self._jwt_key_ref)
        return jwt.encode(
            claims, key, algorithm="ES256", headers={"kid": self._jwt_kid, "typ": "JWT"}
        )


_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _load_ec_public(pem: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CaNotInitialised()
    return key


def _build_ca_cert(
    *,
    subject_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate | None,
    trust_domain: str,
    common_name: str,
    path_length: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Warden"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, trust_domain),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(subject_key)
    aki = (
        _aki(issuer_cert)
        if issuer_cert is not None
        else x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
