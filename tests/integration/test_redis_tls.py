"""Redis over mutual TLS with the trust domain's certificates: Redis holds a certificate from
Warden's CA, each gateway and the control plane present their SVIDs, and nothing without
one gets in. The shared window and the revocation fence work across it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.integration.test_shared_state import AGENT, TwoGateways
from tests.support.creds import write_svid
from warden.identity.authority import IdentityAuthority
from warden.local.redis import RedisServer, start_redis


@pytest.fixture
def tls_redis(sqlite_authority: IdentityAuthority, tmp_path: Path) -> Iterator[RedisServer]:
    issued = sqlite_authority.issuer.issue_service_x509(
        "redis", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    files = write_svid(tmp_path / "redis", issued, sqlite_authority.ca.bundle.to_pem())
    server = start_redis(tls=(files / "svid.pem", files / "key.pem", files / "bundle.pem"))
    try:
        yield server
    finally:
        server.kill()


def test_only_holders_of_the_trust_domains_certificates_get_in(
    tls_redis: RedisServer, tmp_path: Path
) -> None:
    bundle = tmp_path / "redis" / "bundle.pem"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=tls_redis.port, socket_timeout=1).ping()  # plain TCP
    with pytest.raises(redis.ConnectionError):  # TLS, but no client certificate
        redis.Redis(
            host="localhost", port=tls_redis.port, ssl=True, ssl_ca_certs=str(bundle),
            socket_timeout=1,
        ).ping()  # fmt: skip


def test_two_gateways_share_a_window_and_the_fence_over_mutual_tls(
    sqlite_authority: IdentityAuthority, tmp_path: Path, tls_redis: RedisServer
) -> None:
    two = TwoGateways(sqlite_authority, tmp_path / "gateways", tls_redis.url)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: two.get(i, "/ehr/one"), range(12)))
        assert sum(a.status_code == 200 for a in answers) == 5
        # A revocation written through the gateway's own fence client (its SVID) is seen by
        # the other gateway's gate.
        fence = two.gateways[0].authority.fence
        assert fence is not None
        fence.restrict(AGENT, "quarantined", 0)
        refused = two.get(1, "/ledger/x")
        assert (refused.status_code, refused.json()["reason"]) == (
            401,
            "credential_principal_quarantined",
        )
    finally:
        two.stop()
