"""The decision log writer's statements, in plain SQL on the driver's cursor.

They run once per commit (or once per entry), where building them with SQLAlchemy's
expression language and its result objects cost more than running them. Parameters are
always bound, never formatted into the text.
"""

from __future__ import annotations

import functools
from typing import Any

LOCK_ROW = "audit.writer"
ARCHIVED_TO = "audit.archived_to"  # entries before it were moved to archive files
PG_LOCK_KEY = 0x5741524C4F47  # "WARLOG": one advisory lock serialises log writers

_STATEMENTS = {
    "sqlite": {
        # A write first: from here the transaction holds SQLite's write lock.
        "lock": "UPDATE warden_meta SET value = '1' WHERE key = ?",
        "size": "SELECT (SELECT coalesce(max(seq) + 1, 0) FROM audit_entries),"
        " (SELECT value FROM warden_meta WHERE key = ?)",
        "entries": "INSERT INTO audit_entries (seq, kind, at, entry, leaf_hash, mac, decision_id,"
        " subject, decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "nodes": "INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)",
    },
    "postgresql": {
        "lock": "SELECT pg_advisory_xact_lock(%s)",
        "size": "SELECT (SELECT coalesce(max(seq) + 1, 0) FROM audit_entries),"
        " (SELECT value FROM warden_meta WHERE key = %s)",
        "entries": "INSERT INTO audit_entries (seq, kind, at, entry, leaf_hash, mac, decision_id,"
        " subject, decision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        "nodes": "INSERT INTO audit_nodes (level, idx, hash) VALUES (%s, %s, %s)",
    },
}


def lock_and_size(cursor: Any, dialect: str) -> int:
    """Take the log's lock; the tree's size (counting archived entries)."""
    statements = _STATEMENTS[dialect]
    if dialect == "sqlite" and not cursor.connection.in_transaction:
        # SQLite's write lock from the first statement, without a page to write back at
        # every commit (the lock row's update rewrites its page into the WAL each time).
        cursor.execute("BEGIN IMMEDIATE")
    else:
        cursor.execute(statements["lock"], (LOCK_ROW if dialect == "sqlite" else PG_LOCK_KEY,))
    cursor.execute(statements["size"], (ARCHIVED_TO,))
    newest, archived = cursor.fetchone()
    return max(int(newest), int(archived or 0))


def size(cursor: Any, dialect: str) -> int:
    cursor.execute(_STATEMENTS[dialect]["size"], (ARCHIVED_TO,))
    newest, archived = cursor.fetchone()
    return max(int(newest), int(archived or 0))


def insert(cursor: Any, dialect: str, entries: list[tuple[Any, ...]], nodes: list[Any]) -> None:
    """One multi-row INSERT per table: SQLite steps each statement with the GIL released,
    so one statement per row would hand the GIL back and forth once per row."""
    for table, rows in (("entries", entries), ("nodes", nodes)):
        for start in range(0, len(rows), MAX_ROWS):
            part = rows[start : start + MAX_ROWS]
            cursor.execute(_multi(dialect, table, len(part)), [v for row in part for v in row])


MAX_ROWS = 256  # 9 parameters a row stays far below every backend's parameter limit


@functools.lru_cache(maxsize=512)
def _multi(dialect: str, table: str, rows: int) -> str:
    head, _, values = _STATEMENTS[dialect][table].partition(" VALUES ")
    return head + " VALUES " + ", ".join([values] * rows)
