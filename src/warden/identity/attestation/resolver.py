"""From a caller's evidence to exactly one active agent, or to nothing.

A process bound by `warden run` is that agent. Otherwise the caller's Unix selectors must match
exactly one agent's registered selectors. No match, several matches, or an agent that is not
active: no identity. Every attempt is recorded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from warden.identity.attestation.events import record_attempt
from warden.identity.attestation.launcher import LaunchRegistry
from warden.identity.attestation.selectors import matches
from warden.identity.attestation.unix import UnixEvidence, attest_process
from warden.identity.errors import AttestationFailed
from warden.identity.registry import Agent, AgentRegistry
from warden.store import Store, schema


class WorkloadAttestor:
    """Identifies the agent behind a Unix-socket caller."""

    def __init__(self, store: Store, agents: AgentRegistry, launches: LaunchRegistry) -> None:
        self._store = store
        self._agents = agents
        self._launches = launches

    def attest(self, pid: int, uid: int, gid: int) -> tuple[Agent, UnixEvidence]:
        """The one active agent this caller is; :class:`AttestationFailed` otherwise."""
        evidence_dict: dict[str, Any] = {"pid": pid, "uid": uid, "gid": gid}
        method = "unix"
        try:
            evidence = attest_process(pid, uid, gid)
            evidence_dict = evidence.to_dict()
            bound = self._launches.agents_for(evidence.process)
            if bound:
                method = "launcher"
                candidates = bound
            else:
                candidates = self._matching_agents(evidence)
            if not candidates:
                raise AttestationFailed("the caller matches no registered agent")
            if len(candidates) > 1:
                raise AttestationFailed(f"the caller matches {len(candidates)} agents")
            agent = self._agents.get(candidates[0])
            if agent.status != "active":
                raise AttestationFailed(f"agent {agent.name} is {agent.status}")
        except AttestationFailed as exc:
            self._record(method, "refused", None, evidence_dict, exc.why)
            raise
        self._record(method, "issued", agent.name, evidence_dict, "")
        return agent, evidence

    def _matching_agents(self, evidence: UnixEvidence) -> list[str]:
        presented = evidence.selectors()
        with self._store.begin() as conn:
            rows = conn.execute(select(schema.agents.c.name, schema.agents.c.selectors)).all()
        return [row.name for row in rows if matches(frozenset(row.selectors), presented)]

    def _record(
        self, method: str, outcome: str, agent: str | None, evidence: dict[str, Any], reason: str
    ) -> None:
        with self._store.begin() as conn:
            record_attempt(
                conn,
                method=method,
                outcome=outcome,
                agent_name=agent,
                evidence=evidence,
                reason=reason,
            )
