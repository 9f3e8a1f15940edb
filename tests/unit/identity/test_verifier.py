"""Negative vectors for every credential check: each ends in CredentialRejected with a code."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.forge import forge_leaf, rogue_ca
from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority, file_key_manager
from warden.identity.errors import CredentialRejected
from warden.identity.verifier import EPOCH_CLAIM

AUD = "spiffe://example.org/svc/gateway"


@pytest.fixture
def ia(sqlite_authority: IdentityAuthority) -> IdentityAuthority:
    sqlite_authority.agents.register("forged", owner="red-team")
    sqlite_authority.agents.register("invoice-bot", owner="finance")
    return sqlite_authority


def rejected(code: str, call: object) -> CredentialRejected:
    with pytest.raises(CredentialRejected) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == code, caught.value.message
    assert caught.value.public_message == "credential rejected"
    return caught.value


# -- X.509 ----------------------------------------------------------------------------------


def test_genuine_svid_verifies(ia: IdentityAuthority) -> None:
    issued = ia.issuer.issue_agent_x509("invoice-bot")
    verified = ia.verifier.verify_x509([issued.cert, *issued.chain])
    assert str(verified.spiffe_id) == "spiffe://example.org/agent/invoice-bot"
    assert verified.credential_id == issued.serial_hex
    # The forge helper's baseline leaf is accepted, so each negative below breaks one rule.
    ia.verifier.verify_x509(forge_leaf(ia))


def test_svid_from_a_rogue_ca(ia: IdentityAuthority) -> None:
    chain = forge_leaf(ia, issuer=rogue_ca("Warden Intermediate CA 1"))
    rejected("untrusted_chain", lambda: ia.verifier.verify_x509(chain))


def test_expired_svid(ia: IdentityAuthority) -> None:
    now = utcnow()
    chain = forge_leaf(ia, not_before=now - timedelta(hours=2), not_after=now - timedelta(hours=1))
    rejected("expired", lambda: ia.verifier.verify_x509(chain))
    issued = ia.issuer.issue_agent_x509("invoice-bot")
    later = now + timedelta(hours=2)
    rejected("expired", lambda: ia.verifier.verify_x509([issued.cert], now=later))


def test_not_yet_valid_svid(ia: IdentityAuthority) -> None:
    now = utcnow()
    chain = forge_leaf(ia, not_before=now + timedelta(hours=1), not_after=now + timedelta(hours=2))
    rejected("not_yet_valid", lambda: ia.verifier.verify_x509(chain))


def test_svid_from_another_trust_domain(ia: IdentityAuthority) -> None:
    chain = forge_leaf(ia, uris=["spiffe://evil.org/agent/forged"])
    rejected("wrong_trust_domain", lambda: ia.verifier.verify_x509(chain))


def test_leaf_that_is_a_ca(ia: IdentityAuthority) -> None:
    rejected("leaf_is_ca", lambda: ia.verifier.verify_x509(forge_leaf(ia, ca=True)))


def test_leaf_that_can_sign_certificates(ia: IdentityAuthority) -> None:
    chain = forge_leaf(ia, key_cert_sign=True)
    rejected("bad_key_usage", lambda: ia.verifier.verify_x509(chain))


def test_two_uri_sans(ia: IdentityAuthority) -> None:
    chain = forge_leaf(
        ia, uris=["spiffe://example.org/agent/forged", "spiffe://example.org/agent/invoice-bot"]
    )
    rejected("multiple_uri_sans", lambda: ia.verifier.verify_x509(chain))


def test_no_uri_san(ia: IdentityAuthority) -> None:
    rejected("no_uri_san", lambda: ia.verifier.verify_x509(forge_leaf(ia, uris=[])))


def test_no_certificate(ia: IdentityAuthority) -> None:
    rejected("no_certificate", lambda: ia.verifier.verify_x509([]))


def test_revoked_serial(ia: IdentityAuthority) -> None:
    issued = ia.issuer.issue_agent_x509("invoice-bot")
    other = ia.issuer.issue_agent_x509("invoice-bot")
    ia.verifier.verify_x509([issued.cert])  # cached as verified before the revocation
    ia.issuer.revoke_credential(
        credential_id=issued.serial_hex,
        kind="x509",
        spiffe_id="spiffe://example.org/agent/invoice-bot",
        not_after=issued.cert.not_valid_after_utc,
        reason="key leaked",
    )
    rejected("revoked", lambda: ia.verifier.verify_x509([issued.cert]))
    ia.verifier.verify_x509([other.cert])  # only that one credential


def test_old_credential_epoch(ia: IdentityAuthority) -> None:
    before = ia.issuer.issue_agent_x509("invoice-bot")
    ia.agents.revoke("invoice-bot", "compromised")
    rejected("principal_revoked", lambda: ia.verifier.verify_x509([before.cert]))
    ia.agents.enable("invoice-bot", "re-provisioned")
    rejected("stale_epoch", lambda: ia.verifier.verify_x509([before.cert]))
    after = ia.issuer.issue_agent_x509("invoice-bot")
    assert ia.verifier.verify_x509([after.cert]).epoch == 1


def test_epoch_missing_or_from_the_future(ia: IdentityAuthority) -> None:
    rejected("missing_epoch", lambda: ia.verifier.verify_x509(forge_leaf(ia, epoch=None)))
    rejected("unknown_epoch", lambda: ia.verifier.verify_x509(forge_leaf(ia, epoch=7)))


def test_disabled_and_unknown_principals(ia: IdentityAuthority) -> None:
    issued = ia.issuer.issue_agent_x509("invoice-bot")
    ia.agents.disable("invoice-bot", "investigating")
    rejected("principal_disabled", lambda: ia.verifier.verify_x509([issued.cert]))
    ia.agents.enable("invoice-bot")
    ia.verifier.verify_x509([issued.cert])  # suspension lifted: same credential works again
    chain = forge_leaf(ia, uris=["spiffe://example.org/agent/nobody"])
    rejected("unknown_principal", lambda: ia.verifier.verify_x509(chain))


# -- JWT ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "spiffe://example.org/agent/invoice-bot",
        "aud": AUD,
        "exp": now + 300,
        "iat": now,
        "jti": "j-1",
        EPOCH_CLAIM: 0,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(ia: IdentityAuthority, claims: dict[str, object], **headers: object) -> str:
    key = file_key_manager(ia.settings).load_key("jwt-1")
    kid = ia.ca.bundle.jwt_authorities[0].kid
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, **headers})


def test_genuine_jwt_verifies(ia: IdentityAuthority) -> None:
    issued = ia.issuer.issue_agent_jwt("invoice-bot", [AUD])
    verified = ia.verifier.verify_jwt(issued.token, AUD)
    assert verified.audience == (AUD,)
    ia.verifier.verify_jwt(_sign(ia, _claims()), AUD)  # the baseline of the forgeries below


def test_alg_none(ia: IdentityAuthority) -> None:
    kid = ia.ca.bundle.jwt_authorities[0].kid
    token = (
        _b64(json.dumps({"alg": "none", "kid": kid}).encode())
        + "."
        + _b64(json.dumps(_claims()).encode())
        + "."
    )
    rejected("alg_not_allowed", lambda: ia.verifier.verify_jwt(token, AUD))


def test_hs256_signed_with_the_public_key(ia: IdentityAuthority) -> None:
    public_pem = ia.ca.bundle.jwt_authorities[0].public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = ia.ca.bundle.jwt_authorities[0].kid
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    import hashlib
    import hmac

    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{_b64(signature)}"
    rejected("alg_not_allowed", lambda: ia.verifier.verify_jwt(token, AUD))


def test_unknown_or_missing_kid(ia: IdentityAuthority) -> None:
    key = file_key_manager(ia.settings).load_key("jwt-1")
    unknown = jwt.encode(_claims(), key, algorithm="ES256", headers={"kid": "not-a-kid"})
    rejected("unknown_kid", lambda: ia.verifier.verify_jwt(unknown, AUD))
    missing = jwt.encode(_claims(), key, algorithm="ES256")
    rejected("missing_kid", lambda: ia.verifier.verify_jwt(missing, AUD))


def test_wrong_or_missing_audience(ia: IdentityAuthority) -> None:
    issued = ia.issuer.issue_agent_jwt("invoice-bot", ["spiffe://example.org/svc/other"])
    rejected("wrong_audience", lambda: ia.verifier.verify_jwt(issued.token, AUD))
    rejected("missing_aud", lambda: ia.verifier.verify_jwt(_sign(ia, _claims(aud=None)), AUD))


def test_missing_exp_and_expired(ia: IdentityAuthority) -> None:
    rejected("missing_exp", lambda: ia.verifier.verify_jwt(_sign(ia, _claims(exp=None)), AUD))
    old = _sign(ia, _claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 3700))
    rejected("expired", lambda: ia.verifier.verify_jwt(old, AUD))
    fresh = ia.issuer.issue_agent_jwt("invoice-bot", [AUD])
    ia.verifier.verify_jwt(fresh.token, AUD)
    later = utcnow() + timedelta(hours=1)
    rejected("expired", lambda: ia.verifier.verify_jwt(fresh.token, AUD, now=later))


def test_tampered_payload(ia: IdentityAuthority) -> None:
    token = ia.issuer.issue_agent_jwt("invoice-bot", [AUD]).token
    header, _, signature = token.split(".")
    forged = _b64(json.dumps(_claims(sub="spiffe://example.org/agent/forged")).encode())
    rejected("bad_signature", lambda: ia.verifier.verify_jwt(f"{header}.{forged}.{signature}", AUD))


def test_sub_not_a_spiffe_id(ia: IdentityAuthority) -> None:
    for sub in ("invoice-bot", "https://example.org/agent/x", "spiffe://example.org/a/../b"):
        rejected(
            "invalid_subject",
            lambda sub=sub: ia.verifier.verify_jwt(_sign(ia, _claims(sub=sub)), AUD),
        )


def test_jwt_from_another_trust_domain(ia: IdentityAuthority) -> None:
    token = _sign(ia, _claims(sub="spiffe://evil.org/agent/invoice-bot"))
    rejected("wrong_trust_domain", lambda: ia.verifier.verify_jwt(token, AUD))


def test_garbage_tokens(ia: IdentityAuthority) -> None:
    for token in ("", "a.b", "a.b.c", "x" * 5000, "e30.e30.e30"):
        with pytest.raises(CredentialRejected):
            ia.verifier.verify_jwt(token, AUD)


def test_revoked_jti_and_revoked_agent(ia: IdentityAuthority) -> None:
    issued = ia.issuer.issue_agent_jwt("invoice-bot", [AUD])
    ia.verifier.verify_jwt(issued.token, AUD)  # cached before the revocation
    ia.issuer.revoke_credential(
        credential_id=issued.jti,
        kind="jwt",
        spiffe_id=issued.spiffe_id,
        not_after=issued.expires_at,
        reason="leaked in a log",
    )
    rejected("revoked", lambda: ia.verifier.verify_jwt(issued.token, AUD))
    other = ia.issuer.issue_agent_jwt("invoice-bot", [AUD])
    ia.agents.revoke("invoice-bot")
    rejected("principal_revoked", lambda: ia.verifier.verify_jwt(other.token, AUD))
