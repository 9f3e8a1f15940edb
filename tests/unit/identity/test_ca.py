"""The CA issues SVIDs that follow the SPIFFE X.509-SVID spec and verify with cryptography's
own path validation against the published bundle."""

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.identity.ca.authority import load_csr_public_key
from warden.identity.errors import (
    AgentNotActive,
    AlreadyInitialised,
    InvalidCsr,
    TtlOutOfBounds,
)


def _register(authority: IdentityAuthority, name: str = "invoice-bot", **kw: object) -> None:
    authority.agents.register(name, owner="finance", **kw)  # type: ignore[arg-type]


def test_x509_svid_follows_the_spec(authority: IdentityAuthority) -> None:
    _register(authority)
    issued = authority.issuer.issue_agent_x509("invoice-bot")
    leaf = issued.cert
    uris = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://example.org/agent/invoice-bot"]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1, seconds=30)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)


def test_chain_verifies_with_cryptography_path_validation(authority: IdentityAuthority) -> None:
    _register(authority)
    issued = authority.issuer.issue_agent_x509("invoice-bot")
    roots = x509.load_pem_x509_certificates(authority.ca.bundle.to_pem())
    verifier = verification.PolicyBuilder().store(verification.Store(roots)).build_client_verifier()
    verified = verifier.verify(issued.cert, list(issued.chain))
    assert verified.chain[-1] == roots[0]
    assert len(verified.chain) == 3
    # and it does not verify against another root
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Warden Root CA")])
    rogue = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rogue_key.public_key())
        .serial_number(1)
        .not_valid_before(utcnow() - timedelta(days=1))
        .not_valid_after(utcnow() + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(rogue_key, hashes.SHA256())
    )
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(
            verification.Store([rogue])
        ).build_client_verifier().verify(issued.cert, list(issued.chain))


def test_ttl_is_capped_per_agent_and_globally(authority: IdentityAuthority) -> None:
    _register(authority, max_svid_ttl_s=600)
    issued = authority.issuer.issue_agent_x509("invoice-bot")
    lifetime = issued.cert.not_valid_after_utc - issued.cert.not_valid_before_utc
    assert lifetime <= timedelta(seconds=600 + 30)
    with pytest.raises(TtlOutOfBounds):
        authority.issuer.issue_agent_x509("invoice-bot", ttl_s=601)
    with pytest.raises(TtlOutOfBounds):
        authority.agents.register("greedy", owner="x", max_svid_ttl_s=86_400)


def test_csr_is_signed_and_key_stays_with_the_workload(authority: IdentityAuthority) -> None:
    _register(authority)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anything")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://example.org/agent/admin")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    public = load_csr_public_key(csr.public_bytes(serialization.Encoding.PEM))
    issued = authority.issuer.issue_agent_x509("invoice-bot", public_key=public)
    assert issued.key is None
    assert issued.cert.public_key() == key.public_key()
    # The CSR's requested SAN is ignored: the identity comes from the registry only.
    uris = issued.cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://example.org/agent/invoice-bot"]


def test_bad_csrs_are_refused() -> None:
    with pytest.raises(InvalidCsr):
        load_csr_public_key(b"not a csr")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(rsa_key, hashes.SHA256())
    )
    with pytest.raises(InvalidCsr, match="P-256"):
        load_csr_public_key(csr.public_bytes(serialization.Encoding.PEM))
    # A CSR whose signature does not match its key
    good = ec.generate_private_key(ec.SECP256R1())
    pem = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(good, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    tampered = pem[:-10] + bytes(b ^ 0xFF for b in pem[-10:-4]) + pem[-4:]
    tampered_pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + __import__("base64").encodebytes(tampered)
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    with pytest.raises(InvalidCsr):
        load_csr_public_key(tampered_pem)


def test_inactive_agents_get_no_credentials(authority: IdentityAuthority) -> None:
    _register(authority)
    authority.agents.disable("invoice-bot")
    with pytest.raises(AgentNotActive):
        authority.issuer.issue_agent_x509("invoice-bot")
    with pytest.raises(AgentNotActive):
        authority.issuer.issue_agent_jwt("invoice-bot", ["gw"])


def test_rotation_keeps_identities_alive(authority: IdentityAuthority) -> None:
    _register(authority)
    old_x509 = authority.issuer.issue_agent_x509("invoice-bot")
    old_jwt = authority.issuer.issue_agent_jwt("invoice-bot", ["gw"])
    sequence = authority.ca.bundle.sequence
    new_id = authority.ca.rotate_intermediate()
    assert new_id == "intermediate-2"
    assert authority.ca.bundle.sequence > sequence
    assert len(authority.ca.bundle.jwt_authorities) == 2
    assert len(authority.ca.bundle.to_jwks()["keys"]) == 3  # one root, two JWT keys
    # Credentials from before the rotation still verify; new ones come from the new issuer.
    authority.verifier.verify_x509([old_x509.cert, *old_x509.chain])
    authority.verifier.verify_x509([old_x509.cert])  # leaf only: Warden completes the chain
    authority.verifier.verify_jwt(old_jwt.token, "gw")
    new = authority.issuer.issue_agent_x509("invoice-bot")
    assert new.chain[0].subject != old_x509.chain[0].subject
    authority.verifier.verify_x509([new.cert, *new.chain])
    # Nothing retires before the overlap has passed; afterwards the old JWT key leaves.
    assert authority.ca.retire_expired() == 0
    later = utcnow() + timedelta(hours=2)
    assert authority.ca.retire_expired(now=later) == 2
    assert len(authority.ca.bundle.jwt_authorities) == 1


def test_initialising_twice_is_refused(authority: IdentityAuthority) -> None:
    keys = FileKeyManager(authority.settings.state_dir / "keys", authority.settings.key_file)
    with pytest.raises(AlreadyInitialised):
        CertificateAuthority.initialise(authority.store, keys, authority.settings, "other.org")
