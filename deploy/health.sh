#!/usr/bin/env bash
# Health of the container deployment (installed in the image as `b3-health`).
#   b3-health [code|webserver|daemon|postgres]   one part; the image's and compose's HEALTHCHECK
#                                                (no argument: $B3_ROLE, default code)
#   b3-health all                                every part, one line each; exit 1 if any fails
# Inside compose, `all` reaches the other services by name (code, webserver, postgres).
set -euo pipefail

code() {  # the code location answers on gRPC
  dagster api grpc-health-check -h "${1:-localhost}" -p 4000 >/dev/null
}

webserver() {  # the UI's server answers /server_info
  python3 - "${1:-localhost}" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://{sys.argv[1]}:3000/server_info", timeout=10) as r:
    json.load(r)["dagster_webserver_version"]
PY
}

daemon() {  # every required daemon (scheduler, sensors, run queue...) heartbeat in 5 minutes
  # (Dagster's default tolerance is 30 minutes: too late to call a hung daemon unhealthy;
  # they heartbeat every 30 s.)
  DAGSTER_DAEMON_HEARTBEAT_TOLERANCE=300 dagster-daemon liveness-check >/dev/null
}

postgres() {  # the instance's database accepts a connection
  python3 - <<'PY'
import os, psycopg2
psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ.get("DAGSTER_PG_PORT", "5432"),
                 user=os.environ["DAGSTER_PG_USERNAME"], password=os.environ["DAGSTER_PG_PASSWORD"],
                 dbname=os.environ["DAGSTER_PG_DB"], connect_timeout=5).close()
PY
}

role=${1:-${B3_ROLE:-code}}
case "$role" in
  code | webserver | daemon | postgres) "$role" ;;
  all)
    failed=0
    for part in postgres code webserver daemon; do
      host=localhost
      case "$part" in code | webserver) host=$part ;; esac
      if out=$("$part" "$host" 2>&1); then
        echo "$part: ok"
      else
        echo "$part: FAILED ${out##*$'\n'}"  # the error's last line
        failed=1
      fi
    done
    exit "$failed" ;;
  *) echo "usage: b3-health [code|webserver|daemon|postgres|all]" >&2; exit 2 ;;
esac
