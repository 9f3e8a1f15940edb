"""MCP sessions (handshake era) bound to the SPIFFE ID that sent ``initialize``.

A session id is a bearer value the server hands out; here it is worth nothing without the
identity that opened it. Bindings live in the store, so every gateway process knows them, and
in memory for the request path. The store keeps only the SHA-256 of each id. The requests a
server puts to an agent on a session are remembered the same way: the agent may answer those,
and nothing else.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

from sqlalchemy import delete, insert, select

from warden.clock import utcnow
from warden.store import Store, schema

MAX_CACHED = 100_000
SERVER_REQUEST_TTL = timedelta(minutes=10)


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", errors="replace")).hexdigest()


class McpSessions:
    """Which identity owns which session; synchronous (callers off the event loop use a
    thread for store reads, see :meth:`cached_owner`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._owners: dict[str, tuple[str, str]] = {}  # hash -> (spiffe_id, server)
        self._lock = threading.Lock()

    def bind(self, session_id: str, spiffe_id: str, server: str) -> None:
        """Bind a session the server just created to the identity that asked for it. A
        session id seen before keeps its first owner: a server that re-issues an id cannot
        hand one agent's session to another."""
        key = session_hash(session_id)
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.mcp_sessions.c.spiffe_id, schema.mcp_sessions.c.server).where(
                    schema.mcp_sessions.c.session_hash == key
                )
            ).one_or_none()
            if row is None:
                conn.execute(
                    insert(schema.mcp_sessions).values(
                        session_hash=key, server=server, spiffe_id=spiffe_id, created_at=utcnow()
                    )
                )
                owner = (spiffe_id, server)
            else:
                owner = (row.spiffe_id, row.server)
        self._remember(key, owner)

    def cached_owner(self, session_id: str) -> tuple[str, str] | None:
        """(SPIFFE ID, server) from memory, or None when this process has not seen it."""
        return self._owners.get(session_hash(session_id))

    def owner(self, session_id: str) -> tuple[str, str] | None:
        """(SPIFFE ID, server) of the session, or None when no gateway bound it."""
        key = session_hash(session_id)
        cached = self._owners.get(key)
        if cached is not None:
            return cached
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.mcp_sessions.c.spiffe_id, schema.mcp_sessions.c.server).where(
                    schema.mcp_sessions.c.session_hash == key
                )
            ).one_or_none()
        if row is None:
            return None
        owner = (str(row.spiffe_id), str(row.server))
        self._remember(key, owner)
        return owner

    def end(self, session_id: str) -> None:
        key = session_hash(session_id)
        with self._store.begin() as conn:
            conn.execute(
                delete(schema.mcp_server_requests).where(
                    schema.mcp_server_requests.c.session_hash == key
                )
            )
            conn.execute(
                delete(schema.mcp_sessions).where(schema.mcp_sessions.c.session_hash == key)
            )
        with self._lock:
            self._owners.pop(key, None)

    def sessions_of(self, spiffe_id: str) -> list[str]:
        """Hashes of the sessions ``spiffe_id`` owns (to end them when it is contained)."""
        with self._store.begin() as conn:
            rows = conn.execute(
                select(schema.mcp_sessions.c.session_hash).where(
                    schema.mcp_sessions.c.spiffe_id == spiffe_id
                )
            ).all()
        return [str(r.session_hash) for r in rows]

    def expect_answer(self, session_id: str, request_id: str | int) -> None:
        """The server asked the agent ``request_id`` on this session; the agent may answer."""
        with self._store.begin() as conn:
            conn.execute(
                insert(schema.mcp_server_requests).values(
                    session_hash=session_hash(session_id),
                    request_id=_id_key(request_id),
                    expires_at=utcnow() + SERVER_REQUEST_TTL,
                )
            )

    def take_answer(self, session_id: str, request_id: str | int) -> bool:
        """True once for a request the server put on this session and that is not stale."""
        table = schema.mcp_server_requests
        with self._store.begin() as conn:
            taken = conn.execute(
                delete(table)
                .where(table.c.session_hash == session_hash(session_id))
                .where(table.c.request_id == _id_key(request_id))
                .where(table.c.expires_at > utcnow())
            ).rowcount
        return bool(taken)

    def _remember(self, key: str, owner: tuple[str, str]) -> None:
        with self._lock:
            if len(self._owners) >= MAX_CACHED:
                self._owners.clear()
            self._owners[key] = owner


def _id_key(request_id: str | int) -> str:
    # JSON-RPC ids 1 and "1" are different ids.
    return f"{type(request_id).__name__}:{request_id}"[:256]
