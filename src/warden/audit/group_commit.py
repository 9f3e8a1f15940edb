"""Durable decision records with group commit.

One writer thread sequences the records: every record waiting when a commit starts rides on it,
so one fsync covers many requests under load. ``record_async`` returns only after the commit
that holds its record is on disk; nothing is forwarded or answered before. On SQLite the
writer's own connection runs with ``synchronous=FULL`` (WAL commits are fsynced); on PostgreSQL
a commit is durable when fsync is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warden.audit.recorder import decision_record
from warden.errors import AuditError
from warden.policy.model import Decision, DecisionRequest
from warden.store import Store, schema

log = logging.getLogger("warden.audit")
MAX_BATCH = 2048


class GroupCommitRecorder:
    """A :class:`~warden.audit.recorder.DecisionRecorder` with one writer and group commits."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: deque[tuple[dict[str, Any], Waiter]] = deque()
        self._wake = threading.Condition()
        self._writer_waiting = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="warden-recorder")
        self._thread.start()

    def _row(self, decision: Decision, request: DecisionRequest, point: str) -> dict[str, Any]:
        return {
            "decision_id": decision.decision_id,
            "at": decision.at,
            "enforcement_point": point,
            "subject": request.subject_id[:2048],
            "action": request.action[:128],
            "resource": f"{request.resource.type}:{request.resource.id}"[:2048],
            "decision": decision.decision,
            "record": decision_record(decision, request, point),
        }

    def _enqueue(self, row: dict[str, Any], waiter: Waiter) -> bool:
        with self._wake:
            if self._closed:
                return False
            self._pending.append((row, waiter))
            if self._writer_waiting:  # a busy writer takes the record with its next batch
                self._wake.notify()
        return True

    def submit(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> Future[None]:
        """Queue a record; the future resolves once it is durable (for threads)."""
        future: Future[None] = Future()
        if not self._enqueue(self._row(decision, request, enforcement_point), future):
            future.set_exception(_closed())
        return future

    def record(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None:
        self.submit(decision, request, enforcement_point=enforcement_point).result(timeout=30)

    async def record_async(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None:
        """Return once the record is durable (for event loops). The writer wakes each loop
        once per commit, whatever the number of its records the commit held."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self._enqueue(self._row(decision, request, enforcement_point), (loop, future)):
            raise _closed()
        await future

    def _insert(self, connection: Any, rows: list[dict[str, Any]]) -> None:
        if self._store.dialect != "sqlite":
            connection.execute(schema.decision_records.insert(), rows)
            return
        # SQLite: one executemany on the driver, each record serialised once (SQLAlchemy's
        # per-row processing cost more than the write itself at high rates).
        connection.exec_driver_sql(
            "INSERT INTO decision_records (decision_id, at, enforcement_point, subject, action,"
            " resource, decision, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r["decision_id"],
                    r["at"].isoformat(sep=" "),
                    r["enforcement_point"],
                    r["subject"],
                    r["action"],
                    r["resource"],
                    r["decision"],
                    json.dumps(r["record"], separators=(",", ":")),
                )
                for r in rows
            ],
        )

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def _next_batch(self) -> list[tuple[dict[str, Any], Waiter]] | None:
        with self._wake:
            while not self._pending and not self._closed:
                self._writer_waiting = True
                self._wake.wait()
                self._writer_waiting = False
            if not self._pending:
                return None  # closed and drained
            return [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]

    def _run(self) -> None:
        connection = self._store.engine.connect()
        if self._store.dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA synchronous=FULL")
            connection.commit()
        try:
            while (batch := self._next_batch()) is not None:
                error: AuditError | None = None
                try:
                    with connection.begin():
                        self._insert(connection, [row for row, _ in batch])
                except Exception as exc:  # every waiter learns its record is not durable
                    log.error("decision records not written: %s", exc)
                    error = AuditError(f"decision records not written: {exc}", code="record_failed")
                _settle([waiter for _, waiter in batch], error)
        finally:
            connection.close()


# Who waits for a record: a thread (a concurrent future) or a coroutine on an event loop.
Waiter = Future[None] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _closed() -> AuditError:
    return AuditError("the recorder is closed", code="record_failed")


def _settle(waiters: list[Waiter], error: AuditError | None) -> None:
    """Resolve every waiter of one commit: threads directly, each event loop with one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
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


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's DateTime uses on SQLite (UTC, microseconds always)."""
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def fsync_probe(path: Path) -> float:
    """Seconds for one small append made durable with fdatasync: the floor under every
    durable commit on this disk (the benchmark reports it beside the gateway's figures)."""
    with open(path, "ab") as handle:
        handle.write(b"x" * 128)
        handle.flush()
        start = time.perf_counter()
        os.fdatasync(handle.fileno())
        return time.perf_counter() - start
