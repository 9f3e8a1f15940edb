"""The revocation fence through a real Redis: a revocation made by another process is refused
by the gateway on the very next request, before the gateway's feed has it; with Redis gone,
revocations still commit and reach the gateway through the feed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.support.creds import context_for, write_svid
from tests.support.gateway import with_settings
from tests.support.upstream import Upstream, ledger_routes
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority, file_key_manager
from warden.local.redis import RedisServer
from warden.shared.fence import FenceUnavailable, RevocationFence
from warden.store import open_store


def test_the_fence_restricts_and_lifts(redis_server: RedisServer) -> None:
    fence = RevocationFence.from_url(redis_server.url, ttl_s=60)
    bot = "spiffe://example.org/agent/bot"
    assert fence.check(bot, "ab12") is None
    fence.restrict(bot, "active", 1)  # never fences anything
    assert fence.check(bot, "ab12") is None
    fence.restrict(bot, "quarantined", 1)
    assert fence.check(bot, "ab12") == "principal_quarantined"
    fence.lift(bot)
    assert fence.check(bot, "ab12") is None
    fence.revoke_credential("ab12")
    assert fence.check(bot, "ab12") == "revoked"
    assert fence.check(bot, "cd34") is None
    redis_server.kill()
    with pytest.raises(FenceUnavailable):
        fence.check(bot, "ab12")
    fence.restrict(bot, "revoked", 2)  # a fence that cannot be written never stops a revoke


class Fenced:
    """A gateway on one store and one Redis, and a second authority on its own connection
    to the store: the control plane, as another process would be."""

    def __init__(self, authority: IdentityAuthority, root: Path, redis_url: str) -> None:
        self.authority = with_settings(authority, redis_url=redis_url)
        self.upstream = Upstream(self.authority, root).start()
        self.gateway = GatewayServer(
            self.authority, routes=ledger_routes(self.upstream), host="127.0.0.1", port=0
        ).start_in_thread()
        settings = self.authority.settings
        # The same database, on a connection of its own (as another process has).
        self.plane_store = open_store(
            self.authority.store.engine.url.render_as_string(hide_password=False)
        )
        self.plane = IdentityAuthority.from_parts(
            settings, self.plane_store, file_key_manager(settings)
        )
        self.root = root

    @contextlib.contextmanager
    def client(self, name: str) -> Iterator[httpx.Client]:
        self.authority.agents.register(name, owner="qa", groups=["finance"])
        issued = self.authority.issuer.issue_agent_x509(name)
        creds = write_svid(self.root / name, issued, self.authority.ca.bundle.to_pem())
        with httpx.Client(
            base_url=self.gateway.url,
            timeout=10,
            verify=context_for(creds, self.gateway.credentials.ca_file),
        ) as client:
            deadline = time.monotonic() + 5
            while client.get("/ledger/x").status_code != 200:  # the gateway knows the agent
                assert time.monotonic() < deadline
                time.sleep(0.02)
            yield client

    def stop(self) -> None:
        self.gateway.stop()
        self.upstream.stop()
        self.plane_store.dispose()


@pytest.fixture
def fenced(
    authority: IdentityAuthority, tmp_path: Path, redis_server: RedisServer
) -> Iterator[Fenced]:
    setup = Fenced(authority, tmp_path, redis_server.url)
    try:
        yield setup
    finally:
        setup.stop()


def test_the_request_right_after_a_revocation_is_refused(fenced: Fenced) -> None:
    for i in range(8):
        name = f"bot-{i}"
        with fenced.client(name) as client:
            change = ("revoke", "quarantine", "disable")[i % 3]
            getattr(fenced.plane.agents, change)(name, "test")  # committed in another store
            after = client.get("/ledger/x")  # on a connection that stays open
            assert after.status_code == 401, (change, after.text)
            assert after.json()["reason"] in {
                "credential_principal_revoked",
                "credential_principal_quarantined",
                "credential_principal_disabled",
            }
    with fenced.client("released-bot") as client:
        fenced.plane.agents.quarantine("released-bot", "test")
        assert client.get("/ledger/x").status_code == 401
        fenced.plane.agents.release("released-bot", "cleared")
        deadline = time.monotonic() + 5
        while client.get("/ledger/x").status_code != 200:  # the feed brings the release
            assert time.monotonic() < deadline, "a released agent stays fenced"
            time.sleep(0.02)


def test_one_revoked_credential_is_refused_at_once(fenced: Fenced) -> None:
    with fenced.client("serial-bot") as client:
        agent = fenced.authority.agents.get("serial-bot")
        cert = fenced.root / "serial-bot" / "svid.pem"
        leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
        fenced.plane.issuer.revoke_credential(
            credential_id=format(leaf.serial_number, "x"),
            kind="x509",
            spiffe_id=agent.spiffe_id,
            not_after=leaf.not_valid_after_utc,
            reason="key leaked",
        )
        refused = client.get("/ledger/x")
        assert (refused.status_code, refused.json()["reason"]) == (401, "credential_revoked")


def test_without_redis_revocations_still_commit_and_arrive_by_the_feed(
    fenced: Fenced, redis_server: RedisServer
) -> None:
    with fenced.client("late-bot") as client:
        redis_server.kill()
        fenced.plane.agents.revoke("late-bot", "test")  # Redis gone: committed all the same
        deadline = time.monotonic() + 3
        while client.get("/ledger/x").status_code == 200:
            assert time.monotonic() < deadline, "the feed never brought the revocation"
            time.sleep(0.02)
        assert client.get("/ledger/x").json()["reason"] == "credential_principal_revoked"
    assert fenced.plane.agents.get("late-bot").status == "revoked"
