"""The X-Warden-Decision header: what warden.upstream accepts, and every way it refuses."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from tests.support.forge import rogue_ca
from warden.enforce.decision_header import DecisionHeaderSigner
from warden.identity.authority import IdentityAuthority
from warden.upstream import DecisionRejected, DecisionVerifier

LEDGER = "spiffe://example.org/svc/ledger"
AGENT = "spiffe://example.org/agent/invoice-bot"


@pytest.fixture
def parts(
    sqlite_authority: IdentityAuthority,
) -> tuple[DecisionHeaderSigner, DecisionVerifier, IdentityAuthority]:
    issued = sqlite_authority.issuer.issue_service_x509("gateway")
    assert issued.key is not None
    signer = DecisionHeaderSigner(
        [issued.cert, *issued.chain], issued.key, "spiffe://example.org/svc/gateway"
    )
    verifier = DecisionVerifier(list(sqlite_authority.ca.bundle.x509_authorities), LEDGER)
    return signer, verifier, sqlite_authority


def sign(signer: DecisionHeaderSigner, **over: Any) -> str:
    args = {
        "upstream_id": LEDGER,
        "agent_id": AGENT,
        "decision_id": "d-1",
        "method": "POST",
        "path": "/ledger/payments?x=1",
        "body": b'{"amount": 5}',
    }
    args.update(over)
    return signer.sign(**args)


def rejected(code: str, call: Any) -> None:
    with pytest.raises(DecisionRejected) as caught:
        call()
    assert caught.value.code == code, caught.value.message


def test_genuine_header_verifies_once(parts: Any) -> None:
    signer, verifier, _ = parts
    token = sign(signer)
    claims = verifier.verify(token, "POST", "/ledger/payments?x=1", b'{"amount": 5}')
    assert (claims["sub"], claims["wdn"], claims["iss"]) == (
        AGENT,
        "d-1",
        "spiffe://example.org/svc/gateway",
    )
    rejected(
        "replayed", lambda: verifier.verify(token, "POST", "/ledger/payments?x=1", b'{"amount": 5}')
    )


def test_altered_requests_are_refused(parts: Any) -> None:
    signer, verifier, _ = parts
    rejected(
        "wrong_body",
        lambda: verifier.verify(sign(signer), "POST", "/ledger/payments?x=1", b'{"amount": 5000}'),
    )
    rejected(
        "wrong_request",
        lambda: verifier.verify(sign(signer), "DELETE", "/ledger/payments?x=1", b'{"amount": 5}'),
    )
    rejected(
        "wrong_request",
        lambda: verifier.verify(sign(signer), "POST", "/ledger/payments?x=2", b'{"amount": 5}'),
    )
    rejected(
        "wrong_audience",
        lambda: verifier.verify(
            sign(signer, upstream_id="spiffe://example.org/svc/payroll"),
            "POST",
            "/ledger/payments?x=1",
            b'{"amount": 5}',
        ),
    )
    rejected("missing", lambda: verifier.verify(None, "GET", "/", b""))


def test_tampered_claims_break_the_signature(parts: Any) -> None:
    signer, verifier, _ = parts
    header, payload, signature = sign(signer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["bh"] = "AAAA"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    rejected(
        "invalid",
        lambda: verifier.verify(
            f"{header}.{forged}.{signature}", "POST", "/ledger/payments?x=1", b'{"amount": 5}'
        ),
    )


def test_expired_headers(parts: Any) -> None:
    _, _, authority = parts
    issued = authority.issuer.issue_service_x509("gateway")
    quick = DecisionHeaderSigner(
        [issued.cert, *issued.chain], issued.key, "spiffe://example.org/svc/gateway", lifetime_s=1
    )
    strict = DecisionVerifier(list(authority.ca.bundle.x509_authorities), LEDGER, skew_s=0)
    token = sign(quick)
    time.sleep(2.1)
    rejected(
        "expired", lambda: strict.verify(token, "POST", "/ledger/payments?x=1", b'{"amount": 5}')
    )


def test_only_warden_services_of_this_trust_domain_sign(parts: Any) -> None:
    _, verifier, authority = parts
    authority.agents.register("invoice-bot", owner="finance")
    agent_svid = authority.issuer.issue_agent_x509("invoice-bot")
    as_agent = DecisionHeaderSigner(
        [agent_svid.cert, *agent_svid.chain], agent_svid.key, "spiffe://example.org/svc/gateway"
    )
    rejected(
        "not_a_gateway",
        lambda: verifier.verify(sign(as_agent), "POST", "/ledger/payments?x=1", b'{"amount": 5}'),
    )
    ca_cert, ca_key = rogue_ca()
    rogue = DecisionHeaderSigner([ca_cert], ca_key, "spiffe://example.org/svc/gateway")
    rejected(
        "untrusted",
        lambda: verifier.verify(sign(rogue), "POST", "/ledger/payments?x=1", b'{"amount": 5}'),
    )
    only = DecisionVerifier(
        list(authority.ca.bundle.x509_authorities),
        LEDGER,
        allowed_gateways={"spiffe://example.org/svc/edge"},
    )
    signer, _, _ = parts
    rejected(
        "not_a_gateway",
        lambda: only.verify(sign(signer), "POST", "/ledger/payments?x=1", b'{"amount": 5}'),
    )


def test_algorithm_and_chain_tricks(parts: Any) -> None:
    signer, verifier, _ = parts
    token = sign(signer)
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    none = (
        base64.urlsafe_b64encode(json.dumps({**header, "alg": "none"}).encode())
        .decode()
        .rstrip("=")
        + "."
        + token.split(".")[1]
        + "."
    )
    rejected(
        "alg_not_allowed",
        lambda: verifier.verify(none, "POST", "/ledger/payments?x=1", b'{"amount": 5}'),
    )
    hs = jwt.encode(payload, "s" * 32, algorithm="HS256", headers={"x5c": header["x5c"]})
    rejected(
        "alg_not_allowed",
        lambda: verifier.verify(hs, "POST", "/ledger/payments?x=1", b'{"amount": 5}'),
    )
    no_chain = jwt.encode(payload, signer._key, algorithm="ES256")
    rejected(
        "no_chain",
        lambda: verifier.verify(no_chain, "POST", "/ledger/payments?x=1", b'{"amount": 5}'),
    )
