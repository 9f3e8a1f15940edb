"""Opening the store: one engine per process, SQLite tuned for a single host, PostgreSQL as is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from warden.errors import StoreError
from warden.store import schema


class WriteTurns:
    """Who writes next on SQLite, where one writer holds the database at a time.

    The decision log commits group after group under load; another write (a quarantine, the
    claim of a playbook run) would wait in SQLite's busy handler, which sleeps in growing
    steps and may lose to the log's next group again and again. An urgent writer marks itself
    here; the log waits for it before taking its next group, so the urgent write waits for
    one group commit at most. Within one process only; PostgreSQL needs none of this.
    """

    def __init__(self) -> None:
        self._urgent = 0
        self._cond = threading.Condition()

    @contextmanager
    def urgent(self) -> Iterator[None]:
        with self._cond:
            self._urgent += 1
        try:
            yield
        finally:
            with self._cond:
                self._urgent -= 1
                self._cond.notify_all()

    def wait_turn(self, timeout_s: float = 1.0) -> None:
        """For the log's writer: wait while urgent writes are under way (bounded)."""
        with self._cond:
            if self._urgent:
                self._cond.wait_for(lambda: not self._urgent, timeout=timeout_s)


@dataclass(frozen=True)
class Store:
    """A migrated database. ``begin()`` yields a connection inside one transaction."""

    engine: Engine
    turns: WriteTurns = field(default_factory=WriteTurns, compare=False, repr=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction; store failures surface as :class:`StoreError`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"store failure: {type(exc).__name__}: {exc}") from exc

    @contextmanager
    def urgent(self) -> Iterator[Connection]:
        """:meth:`begin` for a write that must not queue behind the decision log (on SQLite;
        the same as ``begin`` elsewhere)."""
        if self.dialect != "sqlite":
            with self.begin() as conn:
                yield conn
            return
        with self.turns.urgent(), self.begin() as conn:
            yield conn

    def get_meta(self, key: str) -> str | None:
        with self.begin() as conn:
            value = conn.execute(
                select(schema.meta.c.value).where(schema.meta.c.key == key)
            ).scalar_one_or_none()
        return value

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as conn:
            updated = conn.execute(
                schema.meta.update().where(schema.meta.c.key == key).values(value=value)
            ).rowcount
            if not updated:
                conn.execute(schema.meta.insert().values(key=key, value=value))

    def compare_and_set_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Set ``key`` to ``value`` only if it still holds ``expected`` (None: absent).
        Atomic across processes; False when another writer got there first."""
        try:
            with self.begin() as conn:
                if expected is None:
                    conn.execute(schema.meta.insert().values(key=key, value=value))
                    return True
                updated = conn.execute(
                    schema.meta.update()
                    .where(schema.meta.c.key == key)
                    .where(schema.meta.c.value == expected)
                    .values(value=value)
                ).rowcount
                return bool(updated)
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False  # inserted meanwhile by another writer
            raise

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; busy_timeout waits for a writer instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with Warden's connection settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open (and by default migrate to the newest schema) the store at ``url``."""
    from warden.store.migrate import upgrade

    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    store = Store(engine)
    if migrate:
        upgrade(store)
    return store
