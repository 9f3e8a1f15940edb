"""Verifying the decision log: every entry, the tree, every checkpoint.

``verify_log`` recomputes every leaf from its entry, rebuilds the tree and compares its root at
each checkpoint's size with the signed root; it checks every checkpoint's signature, that the
log still holds every entry a checkpoint (the log's own, a witness's, or one a verifier kept)
covers, and, with the log's keys, each entry's MAC. Problems are located: an entry whose hash
does not match, one edited with its hash recomputed or moved (MAC), a missing position, a
checkpoint that is forged, or that the entries no longer produce, or that is beyond the end of
the log (a truncated tail).

The scan is split across processes in chunks of 2^16 entries: each worker hashes its chunks
and returns, per chunk, the chunk's root and the partial frontiers the checkpoints inside it
need; the parent folds them into the roots at every checkpoint size.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from sqlalchemy import text

from warden.audit import checkpoint as checkpoints
from warden.audit.checkpoint import Checkpoint, CheckpointInvalid, VerifierKey
from warden.audit.merkle import EMPTY_ROOT, Frontier, fold, frontier_of
from warden.audit.retention import archived_to
from warden.store import Store, open_store

CHUNK_LEVEL = 16
CHUNK = 1 << CHUNK_LEVEL
PARALLEL_FROM = 2 * CHUNK  # smaller logs are verified in this process
_RANGE = {
    True: "SELECT seq, entry, leaf_hash, mac FROM audit_entries"
    " WHERE seq >= ? AND seq < ? ORDER BY seq",
    False: "SELECT seq, entry, leaf_hash, mac FROM audit_entries"
    " WHERE seq >= %s AND seq < %s ORDER BY seq",
}


@dataclass(frozen=True)
class Problem:
    where: str
    what: str
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


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


@dataclass
class _Chunk:
    index: int
    count: int = 0
    root: bytes | None = None  # when the chunk is full
    partial: dict[int, list[bytes]] = field(default_factory=dict)  # size -> frontier nodes
    tail: list[bytes] = field(default_factory=list)  # frontier of a last, partial chunk
    problems: list[Problem] = field(default_factory=list)


def verify_log(
    store: Store,
    key: VerifierKey,
    *,
    mac_key: bytes | None = None,
    kept: list[tuple[str, str]] = (),  # type: ignore[assignment]
    workers: int | None = None,
) -> Report:
    """Verify the log in ``store`` against the checkpoints it holds and those in ``kept``
    (source, note) that a witness or a verifier kept."""
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
    chunks = _scan(store, first, size, sizes, mac_key, workers)
    roots = _roots(chunks, sizes)
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


def _scan(
    store: Store,
    first: int,
    size: int,
    sizes: list[int],
    mac_key: bytes | None,
    workers: int | None,
) -> list[_Chunk]:
    count = (size + CHUNK - 1) // CHUNK
    archived = [_archived_chunk(store, i) for i in range(first // CHUNK)]
    todo = list(range(first // CHUNK, count))
    if size - first < PARALLEL_FROM:
        return archived + _scan_chunks(todo, first, size, sizes, mac_key, store)
    url = store.engine.url.render_as_string(hide_password=False)
    processes = workers or min(os.cpu_count() or 1, 4)
    shares = [todo[i::processes] for i in range(processes)]
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        jobs = [(url, share, first, size, sizes, mac_key) for share in shares]
        scanned = [chunk for part in pool.map(_scan_in_process, jobs) for chunk in part]
    return archived + sorted(scanned, key=lambda c: c.index)


def _archived_chunk(store: Store, index: int) -> _Chunk:
    from warden.audit.log import _perfect

    with store.begin() as conn:
        return _Chunk(index, CHUNK, _perfect(conn)(CHUNK_LEVEL, index))


def _scan_in_process(
    args: tuple[str, list[int], int, int, list[int], bytes | None],
) -> list[_Chunk]:
    url, share, first, size, sizes, mac_key = args
    store = open_store(url, migrate=False)
    try:
        return _scan_chunks(share, first, size, sizes, mac_key, store)
    finally:
        store.dispose()


def _scan_chunks(
    share: list[int], first: int, size: int, sizes: list[int], mac_key: bytes | None, store: Store
) -> list[_Chunk]:
    with store.begin() as conn:
        return [_scan_chunk(conn, index, first, size, sizes, mac_key) for index in share]


def _scan_chunk(
    conn: Any, index: int, first: int, size: int, sizes: list[int], mac_key: bytes | None
) -> _Chunk:
    base = index * CHUNK
    start, end = max(base, first), min(base + CHUNK, size)
    chunk = _Chunk(index)
    wanted = {s - base for s in sizes if start < s <= end}
    frontier = Frontier()
    if start > base:  # the chunk's archived part, from the stored tree
        from warden.audit.log import _perfect

        perfect = _perfect(conn)
        frontier = frontier_of(start - base, lambda lv, i: perfect(lv, (base >> lv) + i))
    expected = start
    # The driver's own cursor: SQLAlchemy's row objects cost more than the checks.
    cursor = conn.connection.cursor()
    cursor.execute(_RANGE[conn.dialect.name == "sqlite"], (start, end))
    append, problems = frontier.push, chunk.problems
    sha256 = hashlib.sha256
    # The MAC key's padded states, made once: a copy per entry skips HMAC's key set-up (two of
    # the three SHA-256 compressions an entry's MAC would otherwise cost).
    keyed = hmac.new(mac_key, digestmod="sha256") if mac_key is not None else None
    while rows := cursor.fetchmany(8192):
        for seq, raw, stored, mac in rows:
            if seq != expected:
                problems.append(
                    Problem(f"entries {expected}-{seq - 1}", "missing (deleted)", expected)
                )
            expected = seq + 1
            entry = raw if type(raw) is bytes else bytes(raw)
            leaf = sha256(b"\x00" + entry).digest()
            if (
                leaf != stored
                or (keyed is not None and _mac(keyed, seq.to_bytes(8, "big") + leaf) != mac)
                or b'"seq":%d' % seq not in entry
            ):
                _, problem = _check_entry(seq, entry, bytes(stored), bytes(mac), mac_key)
                if problem is not None:
                    problems.append(problem)
            append(leaf)
            if expected - base in wanted:
                chunk.partial[expected] = list(frontier.nodes)
    if expected < end:
        chunk.problems.append(
            Problem(f"entries {expected}-{end - 1}", "missing (deleted)", expected)
        )
    chunk.count = frontier.size
    if frontier.size == CHUNK:
        chunk.root = frontier.root()
    else:
        chunk.tail = list(frontier.nodes)
    return chunk


def _mac(keyed: hmac.HMAC, data: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(data)
    return mac.digest()


def _check_entry(
    seq: int, entry: bytes, stored: bytes, mac: bytes, mac_key: bytes | None
) -> tuple[bytes, Problem | None]:
    """The entry's leaf hash, recomputed, and what is wrong with the entry if anything."""
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    if leaf != stored:
        return leaf, Problem(f"entry {seq}", "modified: its hash does not match", seq)
    if mac_key is not None and hmac.digest(mac_key, seq.to_bytes(8, "big") + leaf, "sha256") != mac:
        what = "modified and re-hashed, or moved: its MAC does not match"
        return leaf, Problem(f"entry {seq}", what, seq)
    if b'"seq":%d' % seq not in entry:
        return leaf, Problem(f"entry {seq}", "holds another position's entry", seq)
    return leaf, None


def _roots(chunks: list[_Chunk], sizes: list[int]) -> dict[int, bytes]:
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
        if (chunk.index + 1) * CHUNK in sizes:
            roots[(chunk.index + 1) * CHUNK] = full.root()
    return roots
