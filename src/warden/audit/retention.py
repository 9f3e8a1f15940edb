"""Retention: sealed ranges of the log moved out of the store into files that still verify.

A range [start, end) is sealed when a checkpoint of size ``end`` exists. Its file holds a
header (the range, the perfect subtrees of everything before it, and the signed checkpoint at
its end) and one line per entry; ``verify_archive`` rebuilds the root at ``end`` from the
header and the entries and checks it against the checkpoint's signature, with nothing but the
file and the log's public key. The store keeps the leaf hashes of archived entries (as level-0
nodes), so proofs for the entries that remain still work.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, insert, select

from warden.audit import checkpoint as checkpoints
from warden.audit import sql
from warden.audit.checkpoint import VerifierKey
from warden.audit.log import ARCHIVED_TO
from warden.audit.merkle import Frontier, frontier_of, leaf_hash
from warden.errors import AuditError, UntrustedInputError
from warden.store import Store, schema


def archived_to(store: Store) -> int:
    value = store.get_meta(ARCHIVED_TO)
    return int(value) if value else 0


@dataclass(frozen=True)
class Archive:
    path: Path
    start: int
    end: int


def archive(store: Store, directory: Path, end: int) -> Archive:
    """Move entries [archived_to, end) into a file in ``directory``; ``end`` must be the size
    of a checkpoint (only sealed history is moved)."""
    from warden.audit.log import _perfect

    start = archived_to(store)
    if end <= start:
        raise UntrustedInputError(f"entries before {start} are archived already", code="archived")
    table, nodes = schema.audit_entries, schema.audit_nodes
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"entries-{start:012d}-{end:012d}.jsonl"
    with store.begin() as conn:
        sql.lock_and_size(conn.connection.cursor(), conn.dialect.name)  # the writers' lock
        note = conn.execute(
            select(schema.audit_checkpoints.c.note).where(schema.audit_checkpoints.c.size == end)
        ).scalar_one_or_none()
        if note is None:
            raise UntrustedInputError(f"no checkpoint of size {end}: not sealed", code="not_sealed")
        prefix = frontier_of(start, _perfect(conn))
        rows = conn.execute(
            select(table.c.seq, table.c.entry, table.c.leaf_hash, table.c.mac)
            .where(table.c.seq >= start)
            .where(table.c.seq < end)
            .order_by(table.c.seq)
        ).all()
        if len(rows) != end - start:
            raise AuditError(
                "the range to archive has gaps: run warden audit verify", code="log_damaged"
            )
        header = {
            "start": start,
            "end": end,
            "frontier": [base64.b64encode(n).decode() for n in prefix.nodes],
            "checkpoint": note,
        }
        with open(path, "w") as out:
            out.write(json.dumps(header) + "\n")
            for row in rows:
                out.write(
                    json.dumps(
                        {
                            "seq": row.seq,
                            "entry": bytes(row.entry).decode(),
                            "mac": bytes(row.mac).hex(),
                        }
                    )
                    + "\n"
                )
        # Leaf hashes stay (level 0 of the tree), the entries go.
        conn.execute(
            insert(nodes),
            [{"level": 0, "idx": row.seq, "hash": bytes(row.leaf_hash)} for row in rows],
        )
        conn.execute(delete(table).where(table.c.seq >= start).where(table.c.seq < end))
        meta = schema.meta
        if conn.execute(select(meta.c.value).where(meta.c.key == ARCHIVED_TO)).first() is None:
            conn.execute(meta.insert().values(key=ARCHIVED_TO, value=str(end)))
        else:
            conn.execute(meta.update().where(meta.c.key == ARCHIVED_TO).values(value=str(end)))
    return Archive(path, start, end)


def verify_archive(path: Path, key: VerifierKey) -> list[str]:
    """Problems with an archive file (empty: it verifies)."""
    problems: list[str] = []
    with open(path) as handle:
        header = json.loads(handle.readline())
        try:
            signed = checkpoints.verify(header["checkpoint"], key)
        except checkpoints.CheckpointInvalid as exc:
            return [f"{path.name}: checkpoint forged or damaged: {exc.message}"]
        start, end = int(header["start"]), int(header["end"])
        frontier = Frontier(start, [base64.b64decode(n) for n in header["frontier"]])
        for expected, line in enumerate(handle, start):
            record = json.loads(line)
            if record["seq"] != expected:
                problems.append(f"{path.name}: entry {expected} missing or out of order")
                break
            frontier.append(leaf_hash(record["entry"].encode()))
    if signed.size != end:
        problems.append(f"{path.name}: the checkpoint is of size {signed.size}, not {end}")
    elif frontier.size != end or frontier.root() != signed.root:
        problems.append(f"{path.name}: the entries do not produce the checkpoint's root")
    return problems
