#!/usr/bin/env bash
# `make dev`: the Dagster UI, daemon and code server on the local lake, stopped cleanly by
# Ctrl-C *or* SIGTERM (kill, a service manager, make's own forwarding). dagster dev shuts its
# services down on SIGINT but keeps running on SIGTERM, so a TERM becomes an INT; whatever is
# left after B3_DEV_STOP_S seconds (default 15) is killed, the whole process group.
set -uo pipefail
cd "$(dirname "$0")/.."
# DAGSTER_HOME (default .dagster_home) with run monitoring on, as b3-pipeline sets it up.
export DAGSTER_HOME="$(.venv/bin/python -m b3_assets.platform.instance)" || exit 2
set -m # its own process group, and SIGINT not ignored as it is for a plain background job
.venv/bin/dagster dev -w workspace.yaml -h "${DAGSTER_HOST:-127.0.0.1}" -p "${DAGSTER_PORT:-3000}" &
pid=$!
stop() {
  trap '' INT TERM
  kill -INT "$pid" 2>/dev/null
  deadline=$((SECONDS + ${B3_DEV_STOP_S:-15}))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dev: dagster dev did not stop in ${B3_DEV_STOP_S:-15} s; killing it" >&2
  fi
  kill -KILL -- "-$pid" 2>/dev/null
  exit 0
}
trap stop INT TERM
wait "$pid"
rc=$?
kill -KILL -- "-$pid" 2>/dev/null # children it left behind (code servers, `tail -F`)
exit "$rc"
