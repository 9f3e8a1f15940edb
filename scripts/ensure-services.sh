#!/usr/bin/env bash
# Make sure the services and programs the tests need are installed. The tests start and stop their own
# throwaway instances on 127.0.0.1 (tests/support/postgres.py, tests/support/redis.py);
# nothing runs as a daemon.
set -euo pipefail
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; }
have_redis() { command -v redis-server >/dev/null; }
have_bwrap() { command -v bwrap >/dev/null && [ -x /usr/bin/python3 ]; }
missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
# The sandbox's jail: bubblewrap, and Debian's python3 to run inside it (the machine's own
# Python may live where the jail cannot read).
have_bwrap || missing+=(bubblewrap python3)
# The console's browser tests drive Debian's Chromium (Playwright, no browser download).
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} for the tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian's package may start a daemon where an init system runs; the tests start their
    # own servers on free ports, so a running one is only stopped, never used.
    if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
  else
    echo "needed for the tests: ${missing[*]} (server binaries)" >&2
    exit 1
  fi
fi
