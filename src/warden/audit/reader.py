"""Reading the decision log: entries, decisions, checkpoints, and proofs anyone can check."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from warden.audit import merkle
from warden.audit.checkpoint import Checkpoint
from warden.audit.tree_store import TreeStore
from warden.errors import AuditError, NotFoundError
from warden.store import Store, schema

MAX_PAGE = 1000


@dataclass(frozen=True)
class InclusionProof:
    """That entry ``seq`` is in the tree of ``checkpoint``: its leaf and the path."""

    seq: int
    entry: bytes
    leaf_hash: bytes
    path: list[bytes]
    checkpoint: Checkpoint

    def verifies(self) -> bool:
        return merkle.verify_inclusion(
            merkle.leaf_hash(self.entry),
            self.seq,
            self.checkpoint.size,
            self.path,
            self.checkpoint.root,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "tree_size": self.checkpoint.size,
            "entry": self.entry.decode(),
            "leaf_hash": self.leaf_hash.hex(),
            "path": [base64.b64encode(h).decode() for h in self.path],
            "checkpoint": self.checkpoint.note,
        }


class LogReader:
    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def from_engine(cls, engine: Engine) -> LogReader:
        return cls(Store(engine))

    # -- entries -------------------------------------------------------------------------------

    def size(self) -> int:
        from warden.audit.log import tree_size

        with self.store.begin() as conn:
            return tree_size(conn)

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        """The entry of one decision, or None."""
        table = schema.audit_entries
        with self.store.begin() as conn:
            row = conn.execute(
                select(table.c.entry).where(table.c.decision_id == decision_id)
            ).one_or_none()
        return None if row is None else dict(json.loads(row.entry))

    def search(
        self,
        *,
        agent: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        table = schema.audit_entries
        query = select(table.c.entry).order_by(table.c.seq.desc()).limit(min(limit, MAX_PAGE))
        if agent is not None:
            query = query.where(table.c.subject == agent)
        if decision is not None:
            query = query.where(table.c.decision == decision)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        if since is not None:
            query = query.where(table.c.at >= since)
        if before_seq is not None:
            query = query.where(table.c.seq < before_seq)
        with self.store.begin() as conn:
            return [dict(json.loads(r.entry)) for r in conn.execute(query).all()]

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        table = schema.audit_entries
        with self.store.begin() as conn:
            rows = conn.execute(
                select(table.c.seq, table.c.entry)
                .where(table.c.seq >= start)
                .where(table.c.seq < end)
                .order_by(table.c.seq)
            ).all()
        return [(int(r.seq), bytes(r.entry)) for r in rows]

    # -- checkpoints and proofs ----------------------------------------------------------------

    def checkpoints(self) -> list[tuple[int, str]]:
        table = schema.audit_checkpoints
        with self.store.begin() as conn:
            rows = conn.execute(select(table.c.size, table.c.note).order_by(table.c.size)).all()
        return [(int(r.size), str(r.note)) for r in rows]

    def latest_checkpoint_note(self) -> str | None:
        table = schema.audit_checkpoints
        with self.store.begin() as conn:
            return conn.execute(
                select(table.c.note).order_by(table.c.size.desc()).limit(1)
            ).scalar_one_or_none()

    def prove_decision(self, decision_id: str, checkpoint: Checkpoint) -> InclusionProof:
        """The inclusion proof of a decision's entry in the tree ``checkpoint`` signs."""
        with self.store.begin() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(_BY_DECISION[conn.dialect.name == "sqlite"], (decision_id,))
            row = cursor.fetchone()
            if row is None:
                raise NotFoundError(f"no decision {decision_id} in the log")
            seq, entry, leaf = int(row[0]), bytes(row[1]), bytes(row[2])
            if seq >= checkpoint.size:
                raise NotFoundError(f"entry {seq} is newer than checkpoint {checkpoint.size}")
            store = TreeStore(conn)
            path = _two_pass(store, lambda p: merkle.inclusion_proof(seq, checkpoint.size, p))
        return InclusionProof(seq, entry, leaf, path, checkpoint)

    def prove(self, seq: int, checkpoint: Checkpoint, entry: bytes, leaf: bytes) -> InclusionProof:
        if seq >= checkpoint.size:
            raise NotFoundError(f"entry {seq} is newer than checkpoint {checkpoint.size}")
        path = self._with_nodes(lambda p: merkle.inclusion_proof(seq, checkpoint.size, p))
        return InclusionProof(seq, entry, leaf, path, checkpoint)

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        return self._with_nodes(lambda p: merkle.consistency_proof(m, n, p))

    def _with_nodes(self, build: Callable[[merkle.Perfect], list[bytes]]) -> list[bytes]:
        with self.store.begin() as conn:
            return _two_pass(TreeStore(conn), build)


_BY_DECISION = {
    True: "SELECT seq, entry, leaf_hash FROM audit_entries WHERE decision_id = ?",
    False: "SELECT seq, entry, leaf_hash FROM audit_entries WHERE decision_id = %s",
}


def _two_pass(store: TreeStore, build: Callable[[merkle.Perfect], list[bytes]]) -> list[bytes]:
    """Run a proof builder twice: once to learn which perfect subtrees it needs, then with
    all of them fetched at once (a lookup per node is several times slower)."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return b"\x00" * 32

    build(record)
    known = store.many(wanted)

    def lookup(level: int, index: int) -> bytes:
        try:
            return known[(level, index)]
        except KeyError as exc:
            raise AuditError(
                f"the log is missing node ({level}, {index})", code="log_damaged"
            ) from exc

    return build(lookup)
