"""The revocation feed over HTTP: a follower in another component sees changes at once and
fails closed when it loses the control plane."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.creds import context_for, write_svid
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import CredentialRejected, StatusUnavailable
from warden.identity.feed_client import HttpFeedFollower
from warden.identity.verifier import CredentialVerifier
from warden.server.run import ControlPlaneServer


@pytest.fixture
def plane(authority: IdentityAuthority) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def gateway_creds(plane: ControlPlaneServer, tmp_path: Path) -> Path:
    issued = plane.authority.issuer.issue_service_x509("gateway")
    return write_svid(tmp_path / "gw", issued, plane.authority.ca.bundle.to_pem())


def wait_until(predicate: object, timeout: float = 3.0) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - start


def test_follower_sees_revocations_and_fails_closed(
    plane: ControlPlaneServer, tmp_path: Path
) -> None:
    authority = plane.authority
    authority.agents.register("invoice-bot", owner="finance")
    svid = authority.issuer.issue_agent_x509("invoice-bot")
    creds = gateway_creds(plane, tmp_path)
    follower = HttpFeedFollower(
        plane.url,
        context_for(creds, plane.credentials.ca_file),
        max_staleness_s=1.0,
        poll_wait_s=0.3,
    ).start()
    try:
        verifier = CredentialVerifier(lambda: authority.ca.bundle, follower)
        verifier.verify_x509([svid.cert])
        authority.agents.quarantine("invoice-bot", "anomaly")
        lag = wait_until(
            lambda: (
                follower.principal_state("spiffe://example.org/agent/invoice-bot").status
                == "quarantined"
            )
        )
        assert lag < 1.0
        with pytest.raises(CredentialRejected) as caught:
            verifier.verify_x509([svid.cert])
        assert caught.value.code == "principal_quarantined"
        authority.agents.release("invoice-bot")
        wait_until(
            lambda: (
                follower.principal_state("spiffe://example.org/agent/invoice-bot").status
                == "active"
            )
        )
        verifier.verify_x509([svid.cert])
        # New principals and single revocations travel too.
        authority.agents.register("claims-bot", owner="claims")
        wait_until(
            lambda: follower.principal_state("spiffe://example.org/agent/claims-bot") is not None
        )
        authority.issuer.revoke_credential(
            credential_id=svid.serial_hex,
            kind="x509",
            spiffe_id="spiffe://example.org/agent/invoice-bot",
            not_after=svid.cert.not_valid_after_utc,
            reason="leak",
        )
        wait_until(lambda: follower.is_revoked(svid.serial_hex))

        plane.stop()  # the control plane goes away: past the bound, everything is refused
        time.sleep(1.5)
        with pytest.raises(StatusUnavailable):
            follower.principal_state("spiffe://example.org/agent/claims-bot")
        with pytest.raises(StatusUnavailable):
            verifier.verify_x509([svid.cert])
    finally:
        follower.stop()


def test_agents_cannot_read_the_feed(plane: ControlPlaneServer, tmp_path: Path) -> None:
    authority = plane.authority
    authority.agents.register("invoice-bot", owner="finance")
    creds = write_svid(
        tmp_path / "agent",
        authority.issuer.issue_agent_x509("invoice-bot"),
        authority.ca.bundle.to_pem(),
    )
    with httpx.Client(
        base_url=plane.url, verify=context_for(creds, plane.credentials.ca_file), timeout=5
    ) as client:
        assert client.get("/v1/feed").status_code == 403
        assert client.get("/v1/feed/snapshot").status_code == 403


def test_long_poll_returns_empty_after_wait(plane: ControlPlaneServer, tmp_path: Path) -> None:
    creds = gateway_creds(plane, tmp_path)
    with httpx.Client(
        base_url=plane.url, verify=context_for(creds, plane.credentials.ca_file), timeout=5
    ) as client:
        head = client.get("/v1/feed/snapshot").json()["seq"]
        start = time.monotonic()
        answer = client.get("/v1/feed", params={"after": head, "wait": 0.3}).json()
        assert answer == {"entries": [], "last": head}
        assert time.monotonic() - start >= 0.25
        assert client.get("/v1/feed", params={"wait": 99}).status_code == 422
