"""Verifying the decision log: every entry, the tree, every checkpoint.

``verify_log`` recomputes every leaf from its entry, rebuilds the tree and compares its root at
each checkpoint's size with the signed root; it checks every checkpoint's signature, that the
log still holds every entry a checkpoint (the log's own, a witness's, or one a verifier kept)
covers, and, with the log's keys, the MAC of each entry after the newest checkpoint (the
signed root binds the ones before it; when a root does not match, every MAC is checked to
say which entry was changed). Problems are located: an entry whose hash
does not match, one edited with its hash recomputed or moved (MAC), a missing position, a
checkpoint that is forged, or that the entries no longer produce, or that is beyond the end of
the log (a truncated tail).

The scan (:mod:`warden.audit.scan`) is split across worker processes in chunks of 2^13
entries: each worker hashes its chunks and returns, per chunk, the chunk's root and the partial
frontiers the checkpoints inside it need; the parent folds them into the roots at every
checkpoint size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from warden.audit import checkpoint as checkpoints
from warden.audit.checkpoint import Checkpoint, CheckpointInvalid, VerifierKey
from warden.audit.merkle import EMPTY_ROOT, Frontier, fold, frontier_of
from warden.audit.retention import archived_to
from warden.audit.scan import CHUNK_LEVEL, Chunk, Database, Job, Problem, scan, scan_in_workers
from warden.store import Store

__all__ = ["Problem", "Report", "verify_log"]
PARALLEL_FROM = 8  # chunks (65,536 entries): smaller logs are verified in this process


@dataclass
class Report:
    size: int = 0
    checkpoints: int = 0
    verified_size: int = 0  # the largest checkpoint the entries reproduce
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unsealed(self) -> int:
        """Entries after the newest checkpoint: verified one by one, not yet under a root."""
        return max(0, self.size - self.verified_size)


def verify_log(
    store: Store,
    key: VerifierKey,
    *,
    mac_key: bytes | None = None,
    kept: list[tuple[str, str]] = (),  # type: ignore[assignment]
    workers: int | None = None,
    chunk_level: int = CHUNK_LEVEL,
) -> Report:
    """Verify the log in ``store`` against the checkpoints it holds and those in ``kept``
    (source, note) that a witness or a verifier kept. ``workers``: how many worker processes
    scan the entries (by default one per core, up to 4, for logs of more than eight chunks of
    2^``chunk_level`` entries, smaller ones in this process; 0: always in this process)."""
    report = Report()
    signed = _checkpoints(store, key, list(kept), report)
    size = _size(store)
    report.size = size
    report.checkpoints = len(signed)
    for cp, where in signed.values():
        if cp.size > size:
            what = f"covers {cp.size} entries, the log holds only {size}: truncated"
            report.problems.append(Problem(where, what))
    first = archived_to(store)  # entries before it live in archive files
    report.verified_size = first  # (their files verify on their own: verify_archive)
    sizes = sorted(s for s in signed if first < s <= size)
    # Entries under the newest checkpoint are bound to their positions by its signed root, so
    # their MACs are checked only if a root does not match, and then to locate the edit.
    sealed = sizes[-1] if sizes and mac_key is not None else first
    chunks = _scan(store, Span(first, size, sealed), sizes, mac_key, workers, chunk_level)
    roots = _roots(chunks, sizes, chunk_level)
    if sealed > first and any(roots.get(s) != signed[s][0].root for s in sizes):
        chunks = _scan(store, Span(first, size, first), sizes, mac_key, workers, chunk_level)
        roots = _roots(chunks, sizes, chunk_level)
    for chunk in chunks:
        report.problems.extend(chunk.problems)
    located = sorted(p.seq for p in report.problems if p.seq is not None)
    for s in sizes:
        if roots.get(s) == signed[s][0].root:
            report.verified_size = max(report.verified_size, s)
            continue
        inside = [seq for seq in located if seq < s]
        where = f"first bad entry {inside[0]}" if inside else "entries changed before it"
        report.problems.append(
            Problem(f"checkpoint {s}", f"the entries do not produce its root ({where})")
        )
    return report


def _size(store: Store) -> int:
    from warden.audit.log import tree_size

    with store.begin() as conn:
        return tree_size(conn)


def _checkpoints(
    store: Store, key: VerifierKey, kept: list[tuple[str, str]], report: Report
) -> dict[int, tuple[Checkpoint, str]]:
    """The checkpoints that verify, by size, with where each came from; forged or
    disagreeing ones are problems."""
    with store.begin() as conn:
        rows = conn.execute(
            text("SELECT size, root, note FROM audit_checkpoints ORDER BY size")
        ).all()
    notes: list[tuple[str, str, int | None, bytes | None]] = [
        (f"checkpoint {r.size}", str(r.note), int(r.size), bytes(r.root)) for r in rows
    ]
    notes += [(source, note, None, None) for source, note in kept]
    good: dict[int, tuple[Checkpoint, str]] = {}
    for where, note, size, root in notes:
        try:
            cp = checkpoints.verify(note, key)
        except CheckpointInvalid as exc:
            report.problems.append(Problem(where, f"forged or damaged: {exc.message}"))
            continue
        if size is not None and (cp.size != size or cp.root != root):
            report.problems.append(Problem(where, "the stored row does not match its signed note"))
            continue
        other = good.get(cp.size)
        if other is not None and other[0].root != cp.root:
            report.problems.append(
                Problem(
                    where, f"another signed checkpoint of size {cp.size} has another root: a fork"
                )
            )
            continue
        if other is None:
            good[cp.size] = (cp, where)
    return good


@dataclass(frozen=True)
class Span:
    """The entries to scan, [first, size), and where their MACs start to be checked."""

    first: int
    size: int
    mac_from: int


def _scan(
    store: Store,
    span: Span,
    sizes: list[int],
    mac_key: bytes | None,
    workers: int | None,
    chunk_level: int,
) -> list[Chunk]:
    first, size = span.first, span.size
    chunk = 1 << chunk_level
    count = (size + chunk - 1) // chunk
    archived = [_archived_chunk(store, i, chunk_level) for i in range(first // chunk)]
    todo = list(range(first // chunk, count))
    prefix = _prefix(store, first, chunk_level)
    database = _database(store)
    small = size - first < PARALLEL_FROM * chunk
    if database is None or workers == 0 or (workers is None and small):
        job = Job(todo, first, size, sizes, mac_key, chunk_level, prefix, span.mac_from)
        with store.begin() as conn:
            return archived + scan(conn.connection, store.dialect, job)
    processes = workers or min(os.cpu_count() or 1, 4)
    jobs = [
        Job(todo[i::processes], first, size, sizes, mac_key, chunk_level, prefix, span.mac_from)
        for i in range(processes)
        if todo[i::processes]
    ]
    return archived + scan_in_workers(database, jobs)


def _database(store: Store) -> Database | None:
    """Where worker processes find the store (None: only this process can, in memory)."""
    url = store.engine.url
    if store.dialect == "sqlite":
        if url.database in (None, "", ":memory:"):
            return None
        return Database("sqlite", str(Path(url.database).resolve()))
    return Database(
        store.dialect, url.set(drivername="postgresql").render_as_string(hide_password=False)
    )


def _archived_chunk(store: Store, index: int, chunk_level: int) -> Chunk:
    from warden.audit.log import _perfect

    with store.begin() as conn:
        return Chunk(index, 1 << chunk_level, _perfect(conn)(chunk_level, index))


def _prefix(store: Store, first: int, chunk_level: int) -> list[bytes]:
    """The frontier of the archived start of the chunk holding ``first``, from the stored tree."""
    base = first >> chunk_level << chunk_level
    if first == base:
        return []
    from warden.audit.log import _perfect

    with store.begin() as conn:
        perfect = _perfect(conn)
        return list(frontier_of(first - base, lambda lv, i: perfect(lv, (base >> lv) + i)).nodes)


def _roots(chunks: list[Chunk], sizes: list[int], chunk_level: int) -> dict[int, bytes]:
    """The tree's root at each checkpoint size, from the chunks' roots and partial frontiers."""
    roots: dict[int, bytes] = {}
    if 0 in sizes:
        roots[0] = EMPTY_ROOT
    full = Frontier()  # over chunk roots: each a perfect subtree at CHUNK_LEVEL
    for chunk in chunks:
        for s, partial in chunk.partial.items():
            roots[s] = fold([*full.nodes, *partial])
        if chunk.root is None:
            break  # the last, partial chunk
        full.append(chunk.root)
        end = (chunk.index + 1) << chunk_level
        if end in sizes:
            roots[end] = full.root()
    return roots
