"""The log's Merkle tree as the store keeps it.

Leaf hashes are kept with the entries (or, for archived entries, as level-0 nodes). Interior
nodes are stored from level 4 up: the 15 below each stored node cost one hashing pass over 16
leaves to rebuild, and not writing them takes most of the node rows off every commit.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from warden.audit.merkle import node_hash
from warden.errors import AuditError

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
        """Every wanted (level, index) in two queries; AuditError if the tree has a hole."""
        wanted = set(wanted)
        leaves: set[int] = set()
        stored: list[tuple[int, int]] = []
        for level, index in wanted:
            if level < STORED_FROM:
                leaves.update(range(index << level, (index + 1) << level))
            else:
                stored.append((level, index))
        found_leaves = self._leaves(sorted(leaves))
        found = self._stored(stored)
        for level, index in wanted:
            if level < STORED_FROM:
                found[(level, index)] = _subtree(found_leaves, level, index)
            elif (level, index) not in found:
                raise AuditError(f"the log is missing node ({level}, {index})", code="log_damaged")
        return found

    # Plain SQL on the driver's cursor: a proof is a handful of lookups, and SQLAlchemy's
    # statement building and row objects cost several times the lookups themselves.

    def _mark(self) -> str:
        return "?" if self._conn.dialect.name == "sqlite" else "%s"

    def _stored(self, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        mark = self._mark()
        cursor = self._conn.connection.cursor()
        for start in range(0, len(pairs), 200):
            part = pairs[start : start + 200]
            where = " OR ".join([f"(level = {mark} AND idx = {mark})"] * len(part))
            cursor.execute(
                "SELECT level, idx, hash FROM audit_nodes WHERE " + where,  # noqa: S608 (marks only)
                [v for pair in part for v in pair],
            )
            found.update(((int(lv), int(i)), bytes(h)) for lv, i, h in cursor.fetchall())
        return found

    def _leaves(self, indexes: list[int]) -> dict[int, bytes]:
        if not indexes:
            return {}
        mark = self._mark()
        cursor = self._conn.connection.cursor()
        found: dict[int, bytes] = {}
        for start in range(0, len(indexes), 500):
            part = indexes[start : start + 500]
            marks = ", ".join([mark] * len(part))
            cursor.execute(
                f"SELECT seq, leaf_hash FROM audit_entries WHERE seq IN ({marks})",  # noqa: S608
                part,
            )
            found.update((int(seq), bytes(h)) for seq, h in cursor.fetchall())
        missing = [i for i in indexes if i not in found]  # archived entries keep their leaves
        if missing:
            found.update((i, h) for (_, i), h in self._stored([(0, i) for i in missing]).items())
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
