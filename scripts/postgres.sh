#!/usr/bin/env bash
# PostgreSQL's server binaries for the tests of the PostgreSQL-backed Dagster instance
# (b3_assets_tests/support/postgres.py starts its own throwaway server from them; the
# system's cluster, if the package starts one, is left alone and unused).
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "postgres.sh: install PostgreSQL's server (e.g. apt-get install postgresql," \
    "brew install postgresql@15) for the PostgreSQL-backed tests" >&2
fi
