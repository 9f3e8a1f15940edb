"""Enforcement points: Warden's own services allowed to ask for decisions.

An enforcement point is a ``svc`` principal registered here. Only registered ones may call the
decision APIs, and each decision records which one asked, so an agent cannot use Warden as an
oracle and nobody can ask anonymously.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from warden.clock import as_utc, utcnow
from warden.errors import StoreError
from warden.identity.errors import NameTaken
from warden.identity.spiffe_id import SpiffeId
from warden.store import Store, schema


@dataclass(frozen=True)
class EnforcementPoint:
    name: str
    spiffe_id: str
    status: str
    created_at: datetime
    created_by: str


class EnforcementPointRegistry:
    def __init__(self, store: Store, trust_domain: str) -> None:
        self._store = store
        self._trust_domain = trust_domain

    def add(self, name: str, *, created_by: str) -> EnforcementPoint:
        spiffe_id = str(SpiffeId.for_principal(self._trust_domain, "svc", name))
        try:
            with self._store.begin() as conn:
                conn.execute(
                    schema.enforcement_points.insert().values(
                        name=name,
                        spiffe_id=spiffe_id,
                        created_at=utcnow(),
                        created_by=created_by,
                        status="active",
                    )
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise NameTaken("enforcement point", name) from exc
            raise
        return self.list()[[e.name for e in self.list()].index(name)]

    def list(self) -> list[EnforcementPoint]:
        table = schema.enforcement_points
        with self._store.begin() as conn:
            rows = conn.execute(select(table).order_by(table.c.name)).all()
        return [
            EnforcementPoint(r.name, r.spiffe_id, r.status, as_utc(r.created_at), r.created_by)
            for r in rows
        ]

    def is_active(self, spiffe_id: str) -> bool:
        table = schema.enforcement_points
        with self._store.begin() as conn:
            status = conn.execute(
                select(table.c.status).where(table.c.spiffe_id == spiffe_id)
            ).scalar_one_or_none()
        return status == "active"

    def disable(self, name: str) -> bool:
        table = schema.enforcement_points
        with self._store.begin() as conn:
            return bool(
                conn.execute(
                    table.update().where(table.c.name == name).values(status="disabled")
                ).rowcount
            )
