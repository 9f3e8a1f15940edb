"""Tables come from migrations only, on both backends."""

from __future__ import annotations

from sqlalchemy import inspect

from warden.store import Store
from warden.store.migrate import current_revision, head_revision, upgrade
from warden.store.schema import metadata


def test_migrated_schema_matches_the_table_definitions(store: Store) -> None:
    assert current_revision(store) == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert set(metadata.tables) | {"alembic_version"} == tables
    for name, table in metadata.tables.items():
        columns = {c["name"] for c in inspect(store.engine).get_columns(name)}
        assert columns == set(table.columns.keys()), name


def test_upgrade_is_idempotent(store: Store) -> None:
    upgrade(store)
    upgrade(store)
    assert current_revision(store) == head_revision()


def test_meta(store: Store) -> None:
    assert store.get_meta("missing") is None
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2"


def test_compare_and_set_meta(store: Store) -> None:
    assert store.compare_and_set_meta("k", None, "a")
    assert not store.compare_and_set_meta("k", None, "b")  # already there
    assert not store.compare_and_set_meta("k", "x", "b")  # not what we expected
    assert store.compare_and_set_meta("k", "a", "b")
    assert store.get_meta("k") == "b"
