"""The agent and operator registries, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from warden.clock import utcnow
from warden.errors import UntrustedInputError
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import (
    AgentNotFound,
    InvalidName,
    InvalidTransition,
    NameTaken,
    SpiffeIdNotReusable,
)


def test_register_list_show(authority: IdentityAuthority) -> None:
    agent = authority.agents.register(
        "invoice-bot", owner="finance-team", purpose="invoices", labels={"team": "finance"}
    )
    assert agent.spiffe_id == "spiffe://example.org/agent/invoice-bot"
    assert (agent.status, agent.credential_epoch, agent.owner) == ("active", 0, "finance-team")
    authority.agents.register("claims-bot", owner="claims")
    assert [a.name for a in authority.agents.list()] == ["claims-bot", "invoice-bot"]
    assert authority.agents.get("invoice-bot").labels == {"team": "finance"}
    assert authority.agents.count() == 2
    with pytest.raises(AgentNotFound):
        authority.agents.get("nobody")


def test_every_agent_needs_an_owner_and_a_good_name(authority: IdentityAuthority) -> None:
    with pytest.raises(UntrustedInputError, match="owner"):
        authority.agents.register("orphan", owner="  ")
    for name in ("../admin", "UPPER", "a/b", ""):
        with pytest.raises(InvalidName):
            authority.agents.register(name, owner="x")
    with pytest.raises(UntrustedInputError):
        authority.agents.register("labelled", owner="x", labels={"k" * 100: "v"})


def test_names_are_unique(authority: IdentityAuthority) -> None:
    authority.agents.register("invoice-bot", owner="finance")
    with pytest.raises(NameTaken):
        authority.agents.register("invoice-bot", owner="someone-else")


def test_status_transitions_and_epochs(authority: IdentityAuthority) -> None:
    authority.agents.register("bot", owner="x")
    assert authority.agents.disable("bot", "paused").status == "disabled"
    with pytest.raises(InvalidTransition):
        authority.agents.disable("bot")
    assert authority.agents.enable("bot").status == "active"
    revoked = authority.agents.revoke("bot", "compromised")
    assert (revoked.status, revoked.credential_epoch) == ("revoked", 1)
    assert authority.agents.revoke("bot").credential_epoch == 2
    again = authority.agents.enable("bot", "re-provisioned")
    assert (again.status, again.credential_epoch) == ("active", 2)
    with pytest.raises(InvalidTransition):
        authority.agents.enable("bot")


def test_deleted_spiffe_id_is_not_reused_within_the_max_ttl(
    authority: IdentityAuthority,
) -> None:
    authority.agents.register("bot", owner="x")
    authority.agents.revoke("bot")
    authority.agents.delete("bot")
    with pytest.raises(AgentNotFound):
        authority.agents.get("bot")
    with pytest.raises(SpiffeIdNotReusable):
        authority.agents.register("bot", owner="y")
    later = utcnow() + timedelta(seconds=authority.settings.x509_svid_max_ttl_s + 60)
    reborn = authority.agents.register("bot", owner="y", now=later)
    # Its epochs continue past the old agent's, so nothing the old one held can match it.
    assert reborn.credential_epoch == 2


def test_operators(authority: IdentityAuthority) -> None:
    alice = authority.operators.add("alice", role="admin", created_by="test")
    assert alice.spiffe_id == "spiffe://example.org/operator/alice"
    authority.operators.add("bob", role="auditor", created_by="alice")
    with pytest.raises(NameTaken):
        authority.operators.add("bob", role="admin", created_by="alice")
    with pytest.raises(UntrustedInputError):
        authority.operators.add("carol", role="root", created_by="alice")  # type: ignore[arg-type]
    assert [o.name for o in authority.operators.list()] == ["alice", "bob"]
    revoked = authority.operators.revoke("bob")
    assert (revoked.status, revoked.credential_epoch) == ("revoked", 1)


def test_status_view_follows_changes_from_another_process(authority: IdentityAuthority) -> None:
    """A second authority on the same store (another process's view) sees the feed."""
    from warden.identity.authority import IdentityAuthority as IA
    from warden.identity.authority import file_key_manager

    other = IA.from_parts(authority.settings, authority.store, file_key_manager(authority.settings))
    authority.agents.register("bot", owner="x")
    issued = authority.issuer.issue_agent_x509("bot")
    assert other.status.catch_up() >= 1
    other.verifier.verify_x509([issued.cert])
    authority.agents.revoke("bot")
    other.status.catch_up()
    assert other.status.principal_state("spiffe://example.org/agent/bot").status == "revoked"
