"""Every attestation attempt, issued or refused, is recorded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from warden.clock import utcnow
from warden.store import Store, schema


def record_attempt(
    conn: Connection,
    *,
    method: str,
    outcome: str,
    agent_name: str | None,
    evidence: dict[str, Any],
    reason: str,
) -> None:
    conn.execute(
        schema.attestation_events.insert().values(
            at=utcnow(),
            method=method,
            outcome=outcome,
            agent_name=agent_name,
            evidence=evidence,
            reason=reason[:2000],
        )
    )


def recent_attempts(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """The newest attestation attempts, newest first."""
    table = schema.attestation_events
    with store.begin() as conn:
        rows = conn.execute(select(table).order_by(table.c.id.desc()).limit(limit)).all()
    return [dict(row._mapping) for row in rows]
