"""The principal feed: every status, epoch and revocation change, in commit order.

Writers append a row in the same transaction as the change itself, so the feed never disagrees
with the tables. Writers are serialised (SQLite does this by itself; on PostgreSQL an advisory
transaction lock does), so sequence numbers become visible in order and a reader that follows
``seq > last`` misses nothing.

:class:`FeedCredentialStatus` is the verifier's in-memory view: built from the tables once,
then kept current by reading the feed. It refuses to answer (fail closed) when it has not caught
up within its staleness bound.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from warden.clock import as_utc, utcnow
from warden.errors import StoreError, UntrustedInputError
from warden.identity.errors import StatusUnavailable
from warden.identity.spiffe_id import SpiffeId
from warden.identity.verifier import PrincipalState
from warden.store import Store, schema

_FEED_LOCK_KEY = 0x57415244454E  # "WARDEN": one advisory lock serialises feed writers
CATCH_UP_BATCH = 10_000


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


class FeedCredentialStatus:
    """An in-memory view of principal status and revocations, fed by the principal feed."""

    def __init__(self, store: Store, *, max_staleness_s: float = 2.0) -> None:
        self._store = store
        self._max_staleness = max_staleness_s
        self._lock = threading.Lock()
        self._principals: dict[str, PrincipalState] = {}
        self._revoked: dict[str, datetime] = {}
        self._seq = 0
        self._synced_at = 0.0
        self.reload()

    @property
    def sequence(self) -> int:
        """The last feed sequence number applied."""
        return self._seq

    def reload(self) -> None:
        """Rebuild the view from the tables (at start, or after a gap)."""
        now = utcnow()
        with self._store.begin() as conn:
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
        with self._lock:
            self._principals = principals
            self._revoked = revoked
            self._seq = int(seq or 0)
            self._synced_at = time.monotonic()

    def catch_up(self) -> int:
        """Apply every feed row newer than the last one seen. Returns how many were applied."""
        applied = 0
        while True:
            with self._store.begin() as conn:
                rows = conn.execute(
                    select(schema.principal_feed)
                    .where(schema.principal_feed.c.seq > self._seq)
                    .order_by(schema.principal_feed.c.seq)
                    .limit(CATCH_UP_BATCH)
                ).all()
            with self._lock:
                for row in rows:
                    self._apply(row)
                    self._seq = row.seq
                if len(rows) < CATCH_UP_BATCH:
                    self._synced_at = time.monotonic()
            applied += len(rows)
            if len(rows) < CATCH_UP_BATCH:
                return applied

    def _apply(self, row: Any) -> None:
        if row.change == "credential":
            self._revoked[row.credential_id] = as_utc(row.not_after)
        elif row.change == "deleted":
            self._principals.pop(row.spiffe_id, None)
        else:
            self._principals[row.spiffe_id] = PrincipalState(row.status, row.epoch)

    def _fresh(self) -> None:
        age = time.monotonic() - self._synced_at
        if age > self._max_staleness:
            try:
                self.catch_up()
            except StoreError as exc:
                raise StatusUnavailable(age) from exc

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
