"""One log writer at a time among the processes that share a SQLite store.

Every commit takes the log's lock inside SQLite too (``BEGIN IMMEDIATE``), which is what keeps
the log whole; this file lock only decides who goes next. SQLite's busy handler sleeps a
millisecond and then longer between tries, so two gateway workers whose writers met at the
database lost that time on most commits; a writer blocked here wakes the moment the last one
is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from warden.store import Store


class WriterLock:
    """A blocking file lock beside the store's SQLite file (none for other stores)."""

    def __init__(self, store: Store) -> None:
        database = store.engine.url.database if store.dialect == "sqlite" else None
        self._fd: int | None = None
        if database and database != ":memory:":
            self._fd = os.open(database + ".log-lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits with the interpreter released
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
