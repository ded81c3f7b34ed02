#!/usr/bin/env bash
# Smoke test of the container deployment through the documented command, scripts/stack.sh
# (docs/hosting.md, "The podman route"): the tools, the images (FROM a debootstrap base: no
# registry here), the stack up with podman-compose until healthy; then `b3-health all`, one
# date launched through the webserver's GraphQL (127.0.0.1) from the B3 replica until landing,
# refined (sensor) and report; then `scripts/stack.sh down -v`, also on failure, and nothing
# may be left behind. Root on Debian 12 (rootful podman). Its own compose project, so a stack
# the user runs keeps running. Called by b3_assets_tests/deploy/test_container.py; prints the time
# of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
day=${B3_SMOKE_DATE:-2025-03-05}
project=b3smoke$$ # its own containers, network and volumes
t0=$SECONDS
phase() { echo "container_smoke: [$((SECONDS - t0)) s] $*" >&2; }
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}
export B3_STACK_PROJECT=$project
label=label=io.podman.compose.project=$project

work=$(mktemp -d)
trap 'failed="line $LINENO: $BASH_COMMAND"' ERR
teardown() {
  local rc=$?
  set +e
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null
  if [ "$rc" != 0 ]; then
    echo "container_smoke: the stack's last log lines:" >&2
    scripts/stack.sh compose logs --tail 40 >&2 2>&1
    echo "container_smoke: FAILED (exit $rc) at ${failed:-an unknown step} (its output is above the logs)" >&2
  fi
  s=$SECONDS
  scripts/stack.sh down -v -t 15
  # Whatever compose missed (it never should): by the project's label.
  if command -v podman >/dev/null; then
    podman ps -aq --filter "$label" | xargs -r podman rm -f >/dev/null 2>&1
    podman network ls -q --filter "$label" | xargs -r podman network rm -f >/dev/null 2>&1
    podman volume ls -q --filter "$label" | xargs -r podman volume rm -f >/dev/null 2>&1
    left=$(podman ps -aq --filter "$label"; podman network ls -q --filter "$label"; podman volume ls -q --filter "$label")
  fi
  rm -rf "$work"
  if [ -n "${left:-}" ]; then echo "container_smoke: left behind: $left" >&2; rc=1; fi
  phase "torn down in $((SECONDS - s)) s"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 143' TERM INT # a signal still runs the teardown
ui_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
samples=$repo/b3_assets_tests/fixtures/b3
if [ -d "$samples" ]; then
  replica_src="--samples, /samples"
  samples_mount="- $samples:/samples:ro"
else
  replica_src="--generated"
  samples_mount=""
fi
# The B3 replica runs as one more service on the stack's network (nothing leaves the host,
# no host port but the UI's); the code location fetches from it instead of B3.
cat >"$work/smoke.yaml" <<YAML
services:
  code:
    environment:
      B3_BASE_URL: http://replica:8765
      B3_FETCH: api
      B3_SENSOR_INTERVAL: "5"
  replica:
    image: \${B3_IMAGE}
    command: [python, -m, b3_assets_tests.replica, --host, 0.0.0.0, --port, "8765",
              --date, "$day", $replica_src]
    volumes:
      - $repo/b3_assets_tests:/app/b3_assets_tests:ro
      $samples_mount
YAML
export B3_STACK_FILES=$work/smoke.yaml B3_UI_PORT=$ui_port B3_UI_BIND=127.0.0.1
export POSTGRES_PASSWORD=smoke-$RANDOM$RANDOM
url=http://127.0.0.1:$ui_port

# The documented command: tools, images, up, healthy (its own phases: "stack: [N s] ...").
s=$SECONDS
scripts/stack.sh up
phase "scripts/stack.sh up in $((SECONDS - s)) s (project $project, UI on $url)"
"$repo/.venv/bin/python" -m b3_assets_tests.support.stack wait-ui "$url" --timeout 60
# The documented health command.
scripts/stack.sh health

# Memory of each container while the date runs (sizing the host: docs/hosting.md).
ids=$(podman ps -q --filter "label=io.podman.compose.project=$project")
(while sleep 2; do podman stats --no-stream --format '{{.Name}} {{.MemUsage}}' $ids; done) \
  >"$work/stats.txt" 2>/dev/null &
sampler=$!
s=$SECONDS
"$repo/.venv/bin/python" -m b3_assets_tests.support.stack materialize "$url" "$day" --timeout 300
# The files are in the lake volume, owned by the app user.
scripts/stack.sh compose exec -T code sh -c "
  test -s /data/lake/landing/ibov/dt=$day/ibov.parquet &&
  ls -d /data/lake/refined/DataCarteira=$day/Acao=* | wc -l | grep -qv '^0$' &&
  ls /data/lake/reports/dt=$day/*.png >/dev/null"
phase "$day materialized end to end in $((SECONDS - s)) s"
kill "$sampler" 2>/dev/null || true
python3 - "$work/stats.txt" >&2 <<'PY'
import re, sys
units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
peak: dict[str, float] = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) ([\d.]+)([kMG]?i?B) /", line)
    if m:
        name = m[1].split("_")[-2]
        peak[name] = max(peak.get(name, 0.0), float(m[2]) * units[m[3]])
print("container_smoke: peak memory " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in peak.items())
      + f"; sum {sum(peak.values()) / 2**20:.0f} MiB")
PY
phase "smoke passed"
