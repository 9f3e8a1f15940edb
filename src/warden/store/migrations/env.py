"""Alembic environment: migrations always run on a connection Warden hands over."""

from __future__ import annotations

from alembic import context

from warden.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Warden runs migrations through warden.store.migrate.upgrade()")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
