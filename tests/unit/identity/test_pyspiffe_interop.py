"""A standard SPIFFE library (py-spiffe) reads Warden's SVIDs and bundles unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from spiffe import JwtBundle, JwtSvid, TrustDomain, X509Bundle, X509Svid
from spiffe.errors import ArgumentError
from spiffe.svid.errors import InvalidTokenError, JwtSvidError

from warden.identity.authority import IdentityAuthority

AUD = "spiffe://example.org/svc/ledger"


def test_pyspiffe_loads_x509_svid_and_bundle(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> None:
    ia = sqlite_authority
    ia.agents.register("invoice-bot", owner="finance")
    issued = ia.issuer.issue_agent_x509("invoice-bot")
    (tmp_path / "svid.pem").write_bytes(issued.cert_chain_pem())
    (tmp_path / "key.pem").write_bytes(issued.key_pem())
    svid = X509Svid.load(tmp_path / "svid.pem", tmp_path / "key.pem", serialization.Encoding.PEM)
    assert str(svid.spiffe_id) == "spiffe://example.org/agent/invoice-bot"
    assert len(svid.cert_chain) == 2
    bundle = X509Bundle.parse(TrustDomain("example.org"), ia.ca.bundle.to_pem())
    assert set(bundle.x509_authorities) == set(ia.ca.bundle.x509_authorities)


def test_pyspiffe_validates_jwt_svid_against_warden_jwks(
    sqlite_authority: IdentityAuthority,
) -> None:
    ia = sqlite_authority
    ia.agents.register("invoice-bot", owner="finance")
    jwks = json.dumps(ia.ca.bundle.to_jwt_jwks()).encode()
    bundle = JwtBundle.parse(TrustDomain("example.org"), jwks)
    token = ia.issuer.issue_agent_jwt("invoice-bot", [AUD]).token
    svid = JwtSvid.parse_and_validate(token, bundle, {AUD})
    assert str(svid.spiffe_id) == "spiffe://example.org/agent/invoice-bot"
    assert svid.audience == {AUD}
    with pytest.raises((JwtSvidError, InvalidTokenError, ArgumentError)):
        JwtSvid.parse_and_validate(token, bundle, {"spiffe://example.org/svc/other"})
    # After a rotation the published bundle still validates tokens from before it.
    ia.ca.rotate_intermediate()
    rotated = JwtBundle.parse(
        TrustDomain("example.org"), json.dumps(ia.ca.bundle.to_jwt_jwks()).encode()
    )
    JwtSvid.parse_and_validate(token, rotated, {AUD})
    fresh = ia.issuer.issue_agent_jwt("invoice-bot", [AUD]).token
    JwtSvid.parse_and_validate(fresh, rotated, {AUD})
