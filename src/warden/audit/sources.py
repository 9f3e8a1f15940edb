"""Events that other parts of Warden keep in their own tables, copied into the log exactly
once: every identity lifecycle change (the principal feed), every attestation attempt, every
policy bundle change and every shadow-mode flip. Each source keeps a cursor in the store,
advanced in the transaction that appends its entries (under the log's lock), so no event is
copied twice or skipped, whichever process copies it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, select

from warden.clock import as_utc, isoformat
from warden.store import schema


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    table: Table
    position: Column[Any]
    body: Callable[[Any], dict[str, Any]]

    @property
    def cursor_key(self) -> str:
        return f"audit.cursor.{self.name}"

    def pull(
        self, connection: Connection, *, limit: int
    ) -> list[tuple[str, datetime, dict[str, Any]]]:
        """New rows as (kind, time, entry body); the cursor moves past them."""
        meta = schema.meta
        cursor = connection.execute(
            select(meta.c.value).where(meta.c.key == self.cursor_key)
        ).scalar_one_or_none()
        last = int(cursor) if cursor is not None else 0
        rows = connection.execute(
            select(self.table).where(self.position > last).order_by(self.position).limit(limit)
        ).all()
        if not rows:
            return []
        newest = str(getattr(rows[-1], self.position.name))
        if cursor is None:
            connection.execute(meta.insert().values(key=self.cursor_key, value=newest))
        else:
            connection.execute(
                meta.update().where(meta.c.key == self.cursor_key).values(value=newest)
            )
        out = []
        for row in rows:
            at = as_utc(row.at)
            body = {"v": 1, "kind": self.kind, "at": isoformat(at), "source": self.name}
            out.append((self.kind, at, {**body, **self.body(row)}))
        return out


def _feed(row: Any) -> dict[str, Any]:
    return {
        "event": row.change,
        "source_seq": row.seq,
        "spiffe_id": row.spiffe_id,
        "status": row.status,
        "epoch": row.epoch,
        "credential_id": row.credential_id,
        "not_after": isoformat(as_utc(row.not_after)) if row.not_after is not None else None,
        "reason": row.reason,
    }


def _attestation(row: Any) -> dict[str, Any]:
    return {
        "event": f"attestation_{row.outcome}",
        "source_seq": row.id,
        "method": row.method,
        "agent": row.agent_name,
        "evidence": row.evidence,
        "reason": row.reason,
    }


def _policy(row: Any) -> dict[str, Any]:
    return {
        "event": f"bundle_{row.outcome}",
        "source_seq": row.id,
        "bundle": row.name,
        "version": row.version,
        "revision": row.revision,
        "from": row.source,
        "reason": row.reason,
    }


def _flip(row: Any) -> dict[str, Any]:
    return {
        "event": "shadow_flip",
        "source_seq": row.id,
        "decision_id": row.decision_id,
        "active_revision": row.active_revision,
        "shadow_revision": row.shadow_revision,
        "active": row.active,
        "shadow": row.shadow,
        "shadow_reasons": row.shadow_reasons,
    }


SOURCES = (
    Source("principal_feed", "identity", schema.principal_feed, schema.principal_feed.c.seq, _feed),
    Source(
        "attestation_events",
        "identity",
        schema.attestation_events,
        schema.attestation_events.c.id,
        _attestation,
    ),
    Source("policy_events", "policy", schema.policy_events, schema.policy_events.c.id, _policy),
    Source("shadow_flips", "policy", schema.shadow_flips, schema.shadow_flips.c.id, _flip),
)
