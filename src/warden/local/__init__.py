"""Throwaway PostgreSQL and Redis on 127.0.0.1, started from the machine's own binaries:
for ``warden demo --distributed`` and the tests that need a real database or shared state."""

from __future__ import annotations


def require(purpose: str) -> None:
    """Raise :class:`~warden.errors.ConfigError` naming what this machine lacks to start
    PostgreSQL and Redis here (cheap: nothing heavy is imported, nothing is started)."""
    from warden.errors import ConfigError
    from warden.local import postgres, redis

    lacking = [] if postgres.installed() else ["PostgreSQL (initdb)"]
    lacking += [] if redis.installed() else ["redis-server"]
    if lacking:
        raise ConfigError(
            f"{purpose}: not installed: {', '.join(lacking)} "
            "(scripts/ensure-services.sh installs them)"
        )
