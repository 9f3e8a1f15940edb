#!/usr/bin/env bash
# Make sure the services the tests need are installed. The tests start and stop their own
# throwaway instances on 127.0.0.1 (see tests/support/postgres.py); nothing runs as a daemon.
set -euo pipefail
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; }
if ! have_postgres; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing PostgreSQL for the tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL server binaries (initdb, pg_ctl) are needed: install postgresql" >&2
    exit 1
  fi
fi
