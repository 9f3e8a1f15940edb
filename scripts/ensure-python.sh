#!/usr/bin/env bash
# Create the virtual environment; on a fresh Debian, install python3-venv first if needed.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "cannot create a venv: install python3-venv (Debian) and retry" >&2; exit 1
  fi
  "$python" -m venv "$venv"
fi
