#!/usr/bin/env bash
# Smoke test of the container deployment, as users run it (deploy/compose.yaml):
# build the image (FROM a debootstrap base: no registry here), bring the stack up with
# podman-compose, check PostgreSQL, the code server, the webserver (127.0.0.1) and the daemon,
# launch one date through the webserver's GraphQL and wait for landing, refined (sensor) and
# report; then tear everything down, also on failure. Root on Debian 12 (rootful podman).
# Called by b3_assets_tests/test_container.py; prints the time of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${B3_CACHE_DIR:-$HOME/.cache/b3-pipeline}
day=${B3_SMOKE_DATE:-2025-03-05}
project=b3smoke$$ # its own containers, network and volumes
base_image=localhost/debian:bookworm
app_image=localhost/b3-pipeline:latest
pg_image=localhost/b3-postgres:15
t0=$SECONDS
phase() { echo "container_smoke: [$((SECONDS - t0)) s] $*" >&2; }

# --- tools ------------------------------------------------------------------------------
# iptables: netavark sets up the bridge with it (Debian's podman only suggests it).
missing=()
for pkg in podman debootstrap runc netavark aardvark-dns iptables; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  phase "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# podman-compose from PyPI, pinned, in its own venv (Debian's 1.0.3 leaves networks behind).
compose_venv=$cache/podman-compose
if ! "$compose_venv/bin/podman-compose" --version 2>/dev/null | grep -q 'podman-compose version 1.6.0'; then
  phase "podman-compose 1.6.0 into $compose_venv"
  rm -rf "$compose_venv"
  python3 -m venv "$compose_venv"
  "$compose_venv/bin/pip" install -q podman-compose==1.6.0
fi
# This machine's podman settings (CONTAINERS.md): crun and systemd cgroups do not work here,
# the default ulimits cannot be raised, and CNI cannot resolve service names.
mkdir -p "$cache"
cat >"$cache/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF=$cache/containers.conf
if ip link show cni-podman0 >/dev/null 2>&1; then ip link del cni-podman0; fi
compose=("$compose_venv/bin/podman-compose" -p "$project" -f deploy/compose.yaml)

# --- images -----------------------------------------------------------------------------
build_args=(--format docker --build-arg "BASE_IMAGE=$base_image") # docker format keeps HEALTHCHECK
ca=/etc/ssl/certs/ca-certificates.crt # the intercepting proxy's CA, for pip/uv only
[ -s "$ca" ] && build_args+=(--secret "id=hostca,src=$ca")
s=$SECONDS
scripts/container_base.sh "$base_image"
phase "base image $base_image ready in $((SECONDS - s)) s"
s=$SECONDS
podman build -q "${build_args[@]}" -t "$app_image" . >/dev/null
phase "app image $app_image built in $((SECONDS - s)) s ($(podman image inspect -f '{{.Size}}' "$app_image" | numfmt --to=iec) )"
s=$SECONDS
podman build -q "${build_args[@]}" -f deploy/postgres.Dockerfile -t "$pg_image" deploy >/dev/null
phase "postgres image $pg_image built in $((SECONDS - s)) s"

# --- the stack --------------------------------------------------------------------------
work=$(mktemp -d)
teardown() {
  local rc=$?
  set +e
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null
  if [ "$rc" != 0 ]; then
    echo "container_smoke: FAILED (exit $rc); the stack's last log lines:" >&2
    "${compose[@]}" logs --tail 40 >&2 2>&1
  fi
  s=$SECONDS
  "${compose[@]}" down -v -t 15 >/dev/null 2>&1
  # Whatever compose missed (it never should): by the project's label.
  label=label=io.podman.compose.project=$project
  podman ps -aq --filter "$label" | xargs -r podman rm -f >/dev/null 2>&1
  podman network ls -q --filter "$label" | xargs -r podman network rm -f >/dev/null 2>&1
  podman volume ls -q --filter "$label" | xargs -r podman volume rm -f >/dev/null 2>&1
  left=$(podman ps -aq --filter "$label"; podman network ls -q --filter "$label"; podman volume ls -q --filter "$label")
  rm -rf "$work"
  if [ -n "$left" ]; then echo "container_smoke: left behind: $left" >&2; rc=1; fi
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
cat >"$work/smoke.yaml" <<EOF
services:
  code:
    environment:
      B3_BASE_URL: http://replica:8765
      B3_FETCH: api
      B3_SENSOR_INTERVAL: "5"
  replica:
    image: $app_image
    command: [python, -m, b3_assets_tests.replica, --host, 0.0.0.0, --port, "8765",
              --date, "$day", $replica_src]
    volumes:
      - $repo/b3_assets_tests:/app/b3_assets_tests:ro
      $samples_mount
EOF
compose+=(-f "$work/smoke.yaml")
export B3_IMAGE=$app_image POSTGRES_IMAGE=$pg_image B3_UI_PORT=$ui_port
export POSTGRES_PASSWORD=smoke-$RANDOM$RANDOM
url=http://127.0.0.1:$ui_port


s=$SECONDS
"${compose[@]}" up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
phase "compose up -d in $((SECONDS - s)) s (project $project, UI on $url)"

# Each service's own compose healthcheck, run now (podman runs them from systemd timers,
# which this machine does not have).
s=$SECONDS
for service in postgres code webserver daemon; do
  container=${project}_${service}_1
  until podman healthcheck run "$container" >/dev/null 2>&1; do
    if [ $((SECONDS - s)) -gt 240 ]; then
      echo "container_smoke: $service not healthy after 240 s" >&2
      podman inspect -f '{{json .State.Healthcheck}}' "$container" >&2 || true
      exit 1
    fi
    sleep 3
  done
  phase "$service healthy"
done
"$repo/.venv/bin/python" -m b3_assets_tests.support.stack wait-ui "$url" --timeout 60
# The documented health command.
"${compose[@]}" exec -T daemon b3-health all

# Memory of each container while the date runs (sizing the host: docs/hosting.md).
ids=$(podman ps -q --filter "label=io.podman.compose.project=$project")
(while sleep 2; do podman stats --no-stream --format '{{.Name}} {{.MemUsage}}' $ids; done) \
  >"$work/stats.txt" 2>/dev/null &
sampler=$!
s=$SECONDS
"$repo/.venv/bin/python" -m b3_assets_tests.support.stack materialize "$url" "$day" --timeout 300
# The files are in the lake volume, owned by the app user.
"${compose[@]}" exec -T code sh -c "
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
