"""Scanning the decision log's entries in chunks: each entry's hash, MAC and position, and the
Merkle tree over them.

The verifier (:mod:`warden.audit.verify`) scans a large log in one worker process per core:
``python -m warden.audit.scan`` takes a :class:`Job` on stdin and writes its chunks to stdout.
This module imports only the standard library (and Warden's errors, keyed hash and Merkle
hashes, which import nothing else), so a worker is up in tens of milliseconds; a worker started by
``multiprocessing`` re-imports the parent's main module (Warden's whole command line) and
spent about a second of a five-second verification starting. The job and the chunks cross a
pipe between a verifier and the worker it started, pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.audit.merkle import Frontier, fold, frontier_of, leaf_hash
from warden.errors import AuditError
from warden.keyed_hash import HmacSha256

CHUNK_LEVEL = 13  # 2^13 entries a chunk: a unit of a worker's work, small enough to share evenly
MMAP_BYTES = 1 << 31
_sha256 = hashlib.sha256  # the hot loops inline merkle's leaf and node hashes: 2% of a scan
_RANGE = (
    "SELECT seq, entry, leaf_hash, mac FROM audit_entries"
    " WHERE seq >= {mark} AND seq < {mark} ORDER BY seq"
)


@dataclass(frozen=True)
class Problem:
    """Something wrong with the log, and where (``seq``: the first entry it concerns)."""

    where: str
    what: str
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Chunk:
    """What one chunk of entries hashes to."""

    index: int
    count: int = 0
    root: bytes | None = None  # when the chunk is full
    partial: dict[int, list[bytes]] = field(default_factory=dict)  # size -> frontier nodes
    tail: list[bytes] = field(default_factory=list)  # frontier of a last, partial chunk
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Database:
    """Where a worker reads the entries: a SQLite file, or a PostgreSQL connection URI."""

    dialect: str
    target: str

    def connect(self) -> Any:
        if self.dialect == "sqlite":
            connection = sqlite3.connect(self.target)
            connection.execute("PRAGMA query_only=1")
            # Pages read from the mapped file, not copied in by a read call each (SQLite maps
            # read-only and caps the size at 2 GB; a file beyond it is read as before).
            connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            return connection
        import psycopg  # only a PostgreSQL verifier pays for the driver

        return psycopg.connect(self.target)


@dataclass(frozen=True)
class Job:
    """Chunks to scan: the log holds entries [first, size); checkpoints at ``sizes``."""

    chunks: list[int]
    first: int
    size: int
    sizes: list[int]
    mac_key: bytes | None
    chunk_level: int = CHUNK_LEVEL
    prefix: list[bytes] = field(default_factory=list)  # the frontier of archived [base, first)
    mac_from: int = 0  # MACs are checked from this position on (see verify_log)


def scan(connection: Any, dialect: str, job: Job) -> list[Chunk]:
    """Scan the job's chunks over a DB-API ``connection``."""
    statement = _RANGE.format(mark="?" if dialect == "sqlite" else "%s")
    cursor = connection.cursor()
    try:
        return [_scan_chunk(cursor, statement, index, job) for index in job.chunks]
    finally:
        cursor.close()


def scan_in_workers(database: Database, jobs: list[Job]) -> list[Chunk]:
    """Run each job in a worker process of its own, at once; every chunk, in order."""
    src = str(Path(__file__).resolve().parents[2])  # this Warden, whatever the worker's path
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    with contextlib.ExitStack() as stack:
        workers = []
        for job in jobs:
            errors = stack.enter_context(tempfile.TemporaryFile())  # never a full pipe
            worker = subprocess.Popen(
                [sys.executable, "-m", "warden.audit.scan"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
            stack.callback(_stop, worker)
            assert worker.stdin is not None
            worker.stdin.write(pickle.dumps((database, job)))
            worker.stdin.close()
            workers.append((worker, errors))
        chunks: list[Chunk] = []
        for worker, errors in workers:
            assert worker.stdout is not None
            out = worker.stdout.read()
            if worker.wait() != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise AuditError(
                    f"a verification worker failed: {said[-1] if said else worker.returncode}",
                    code="verify_failed",
                )
            chunks.extend(pickle.loads(out))  # noqa: S301 (from the worker this process started)
    return sorted(chunks, key=lambda c: c.index)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.kill()
        worker.wait()
    if worker.stdout is not None:
        worker.stdout.close()


def check_entry(
    seq: int, entry: bytes, stored: bytes, mac: bytes, mac_key: bytes | None
) -> Problem | None:
    """What is wrong with one entry, if anything."""
    leaf = leaf_hash(entry)
    if leaf != stored:
        return Problem(f"entry {seq}", "modified: its hash does not match", seq)
    if mac_key is not None and HmacSha256(mac_key).digest(seq.to_bytes(8, "big") + leaf) != mac:
        what = "modified and re-hashed, or moved: its MAC does not match"
        return Problem(f"entry {seq}", what, seq)
    if mac_key is None and b'"seq":%d' % seq not in entry:
        return Problem(f"entry {seq}", "holds another position's entry", seq)
    return None


def _scan_chunk(cursor: Any, statement: str, index: int, job: Job) -> Chunk:
    size_of_chunk = 1 << job.chunk_level
    base = index * size_of_chunk
    start, end = max(base, job.first), min(base + size_of_chunk, job.size)
    chunk = Chunk(index)
    wanted = {s for s in job.sizes if start < s <= end}
    marks: dict[int, int] = {}  # checkpoint size -> the chunk's leaves at that entry
    leaves: list[bytes] = []
    append, problems = leaves.append, chunk.problems
    keyed = HmacSha256(job.mac_key) if job.mac_key is not None else None
    mac_from = job.mac_from
    expected = start
    cursor.execute(statement, (start, end))
    # Row by row, not fetchmany: each entry is dropped once hashed, so the next row reuses
    # its memory while it is still in the cache (a third of the read time on 1 KB entries).
    for seq, raw, stored, mac in cursor:
        if seq != expected:
            problems.append(Problem(f"entries {expected}-{seq - 1}", "missing (deleted)", expected))
        expected = seq + 1
        entry = raw if type(raw) is bytes else bytes(raw)
        leaf = _sha256(b"\x00" + entry).digest()  # leaf_hash, inlined: once per entry
        if keyed is None:  # an outside verifier: the entry must say its own position
            good = leaf == stored and b'"seq":%d' % seq in entry
        elif seq < mac_from:  # under a signed root: the root binds leaf and position
            good = leaf == stored
        else:  # the MAC binds leaf and position: the entry's "seq" field adds nothing
            good = leaf == stored and keyed.digest(seq.to_bytes(8, "big") + leaf) == mac
        if not good:
            problem = check_entry(seq, entry, bytes(stored), bytes(mac), job.mac_key)
            if problem is not None:
                problems.append(problem)
        append(leaf)
        if expected in wanted:
            marks[expected] = len(leaves)
    if expected < end:
        problems.append(Problem(f"entries {expected}-{end - 1}", "missing (deleted)", expected))
    if start > base:  # the chunk's first part is archived: continue the stored frontier
        chunk.partial, nodes = _pushed(start - base, job.prefix, leaves, marks)
    else:
        levels = _levels(leaves)
        chunk.partial = {s: _frontier(levels, n) for s, n in marks.items()}
        nodes = _frontier(levels, len(leaves))
    chunk.count = (start - base) + len(leaves)
    if chunk.count == size_of_chunk:
        chunk.root = fold(nodes)
    else:
        chunk.tail = nodes
    return chunk


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``leaves``, hashed a level at a time (a node per pair;
    an unpaired last node waits for a later leaf that never comes)."""
    levels = [leaves]
    layer = leaves

    def pairs(nodes: list[bytes]) -> zip[tuple[bytes, bytes]]:
        return zip(nodes[::2], nodes[1::2], strict=False)  # an odd last node stays unpaired

    while len(layer) > 1:
        layer = [_sha256(b"\x01" + a + b).digest() for a, b in pairs(layer)]  # node_hash
        levels.append(layer)
    return levels


def _frontier(levels: list[list[bytes]], n: int) -> list[bytes]:
    """The frontier of the first ``n`` leaves, from the levels of a tree over at least ``n``."""
    return frontier_of(n, lambda level, index: levels[level][index]).nodes


def _pushed(
    archived: int, prefix: list[bytes], leaves: list[bytes], marks: dict[int, int]
) -> tuple[dict[int, list[bytes]], list[bytes]]:
    """The frontier after ``leaves``, continuing one over ``archived`` stored leaves, a leaf
    at a time; and the frontier at each marked count."""
    frontier = Frontier(archived, prefix)
    at = {n: s for s, n in marks.items()}
    partial = {}
    for count, leaf in enumerate(leaves, 1):
        frontier.push(leaf)
        if count in at:
            partial[at[count]] = list(frontier.nodes)
    return partial, list(frontier.nodes)


def _worker() -> None:
    database, job = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (from the parent)
    connection = database.connect()
    try:
        chunks = scan(connection, database.dialect, job)
    finally:
        connection.close()
    sys.stdout.buffer.write(pickle.dumps(chunks))


if __name__ == "__main__":
    # The job's and the chunks' classes must be this module's, not __main__'s copies.
    from warden.audit.scan import _worker as worker

    worker()
