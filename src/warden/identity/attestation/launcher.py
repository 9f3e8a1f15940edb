"""Launcher bindings: `warden run` starts a process and binds it, by (boot, pid, start time), to
one agent. This tells apart agents that run the same interpreter under the same uid."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from warden.clock import utcnow
from warden.identity.attestation.unix import ProcessRef
from warden.identity.errors import AgentNotActive
from warden.identity.registry import AgentRegistry
from warden.store import Store, schema


class LaunchRegistry:
    """Bindings of launched processes to agents."""

    def __init__(self, store: Store, agents: AgentRegistry) -> None:
        self._store = store
        self._agents = agents

    def bind(self, agent_name: str, process: ProcessRef, *, created_by: str) -> str:
        """Bind ``process`` to ``agent_name`` (which must be active); returns the binding id."""
        agent = self._agents.get(agent_name)
        if agent.status != "active":
            raise AgentNotActive(agent_name, agent.status)
        binding_id = str(uuid.uuid4())
        with self._store.begin() as conn:
            conn.execute(
                schema.process_bindings.insert().values(
                    id=binding_id,
                    agent_name=agent_name,
                    boot_id=process.boot_id,
                    pid=process.pid,
                    start_time=process.start_time,
                    created_at=utcnow(),
                    created_by=created_by,
                )
            )
        return binding_id

    def end(self, binding_id: str) -> bool:
        """Mark a binding ended (its process exited). Returns whether it was open."""
        table = schema.process_bindings
        with self._store.begin() as conn:
            updated = conn.execute(
                table.update()
                .where(table.c.id == binding_id)
                .where(table.c.ended_at.is_(None))
                .values(ended_at=utcnow())
            ).rowcount
        return bool(updated)

    def agents_for(self, process: ProcessRef) -> list[str]:
        """Agents bound to exactly this process (normally none or one)."""
        table = schema.process_bindings
        with self._store.begin() as conn:
            rows = conn.execute(
                select(table.c.agent_name)
                .where(table.c.boot_id == process.boot_id)
                .where(table.c.pid == process.pid)
                .where(table.c.start_time == process.start_time)
                .where(table.c.ended_at.is_(None))
            ).all()
        return sorted({row.agent_name for row in rows})
