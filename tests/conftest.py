"""Shared fixtures: settings in a temporary state dir, a store on SQLite or PostgreSQL, and an
initialised identity authority. PostgreSQL is a real server the session starts on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from warden.config import Settings, load_settings
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.local.postgres import PostgresCluster, fresh_database, start_cluster
from warden.local.redis import RedisServer, start_redis
from warden.store import Store, open_store

TRUST_DOMAIN = "example.org"
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> RedisServer:
    """The session's Redis, empty (a test that kills it gets a fresh one after)."""
    if redis_session.process is None or redis_session.process.poll() is not None:
        redis_session.start()
    redis_session.flush()
    return redis_session


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return load_settings(state_dir=state)


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PostgresCluster) -> str:
    """A database migrated once (from nothing, as every deployment is): each PostgreSQL test
    gets a copy, which costs the copy and not the migrations again (about 0.25 s a test)."""
    url = fresh_database(pg_cluster, "warden_template")
    open_store(url).dispose()
    return "warden_template"


def _fresh_pg_database(cluster: PostgresCluster, template: str) -> str:
    return fresh_database(cluster, f"warden_test_{next(_db_counter)}", template=template)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "sqlite":
        return settings.database
    return _fresh_pg_database(
        request.getfixturevalue("pg_cluster"), request.getfixturevalue("pg_template")
    )


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.dispose()


def make_authority(settings: Settings, store: Store) -> IdentityAuthority:
    keys = FileKeyManager.create(settings.state_dir / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, TRUST_DOMAIN)
    return IdentityAuthority.from_parts(settings, store, keys)


@pytest.fixture
def authority(settings: Settings, store: Store) -> IdentityAuthority:
    """An initialised authority on each store backend."""
    return make_authority(settings, store)


@pytest.fixture
def sqlite_authority(settings: Settings) -> Iterator[IdentityAuthority]:
    """An initialised authority on SQLite only (for tests where the backend does not matter)."""
    opened = open_store(settings.database)
    yield make_authority(settings, opened)
    opened.dispose()
