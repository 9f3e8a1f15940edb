"""Who is signed in to the console: one-time login links, and short sessions.

A login link carries 256 random bits and works once, for minutes; redeeming it is one
conditional UPDATE, so two browsers racing for the same link cannot both get in. A session is
another 256 random bits in an HttpOnly, SameSite=Strict cookie; it ends after
``console_session_idle_s`` without use and ``console_session_max_s`` after sign-in, whichever
comes first, and at sign-out. Only SHA-256 digests are stored (nothing to guess from 256 bits),
so a copy of the database signs nobody in. Each session has its own CSRF token, which every
state-changing request must carry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, update

from warden.clock import as_utc, utcnow
from warden.config import Settings
from warden.errors import NotFoundError
from warden.identity.registry import OperatorRegistry
from warden.store import Store, schema

LINK_PREFIX = "wlogin_"
SESSION_PREFIX = "wsess_"
MAX_TOKEN_CHARS = 128
# A session's last use is written at most this often (every page would be a write otherwise).
TOUCH_EVERY = timedelta(seconds=30)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in person: the operator they are, how they signed in, and until when."""

    operator: str
    csrf: str
    via: Literal["link", "oidc"]
    created_at: datetime
    expires_at: datetime
    digest: str

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class ConsoleSessions:
    """Login links and sessions in the store, bounded by the settings."""

    def __init__(self, store: Store, operators: OperatorRegistry, settings: Settings) -> None:
        self._store = store
        self._operators = operators
        self.link_ttl = timedelta(seconds=settings.console_login_link_ttl_s)
        self.idle = timedelta(seconds=settings.console_session_idle_s)
        self.max_age = timedelta(seconds=settings.console_session_max_s)

    # -- one-time login links ------------------------------------------------------------------

    def create_link(self, operator: str, *, by: str) -> str:
        """A one-time login token for ``operator`` (who must be active); shown only now."""
        found = self._operators.get(operator)
        if found.status != "active":
            raise NotFoundError(f"operator {operator!r} is {found.status}")
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        with self._store.begin() as conn:
            conn.execute(
                schema.console_links.insert().values(
                    token_sha256=digest(token),
                    operator=operator,
                    created_at=now,
                    expires_at=now + self.link_ttl,
                    created_by=by[:2048],
                )
            )
        return token

    def redeem(self, token: str) -> str | None:
        """The operator a link signs in, once; None when it is unknown, used or expired."""
        if not token.startswith(LINK_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        table = schema.console_links
        now = utcnow()
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.operator, table.c.expires_at).where(
                    table.c.token_sha256 == digest(token), table.c.used_at.is_(None)
                )
            ).first()
            if row is None or as_utc(row.expires_at) <= now:
                return None
            taken = conn.execute(
                update(table)
                .where(table.c.token_sha256 == digest(token), table.c.used_at.is_(None))
                .values(used_at=now)
            ).rowcount
        return str(row.operator) if taken == 1 else None

    # -- sessions ------------------------------------------------------------------------------

    def open(self, operator: str, via: Literal["link", "oidc"]) -> tuple[str, ConsoleSession]:
        """A new session; returns the cookie's value (the only time it is seen) and it."""
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        session = ConsoleSession(
            operator=operator,
            csrf=secrets.token_urlsafe(32),
            via=via,
            created_at=now,
            expires_at=now + self.max_age,
            digest=digest(token),
        )
        with self._store.begin() as conn:
            # Sessions that ended long ago are dropped here: no sweeper thread is needed.
            conn.execute(
                delete(schema.console_sessions).where(
                    schema.console_sessions.c.expires_at < now - timedelta(days=1)
                )
            )
            conn.execute(
                schema.console_sessions.insert().values(
                    token_sha256=session.digest,
                    operator=operator,
                    csrf=session.csrf,
                    via=via,
                    created_at=now,
                    expires_at=session.expires_at,
                    last_seen_at=now,
                )
            )
        return token, session

    def get(self, token: str | None) -> ConsoleSession | None:
        """The live session behind a cookie value, or None; each use counts against idle."""
        if not token or not token.startswith(SESSION_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        table = schema.console_sessions
        key = digest(token)
        now = utcnow()
        with self._store.begin() as conn:
            row = conn.execute(
                select(table).where(table.c.token_sha256 == key, table.c.ended_at.is_(None))
            ).first()
            if row is None:
                return None
            last_seen = as_utc(row.last_seen_at)
            if as_utc(row.expires_at) <= now or last_seen + self.idle <= now:
                conn.execute(update(table).where(table.c.token_sha256 == key).values(ended_at=now))
                return None
            if now - last_seen >= TOUCH_EVERY:
                conn.execute(
                    update(table).where(table.c.token_sha256 == key).values(last_seen_at=now)
                )
        return ConsoleSession(
            operator=str(row.operator),
            csrf=str(row.csrf),
            via=row.via,
            created_at=as_utc(row.created_at),
            expires_at=as_utc(row.expires_at),
            digest=key,
        )

    def still_open(self, session: ConsoleSession) -> bool:
        """Whether a session is still live, without counting as a use (a live stream asks)."""
        table = schema.console_sessions
        now = utcnow()
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.expires_at, table.c.last_seen_at).where(
                    table.c.token_sha256 == session.digest, table.c.ended_at.is_(None)
                )
            ).first()
        return (
            row is not None
            and as_utc(row.expires_at) > now
            and as_utc(row.last_seen_at) + self.idle > now
        )

    def close(self, session: ConsoleSession) -> None:
        table = schema.console_sessions
        with self._store.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.token_sha256 == session.digest, table.c.ended_at.is_(None))
                .values(ended_at=utcnow())
            )

    def close_all(self, operator: str) -> int:
        """End every session of ``operator`` (its record was revoked, say)."""
        table = schema.console_sessions
        with self._store.begin() as conn:
            return int(
                conn.execute(
                    update(table)
                    .where(table.c.operator == operator, table.c.ended_at.is_(None))
                    .values(ended_at=utcnow())
                ).rowcount
            )
