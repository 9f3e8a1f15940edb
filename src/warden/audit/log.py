"""The decision log: append-only, durable before anyone hears back, tamper-evident.

One writer thread sequences the log. Every entry waiting when a commit starts rides on it
(group commit), so one fsync covers many requests under load; a submitter hears back only once
the commit holding its entry is on disk (SQLite WAL with ``synchronous=FULL``; PostgreSQL with
fsync on). Entries take positions 0, 1, 2, ... with no gap; each is RFC 8785 canonical JSON,
hashed as an RFC 9162 Merkle leaf and sealed with an entry MAC bound to its position. The
perfect subtrees of the tree are stored as they complete, so proofs are a few lookups.

At least once a second while entries arrive (and on demand) the writer signs a checkpoint of
the tree, after checking it is consistent with the last one it finds (a log must never sign
two inconsistent heads), and hands it to a witness. Writers in several processes may share one
store: each commit takes the log's lock first (a write on SQLite, an advisory lock on
PostgreSQL) and continues from whatever the others appended.

With ``follow_events`` the log also copies, exactly once, every identity lifecycle event (the
principal feed, attestation attempts) and every policy event into itself, in the same
transaction that advances its cursors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from warden.audit import checkpoint as checkpoints
from warden.audit import sources, sql
from warden.audit.canonical import canonical_json, canonical_json_plain
from warden.audit.entries import Masking, decision_entry, event_entry
from warden.audit.merkle import (
    Frontier,
    consistency_proof,
    frontier_of,
    leaf_hash,
    verify_consistency,
)
from warden.audit.tree_store import TreeStore, to_store
from warden.audit.witness import Witness
from warden.audit.writer_lock import WriterLock
from warden.clock import isoformat, utcnow
from warden.errors import AuditError
from warden.identity.ca.log_keys import LogKeys
from warden.policy.model import Decision, DecisionRequest
from warden.store import Store, schema

log = logging.getLogger("warden.audit")
MAX_BATCH = 2048
GATHER_S = 0.0005  # at most this long, and only while fewer wait than the last batch held
LOCK_ROW, ARCHIVED_TO = sql.LOCK_ROW, sql.ARCHIVED_TO


@dataclass
class _Item:
    """An entry waiting to be written, and who waits for it."""

    kind: str
    at: datetime
    body: dict[str, Any]
    waiter: Any  # a concurrent Future, or (loop, asyncio future)
    decision_id: str | None = None
    subject: str | None = None
    decision: str | None = None
    plain: bool = False  # canonical JSON without a check walk (see canonical_json_plain)


class DecisionLog:
    """The append-only log; a :class:`~warden.audit.recorder.DecisionRecorder`."""

    def __init__(
        self,
        store: Store,
        keys: LogKeys,
        *,
        masking: Masking,
        checkpoint_interval_s: float = 1.0,
        witness: Witness | None = None,
        follow_events: bool = False,
        follow_interval_s: float = 0.2,
    ) -> None:
        self.store = store
        self.keys = keys
        self.masking = masking
        self.witness = witness
        self._interval = checkpoint_interval_s
        self._follow = follow_events
        self._follow_interval = follow_interval_s
        self._pending: deque[_Item] = deque()
        # Per event loop, what its coroutines submitted in the current turn (only that loop's
        # thread touches its list).
        self._staged: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._wake = threading.Condition()
        self._writer_waiting = False
        self._closed = False
        self._checkpoint_waiters: list[Future[checkpoints.Checkpoint]] = []
        self._frontier: Frontier | None = None
        self._last_batch = 1
        self._gather_target = 0
        self._checkpointed = -1
        self._ensure_lock_row()
        self._writers = WriterLock(store)
        self._thread = threading.Thread(target=self._run, daemon=True, name="warden-log")
        self._thread.start()

    # -- submitting ----------------------------------------------------------------------------

    def record(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None:
        """Append a decision and return once it is durable (for threads)."""
        future: Future[None] = Future()
        self._enqueue([self._decision_item(decision, request, enforcement_point, future)])
        future.result(timeout=30)

    async def record_async(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None:
        """Append a decision and return once it is durable (for event loops)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        item = self._decision_item(decision, request, enforcement_point, (loop, future))
        # Entries submitted in one turn of the loop reach the writer together, at the end of
        # the turn: one hand-over and one wake-up for all of them, so the writer never wakes
        # for the first of them and then fights the loop for the interpreter while the rest
        # are being made.
        staged = self._staged.get(loop)
        if staged is None:
            staged = self._staged[loop] = []
            loop.call_soon(self._hand_over, loop)
        staged.append(item)
        await future

    def append(self, kind: str, body: dict[str, Any], *, subject: str | None = None) -> None:
        """Append an event (a response action, say) and return once it is durable."""
        future: Future[None] = Future()
        now = utcnow()
        entry = event_entry(kind, isoformat(now), body)
        self._enqueue(
            [_Item(kind, now, entry, future, subject=subject[:2048] if subject else None)]
        )
        future.result(timeout=30)

    def note(self, kind: str, body: dict[str, Any], *, subject: str | None = None) -> None:
        """Append an event without waiting for it (what happened after a decision that is
        already on record: a blocked answer, a trust event). ``subject``: the agent it is
        about, for searches by agent."""
        now = utcnow()
        entry = event_entry(kind, isoformat(now), body)
        self._enqueue([_Item(kind, now, entry, None, subject=subject[:2048] if subject else None)])

    def checkpoint(self, timeout_s: float = 30.0) -> checkpoints.Checkpoint:
        """Sign a checkpoint of everything durable now, and return it."""
        future: Future[checkpoints.Checkpoint] = Future()
        with self._wake:
            if self._closed:
                raise AuditError("the decision log is closed", code="log_closed")
            self._checkpoint_waiters.append(future)
            self._wake.notify()
        return future.result(timeout=timeout_s)

    def close(self) -> None:
        """Write what waits, seal it with a last checkpoint, stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)
        if self.witness is not None:
            self.witness.close()

    def _decision_item(
        self, decision: Decision, request: DecisionRequest, point: str, waiter: Any
    ) -> _Item:
        body, plain = decision_entry(decision, request, point, self.masking)
        return _Item(
            "decision",
            decision.at,
            body,
            waiter,
            decision.decision_id,
            request.subject_id[:2048],
            decision.decision,
            plain,
        )

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Move what ``loop`` staged this turn to the writer."""
        self._enqueue(self._staged.pop(loop, []))

    def _enqueue(self, items: list[_Item]) -> None:
        with self._wake:
            if self._closed:
                error = AuditError("the decision log is closed", code="record_failed")
                _settle([item.waiter for item in items], error)
                return
            self._pending.extend(items)
            # A busy writer takes the entries with its next batch; a gathering one is woken
            # when its batch is whole.
            if self._writer_waiting and len(self._pending) >= self._gather_target:
                self._wake.notify()

    # -- the writer ----------------------------------------------------------------------------

    def _run(self) -> None:
        connection = self.store.engine.connect()
        if self.store.dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA synchronous=FULL")
            connection.commit()
        last_checkpoint = last_follow = time.monotonic()
        try:
            while True:
                batch, wanted, closing = self._next(last_checkpoint, last_follow)
                if batch:
                    self._write(connection, batch)
                now = time.monotonic()
                if self._follow and now - last_follow >= self._follow_interval:
                    self._follow_sources(connection)
                    last_follow = now
                if wanted or closing or now - last_checkpoint >= self._interval:
                    self._checkpoint(connection, wanted)
                    last_checkpoint = now
                if closing:
                    return
        finally:
            connection.close()
            self._writers.close()

    def _next(
        self, last_checkpoint: float, last_follow: float
    ) -> tuple[list[_Item], list[Future[checkpoints.Checkpoint]], bool]:
        with self._wake:
            while not self._pending and not self._checkpoint_waiters and not self._closed:
                due = last_checkpoint + self._interval
                if self._follow:
                    due = min(due, last_follow + self._follow_interval)
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                self._writer_waiting = True
                self._wake.wait(wait)
                self._writer_waiting = False
            # Under load the same submitters come back each commit: give the rest of the last
            # batch's worth a moment to arrive, so one commit (one fsync) covers them all.
            # A lone submitter (last batch of one) never waits.
            gather_until = time.monotonic() + GATHER_S
            while 0 < len(self._pending) < self._last_batch and not self._closed:
                left = gather_until - time.monotonic()
                if left <= 0:
                    break
                self._writer_waiting, self._gather_target = True, self._last_batch
                self._wake.wait(left)  # woken once the batch is whole, not per entry
                self._writer_waiting, self._gather_target = False, 0
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]
            if batch:
                self._last_batch = len(batch)
            wanted, self._checkpoint_waiters = self._checkpoint_waiters, []
            closing = self._closed and not self._pending
        return batch, wanted, closing

    def _write(self, connection: Connection, batch: list[_Item]) -> None:
        self.store.turns.wait_turn()  # an urgent write (a containment) goes first
        try:
            with self._transaction(connection):
                frontier = self._locked_frontier(connection)
                self._insert(connection, frontier, batch)
            self._frontier = frontier
        except Exception as exc:  # every waiter learns its entry is not durable
            self._frontier = None  # re-read from the store next time
            log.error("decision log entries not written: %s", exc)
            error = AuditError(f"decision log entries not written: {exc}", code="record_failed")
            _settle([i.waiter for i in batch], error)
            return
        _settle([i.waiter for i in batch], None)

    @contextlib.contextmanager
    def _transaction(self, connection: Connection) -> Iterator[None]:
        """One of the log's transactions, this process's writer's turn among those sharing
        the store (the transaction itself takes the log's lock: see _locked_frontier)."""
        with self._writers.held(), connection.begin():
            yield

    def _locked_frontier(self, connection: Connection) -> Frontier:
        """Take the log's lock; the tree as it is now (another process may have appended)."""
        cursor = connection.connection.cursor()
        size = sql.lock_and_size(cursor, self.store.dialect)
        if self._frontier is not None and self._frontier.size == size:
            return self._frontier.copy()
        return frontier_of(size, _perfect(connection))

    def _insert(self, connection: Connection, frontier: Frontier, batch: list[_Item]) -> None:
        entries, nodes = [], []
        mac = self.keys.mac
        sqlite = self.store.dialect == "sqlite"
        for item in batch:
            seq = frontier.size
            body = {**item.body, "seq": seq}
            entry = canonical_json_plain(body) if item.plain else canonical_json(body)
            leaf = leaf_hash(entry)
            at: Any = item.at
            if sqlite:  # as SQLAlchemy's DateTime stores times on SQLite
                text_at = item.body["at"]
                at = text_at[:10] + " " + text_at[11:26]
            entries.append(
                (
                    seq,
                    item.kind,
                    at,
                    entry,
                    leaf,
                    mac(_position(seq) + leaf),
                    item.decision_id,
                    item.subject,
                    item.decision,
                )
            )
            nodes.extend(to_store(frontier.append(leaf)))
        sql.insert(connection.connection.cursor(), self.store.dialect, entries, nodes)

    # -- checkpoints ---------------------------------------------------------------------------

    def _checkpoint(
        self, connection: Connection, wanted: list[Future[checkpoints.Checkpoint]]
    ) -> None:
        try:
            signed = self._sign_checkpoint(connection, force=bool(wanted))
        except Exception as exc:
            log.error("checkpoint not signed: %s", exc)
            for future in wanted:
                future.set_exception(
                    AuditError(f"checkpoint not signed: {exc}", code="checkpoint_failed")
                )
            return
        for future in wanted:
            future.set_result(signed) if signed is not None else future.set_exception(
                AuditError("the log is empty", code="log_empty")
            )
        if signed is not None and self.witness is not None:
            self.witness.offer(signed)

    def _sign_checkpoint(
        self, connection: Connection, *, force: bool
    ) -> checkpoints.Checkpoint | None:
        with self._transaction(connection):
            frontier = self._locked_frontier(connection)
            if frontier.size == 0:
                return None
            latest = _latest_checkpoint(connection)
            if latest is not None and latest[0] == frontier.size:
                self._frontier = frontier
                return checkpoints.Checkpoint(self.keys.name, latest[0], latest[1], latest[2])
            if not force and frontier.size == self._checkpointed:
                return None
            root = frontier.root()
            if latest is not None and latest[0] < frontier.size:
                proof = consistency_proof(latest[0], frontier.size, _perfect(connection))
                if not verify_consistency(latest[0], frontier.size, latest[1], root, proof):
                    raise AuditError(
                        f"the stored tree is not consistent with checkpoint {latest[0]}: "
                        "refusing to sign (run warden audit verify)",
                        code="log_inconsistent",
                    )
            signed = checkpoints.sign(self.keys, frontier.size, root)
            connection.execute(
                schema.audit_checkpoints.insert().values(
                    size=signed.size, root=root, note=signed.note, at=utcnow()
                )
            )
        self._frontier = frontier
        self._checkpointed = signed.size
        return signed

    # -- following identity and policy events --------------------------------------------------

    def _follow_sources(self, connection: Connection) -> None:
        try:
            with self._transaction(connection):
                frontier = self._locked_frontier(connection)
                items: list[_Item] = []
                for source in sources.SOURCES:
                    items.extend(
                        _Item(kind, at, body, None)
                        for kind, at, body in source.pull(connection, limit=MAX_BATCH)
                    )
                if items:
                    self._insert(connection, frontier, items)
            self._frontier = frontier
        except Exception as exc:
            self._frontier = None
            log.error("identity and policy events not copied into the log: %s", exc)

    def _ensure_lock_row(self) -> None:
        with contextlib.suppress(Exception):
            self.store.compare_and_set_meta(LOCK_ROW, None, "1")


def tree_size(connection: Connection) -> int:
    """How many entries the log has had: the newest position + 1, counting archived ones."""
    return sql.size(connection.connection.cursor(), connection.dialect.name)


def _position(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def _latest_checkpoint(connection: Connection) -> tuple[int, bytes, str] | None:
    table = schema.audit_checkpoints
    row = connection.execute(
        select(table.c.size, table.c.root, table.c.note).order_by(table.c.size.desc()).limit(1)
    ).one_or_none()
    return None if row is None else (int(row.size), bytes(row.root), str(row.note))


def _perfect(connection: Connection) -> Callable[[int, int], bytes]:
    """Perfect subtree hashes from the store, one at a time."""
    return TreeStore(connection).perfect


def _settle(waiters: list[Any], error: AuditError | None) -> None:
    """Resolve every waiter of one commit: threads directly, each event loop with one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        if waiter is None:
            continue
        if isinstance(waiter, Future):
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        else:
            by_loop.setdefault(waiter[0], []).append(waiter[1])
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop that has closed has no one waiting
            loop.call_soon_threadsafe(_settle_on_loop, futures, error)


def _settle_on_loop(futures: list[asyncio.Future[None]], error: AuditError | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (its client went away)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
