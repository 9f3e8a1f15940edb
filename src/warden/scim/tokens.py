"""Bearer tokens for SCIM provisioning clients: scoped to SCIM only, shown once, kept as
SHA-256 digests, rotatable and revocable.

A token is 256 random bits, so a plain SHA-256 digest is enough to keep it (nothing to guess
from); it is looked up by its digest, so checking one takes one indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from warden.clock import as_utc, isoformat, utcnow
from warden.errors import ConflictError, NotFoundError
from warden.identity.spiffe_id import validate_name
from warden.store import Store, schema

PREFIX = "wscim_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": isoformat(self.created_at),
            "created_by": self.created_by,
            "last_used_at": isoformat(self.last_used_at) if self.last_used_at else None,
            "revoked_at": isoformat(self.revoked_at) if self.revoked_at else None,
        }


class ScimTokens:
    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, name: str, *, by: str) -> str:
        """A new token for the client ``name``; the only time it is seen in clear."""
        validate_name(name)
        token = PREFIX + secrets.token_urlsafe(32)
        with self._store.begin() as conn:
            if conn.execute(
                select(schema.scim_tokens.c.name).where(schema.scim_tokens.c.name == name)
            ).first():
                raise ConflictError(f"a SCIM token is named {name!r} (rotate it)")
            conn.execute(
                schema.scim_tokens.insert().values(
                    name=name, token_sha256=digest(token), created_at=utcnow(), created_by=by[:2048]
                )
            )
        return token

    def rotate(self, name: str, *, by: str) -> str:
        """Replace the client's token: the old one stops working at once."""
        token = PREFIX + secrets.token_urlsafe(32)
        with self._store.begin() as conn:
            done = conn.execute(
                schema.scim_tokens.update()
                .where(schema.scim_tokens.c.name == name)
                .values(
                    token_sha256=digest(token),
                    created_at=utcnow(),
                    created_by=by[:2048],
                    revoked_at=None,
                    last_used_at=None,
                )
            ).rowcount
        if not done:
            raise NotFoundError(f"no SCIM token {name!r}")
        return token

    def revoke(self, name: str) -> None:
        with self._store.begin() as conn:
            done = conn.execute(
                schema.scim_tokens.update()
                .where(schema.scim_tokens.c.name == name, schema.scim_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        if not done:
            raise NotFoundError(f"no live SCIM token {name!r}")

    def check(self, token: str) -> str | None:
        """The client a presented token belongs to, or None."""
        if not token.startswith(PREFIX) or len(token) > 128:
            return None
        table = schema.scim_tokens
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.name).where(
                    table.c.token_sha256 == digest(token), table.c.revoked_at.is_(None)
                )
            ).first()
            if row is None:
                return None
            conn.execute(
                table.update().where(table.c.name == row.name).values(last_used_at=utcnow())
            )
        return str(row.name)

    def list(self) -> list[TokenInfo]:
        with self._store.begin() as conn:
            rows = conn.execute(
                select(schema.scim_tokens).order_by(schema.scim_tokens.c.name)
            ).all()
        return [
            TokenInfo(
                r.name,
                as_utc(r.created_at),
                r.created_by,
                as_utc(r.last_used_at) if r.last_used_at else None,
                as_utc(r.revoked_at) if r.revoked_at else None,
            )
            for r in rows
        ]
