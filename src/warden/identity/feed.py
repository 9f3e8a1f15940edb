"""The principal feed: every status, epoch and revocation change, in commit order.

Writers append an entry in the same transaction as the change itself, so the feed never
disagrees with the tables. Writers are serialised (SQLite does this by itself; on PostgreSQL an
advisory transaction lock does), so sequence numbers become visible in order and a reader that
follows ``seq > last`` misses nothing.

A :class:`PrincipalView` is what a verifier consults: principal status and epochs, and revoked
credentials, in memory. It is loaded from a snapshot and kept current by applying entries; it
refuses to answer (fail closed, :class:`StatusUnavailable`) once it is older than its bound.
:class:`FeedCredentialStatus` feeds a view from the local store; ``warden.identity.feed_client``
feeds one over HTTP for enforcement points in other processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from warden.clock import as_utc, isoformat, utcnow
from warden.errors import StoreError, UntrustedInputError
from warden.identity.errors import StatusUnavailable
from warden.identity.spiffe_id import SpiffeId
from warden.identity.verifier import PrincipalState
from warden.store import Store, schema

_FEED_LOCK_KEY = 0x57415244454E  # "WARDEN": one advisory lock serialises feed writers
CATCH_UP_BATCH = 10_000
DEFAULT_MAX_STALENESS_S = 2.0


def append_change(
    conn: Connection,
    *,
    spiffe_id: str,
    change: str,
    status: str,
    epoch: int,
    reason: str = "",
    credential_id: str | None = None,
    not_after: datetime | None = None,
) -> None:
    """Append one change to the feed inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FEED_LOCK_KEY})
    conn.execute(
        schema.principal_feed.insert().values(
            at=utcnow(),
            spiffe_id=spiffe_id,
            change=change,
            status=status,
            epoch=epoch,
            credential_id=credential_id,
            not_after=not_after,
            reason=reason[:2000],
        )
    )


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One change: ``change`` is ``status``, ``deleted`` or ``credential``."""

    seq: int
    spiffe_id: str
    change: str
    status: str
    epoch: int
    credential_id: str | None = None
    not_after: datetime | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "spiffe_id": self.spiffe_id,
            "change": self.change,
            "status": self.status,
            "epoch": self.epoch,
            "credential_id": self.credential_id,
            "not_after": isoformat(self.not_after) if self.not_after else None,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedEntry:
        not_after = data.get("not_after")
        return cls(
            seq=int(data["seq"]),
            spiffe_id=str(data["spiffe_id"]),
            change=str(data["change"]),
            status=str(data["status"]),
            epoch=int(data["epoch"]),
            credential_id=data.get("credential_id"),
            not_after=datetime.fromisoformat(not_after) if not_after else None,
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class FeedSnapshot:
    """The whole state at feed position ``seq``."""

    seq: int
    principals: dict[str, PrincipalState]
    revoked: dict[str, datetime]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "principals": {k: [v.status, v.epoch] for k, v in self.principals.items()},
            "revoked": {k: isoformat(v) for k, v in self.revoked.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedSnapshot:
        return cls(
            seq=int(data["seq"]),
            principals={k: PrincipalState(v[0], int(v[1])) for k, v in data["principals"].items()},
            revoked={k: datetime.fromisoformat(v) for k, v in data["revoked"].items()},
        )


def read_snapshot(store: Store) -> FeedSnapshot:
    """Principals, live revocations and the feed position, read in one transaction."""
    now = utcnow()
    with store.begin() as conn:
        seq = conn.execute(select(func.max(schema.principal_feed.c.seq))).scalar_one()
        principals: dict[str, PrincipalState] = {}
        for table in (schema.agents, schema.operators):
            for row in conn.execute(
                select(table.c.spiffe_id, table.c.status, table.c.credential_epoch)
            ):
                principals[row.spiffe_id] = PrincipalState(row.status, row.credential_epoch)
        revoked = {
            row.credential_id: as_utc(row.not_after)
            for row in conn.execute(
                select(
                    schema.revoked_credentials.c.credential_id,
                    schema.revoked_credentials.c.not_after,
                ).where(schema.revoked_credentials.c.not_after > now)
            )
        }
    return FeedSnapshot(int(seq or 0), principals, revoked)


def read_entries(store: Store, after: int, limit: int = CATCH_UP_BATCH) -> list[FeedEntry]:
    """Feed entries with ``seq > after``, oldest first."""
    with store.begin() as conn:
        rows = conn.execute(
            select(schema.principal_feed)
            .where(schema.principal_feed.c.seq > after)
            .order_by(schema.principal_feed.c.seq)
            .limit(limit)
        ).all()
    return [
        FeedEntry(
            seq=row.seq,
            spiffe_id=row.spiffe_id,
            change=row.change,
            status=row.status,
            epoch=row.epoch,
            credential_id=row.credential_id,
            not_after=as_utc(row.not_after) if row.not_after is not None else None,
            reason=row.reason,
        )
        for row in rows
    ]


FeedListener = Callable[[list[FeedEntry]], None]


class PrincipalView:
    """In-memory principal status and revocations; implements ``CredentialStatus``."""

    def __init__(self, *, max_staleness_s: float = DEFAULT_MAX_STALENESS_S) -> None:
        self._max_staleness = max_staleness_s
        self._lock = threading.Lock()
        self._principals: dict[str, PrincipalState] = {}
        self._revoked: dict[str, datetime] = {}
        self._seq = 0
        self._synced_at = 0.0
        self._listeners: list[FeedListener] = []

    @property
    def sequence(self) -> int:
        """The last feed sequence number applied."""
        return self._seq

    @property
    def max_staleness_s(self) -> float:
        """How old the view may be before it refuses to answer."""
        return self._max_staleness

    @property
    def age_s(self) -> float:
        """Seconds since the view last caught up with its feed."""
        return time.monotonic() - self._synced_at

    def add_listener(self, listener: FeedListener) -> None:
        """Call ``listener(entries)`` after each batch of entries is applied (in-process
        subscription: the Workload API closes streams of principals that stop being active)."""
        self._listeners.append(listener)

    def load(self, snapshot: FeedSnapshot) -> None:
        with self._lock:
            self._principals = dict(snapshot.principals)
            self._revoked = dict(snapshot.revoked)
            self._seq = snapshot.seq
            self._synced_at = time.monotonic()

    def apply(self, entries: list[FeedEntry], *, caught_up: bool = True) -> None:
        """Apply entries in order (ignoring ones already applied); mark the view fresh."""
        fresh = [e for e in entries if e.seq > self._seq]
        with self._lock:
            for entry in fresh:
                if entry.change == "credential" and entry.credential_id is not None:
                    self._revoked[entry.credential_id] = entry.not_after or utcnow()
                elif entry.change == "deleted":
                    self._principals.pop(entry.spiffe_id, None)
                else:
                    self._principals[entry.spiffe_id] = PrincipalState(entry.status, entry.epoch)
                self._seq = entry.seq
            if caught_up:
                self._synced_at = time.monotonic()
        if fresh:
            for listener in self._listeners:
                listener(fresh)

    def mark_synced(self) -> None:
        self._synced_at = time.monotonic()

    def refresh(self) -> None:
        """Try to catch up now; a view with no source of its own just stays as it is."""

    def _fresh(self) -> None:
        if self.age_s <= self._max_staleness:
            return
        try:
            self.refresh()
        except StoreError as exc:
            raise StatusUnavailable(self.age_s) from exc
        if self.age_s > self._max_staleness:
            raise StatusUnavailable(self.age_s)

    # -- CredentialStatus -------------------------------------------------------------------

    def principal_state(self, spiffe_id: str) -> PrincipalState | None:
        self._fresh()
        state = self._principals.get(spiffe_id)
        if state is None and spiffe_id.startswith("spiffe://"):
            try:
                kind = SpiffeId.parse(spiffe_id).kind
            except UntrustedInputError:
                return None
            if kind == "svc":
                # Warden's own servers: only the CA mints these, at epoch 0.
                return PrincipalState("active", 0)
        return state

    def is_revoked(self, credential_id: str) -> bool:
        self._fresh()
        return credential_id in self._revoked


class FeedCredentialStatus(PrincipalView):
    """A view fed from the local store; ``catch_up()`` reads new entries."""

    def __init__(self, store: Store, *, max_staleness_s: float = DEFAULT_MAX_STALENESS_S) -> None:
        super().__init__(max_staleness_s=max_staleness_s)
        self._store = store
        self._catch_up_lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Rebuild the view from the tables (at start, or after a gap)."""
        self.load(read_snapshot(self._store))

    def catch_up(self) -> int:
        """Apply every feed entry newer than the last one seen. Returns how many."""
        applied = 0
        with self._catch_up_lock:  # one reader at a time keeps entries in order
            while True:
                entries = read_entries(self._store, self.sequence)
                self.apply(entries, caught_up=len(entries) < CATCH_UP_BATCH)
                applied += len(entries)
                if len(entries) < CATCH_UP_BATCH:
                    return applied

    def refresh(self) -> None:
        self.catch_up()
