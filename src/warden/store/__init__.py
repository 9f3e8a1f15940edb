"""Persistence: SQLAlchemy 2 Core on SQLite (embedded default) or PostgreSQL (production).

Tables are created only by migrations (:func:`warden.store.migrate.upgrade`), never at run time.
"""

from warden.store.engine import Store, open_store

__all__ = ["Store", "open_store"]
