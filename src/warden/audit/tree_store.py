"""The log's Merkle tree as the store keeps it.

Leaf hashes are kept with the entries (or, for archived entries, as level-0 nodes). Interior
nodes are stored from level 4 up: the 15 below each stored node cost one hashing pass over 16
leaves to rebuild, and not writing them takes most of the node rows off every commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from warden.audit.merkle import node_hash
from warden.errors import AuditError
from warden.store import schema

STORED_FROM = 4


def to_store(completed: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """The completed interior nodes the store keeps."""
    return [node for node in completed if node[0] >= STORED_FROM]


class TreeStore:
    """Perfect subtree hashes from one connection."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def perfect(self, level: int, index: int) -> bytes:
        return self.many([(level, index)])[(level, index)]

    def many(self, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Every wanted (level, index) in a few queries; AuditError if the tree has a hole."""
        wanted = set(wanted)
        leaves: set[int] = set()
        stored: dict[int, list[int]] = {}
        for level, index in wanted:
            if level < STORED_FROM:
                leaves.update(range(index << level, (index + 1) << level))
            else:
                stored.setdefault(level, []).append(index)
        found_leaves = self._leaves(sorted(leaves))
        found: dict[tuple[int, int], bytes] = {}
        for level, indexes in stored.items():
            table = schema.audit_nodes
            for row in self._conn.execute(
                select(table.c.idx, table.c.hash)
                .where(table.c.level == level)
                .where(table.c.idx.in_(indexes))
            ):
                found[(level, int(row.idx))] = bytes(row.hash)
        for level, index in wanted:
            if level < STORED_FROM:
                found[(level, index)] = _subtree(found_leaves, level, index)
            elif (level, index) not in found:
                raise AuditError(f"the log is missing node ({level}, {index})", code="log_damaged")
        return found

    def _leaves(self, indexes: list[int]) -> dict[int, bytes]:
        if not indexes:
            return {}
        entries, nodes = schema.audit_entries, schema.audit_nodes
        found: dict[int, bytes] = {}
        for start in range(0, len(indexes), 500):
            part = indexes[start : start + 500]
            rows: Any = self._conn.execute(
                select(entries.c.seq, entries.c.leaf_hash).where(entries.c.seq.in_(part))
            )
            found.update((int(r.seq), bytes(r.leaf_hash)) for r in rows)
        missing = [i for i in indexes if i not in found]  # archived entries keep their leaves
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            rows = self._conn.execute(
                select(nodes.c.idx, nodes.c.hash)
                .where(nodes.c.level == 0)
                .where(nodes.c.idx.in_(part))
            )
            found.update((int(r.idx), bytes(r.hash)) for r in rows)
        return found


def _subtree(leaves: dict[int, bytes], level: int, index: int) -> bytes:
    start = index << level
    try:
        layer = [leaves[i] for i in range(start, start + (1 << level))]
    except KeyError as exc:
        raise AuditError(f"the log is missing leaf {exc.args[0]}", code="log_damaged") from exc
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]
