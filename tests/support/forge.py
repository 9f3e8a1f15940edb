"""Certificates an attacker (or a buggy CA) would make: signed by a rogue CA, or by Warden's
own intermediate key but breaking one SVID rule at a time. Built with real crypto."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority, file_key_manager
from warden.identity.x509_profile import encode_epoch


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def rogue_ca(
    common_name: str = "Warden Root CA",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def forge_leaf(
    authority: IdentityAuthority,
    *,
    uris: list[str] | None = None,
    ca: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    epoch: int | None = 0,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    key_cert_sign: bool = False,
    leaf_key: ec.EllipticCurvePrivateKey | None = None,
) -> list[x509.Certificate]:
    """A leaf plus its issuer; by default signed by Warden's real active intermediate.
    ``leaf_key``: the leaf's key, for a test that presents the leaf in a TLS handshake."""
    if issuer is None:
        intermediate = authority.ca.intermediate
        key = file_key_manager(authority.settings).load_key("intermediate-1")
        issuer = (intermediate, key)
    issuer_cert, issuer_key = issuer
    now = utcnow()
    leaf_key = leaf_key or ec.generate_private_key(ec.SECP256R1())
    uris = ["spiffe://example.org/agent/forged"] if uris is None else uris
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("forged"))
        .issuer_name(issuer_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=1))
        .not_valid_after(not_after or now + timedelta(minutes=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                True, False, False, False, False, key_cert_sign, key_cert_sign, False, False
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("forged.example.org")]), critical=False
        )
    if epoch is not None:
        builder = builder.add_extension(encode_epoch(epoch), critical=False)
    return [builder.sign(issuer_key, hashes.SHA256()), issuer_cert]
