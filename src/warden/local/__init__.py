"""Throwaway PostgreSQL and Redis on 127.0.0.1, started from the machine's own binaries:
for ``warden demo --distributed`` and the tests that need a real database or shared state."""

from __future__ import annotations


def missing() -> str | None:
    """What this machine lacks to start PostgreSQL and Redis here, or None."""
    from warden.local import postgres, redis

    lacking = [] if postgres.installed() else ["PostgreSQL (initdb)"]
    lacking += [] if redis.installed() else ["redis-server"]
    if lacking:
        return f"not installed: {', '.join(lacking)} (scripts/ensure-services.sh installs them)"
    return None
