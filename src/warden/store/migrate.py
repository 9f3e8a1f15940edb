"""Schema migrations through Alembic, run programmatically on an open store."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from warden.errors import StoreError
from warden.store.engine import Store

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration shipped with this Warden."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; a no-op when it is already there."""
    try:
        if current_revision(store) == head_revision() and revision == "head":
            return
        config = _config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {exc}") from exc
