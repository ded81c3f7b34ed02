#!/usr/bin/env bash
# The container deployment with rootful podman, in one command (docs/hosting.md, "The podman
# route"; `make stack-up` / `make stack-down`). Needs no image registry: only Debian's
# packages and mirror, and PyPI.
#
#   scripts/stack.sh up           tools if missing (scripts/container_tools.sh); each image built
#                                 once: the base (debootstrap, only if missing), the app image,
#                                 PostgreSQL's; then podman-compose up -d with no build and no
#                                 pull; waits until every service is healthy, saying which one
#                                 is still starting and what it waits for
#   scripts/stack.sh down [-v]    stops and removes the containers (-v: the volumes too)
#   scripts/stack.sh build        the images only
#   scripts/stack.sh health       `b3-health all` in the running stack
#   scripts/stack.sh compose ...  podman-compose with the stack's settings: logs -f daemon, ps...
#
# Settings: deploy/.env (see deploy/.env.example); the environment wins over it. The images:
#   BASE_IMAGE      FROM of both Dockerfiles     default localhost/debian:bookworm (built here)
#   B3_IMAGE        the app image's tag          default localhost/b3-pipeline:latest
#   POSTGRES_IMAGE  PostgreSQL's image           default localhost/b3-postgres:15 (built here
#                   from deploy/postgres.Dockerfile; any other name is pulled if missing)
# and B3_STACK_PROJECT (compose project, default b3-pipeline), B3_STACK_FILES (more compose
# files, colon-separated), B3_STACK_TIMEOUT (seconds to become healthy, default 300),
# CONTAINERS_CONF (default deploy/podman/containers.conf), B3_CACHE_DIR (tools, base archive).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${B3_CACHE_DIR:-$HOME/.cache/b3-pipeline}
project=${B3_STACK_PROJECT:-b3-pipeline}
t0=$SECONDS
say() { echo "stack: [$((SECONDS - t0)) s] $*" >&2; }
die() { echo "stack: $*" >&2; exit 1; }

# A setting: the environment, else deploy/.env's last KEY=value line, else the default.
setting() {
  local key=$1 default=$2 value
  if [ -n "${!key:-}" ]; then echo "${!key}"; return; fi
  value=$(sed -n "s/^[[:space:]]*$key[[:space:]]*=[[:space:]]*//p" deploy/.env 2>/dev/null | tail -1)
  value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
  echo "${value:-$default}"
}
export BASE_IMAGE B3_IMAGE POSTGRES_IMAGE
BASE_IMAGE=$(setting BASE_IMAGE localhost/debian:bookworm)
B3_IMAGE=$(setting B3_IMAGE localhost/b3-pipeline:latest)
POSTGRES_IMAGE=$(setting POSTGRES_IMAGE localhost/b3-postgres:15)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

tools() {
  [ "$(id -u)" = 0 ] || die "run as root: the stack uses rootful podman (docs/hosting.md)"
  scripts/container_tools.sh
  compose_bin=$cache/podman-compose/bin/podman-compose
  # A bridge left by CNI (podman's old network backend) breaks netavark's name resolution.
  if ip link show cni-podman0 >/dev/null 2>&1; then
    say "removing the stale CNI bridge cni-podman0 (netavark is used)"
    ip link del cni-podman0
  fi
}

compose() {
  local files=(-f deploy/compose.yaml) extra
  if [ -n "${B3_STACK_FILES:-}" ]; then
    IFS=: read -ra extra <<<"$B3_STACK_FILES"
    for f in "${extra[@]}"; do files+=(-f "$f"); done
  fi
  "$compose_bin" -p "$project" "${files[@]}" "$@"
}

# podman build, its output in a log that is shown when it fails.
build() {
  local what=$1 log=$cache/build-$1.log s=$SECONDS
  shift
  if ! podman build --format docker "$@" >"$log" 2>&1; then
    tail -40 "$log" >&2
    die "building the $what image failed (whole log: $log)"
  fi
  say "$what image built in $((SECONDS - s)) s"
}

images() {
  mkdir -p "$cache"
  # One build at a time on this host (a second `up` waits instead of building in parallel).
  exec 9>"$cache/images.lock"
  flock 9
  local s=$SECONDS
  if [[ $BASE_IMAGE == localhost/* ]]; then
    if ! podman image exists "$BASE_IMAGE"; then
      scripts/container_base.sh "$BASE_IMAGE"
      say "base image $BASE_IMAGE ready in $((SECONDS - s)) s"
    fi
  fi
  # docker format: OCI images drop HEALTHCHECK. The host's CA bundle is a build secret for
  # pip and uv behind an intercepting proxy (mounted while installing, never stored).
  local args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  local ca=/etc/ssl/certs/ca-certificates.crt
  [ -s "$ca" ] && args+=(--secret "id=hostca,src=$ca")
  build app "${args[@]}" -t "$B3_IMAGE" .
  if [[ $POSTGRES_IMAGE == localhost/* ]]; then
    build postgres --build-arg "BASE_IMAGE=$BASE_IMAGE" -f deploy/postgres.Dockerfile \
      -t "$POSTGRES_IMAGE" deploy
  elif ! podman image exists "$POSTGRES_IMAGE"; then
    podman pull -q "$POSTGRES_IMAGE" >/dev/null
  fi
  exec 9>&-
}

container() {  # the container of a service of this project
  podman ps -a --format '{{.Names}}' --filter "label=io.podman.compose.project=$project" \
    --filter "label=io.podman.compose.service=$1" | head -1
}

services=(postgres code webserver daemon)

# Until `b3-health all` passes in the daemon's container, print what is not ready yet whenever
# that changes; then run each service's own healthcheck once (podman runs them from systemd
# timers, which a host without systemd does not have), so `ps` shows them healthy.
wait_healthy() {
  local timeout=${B3_STACK_TIMEOUT:-300} s=$SECONDS daemon out last="" state
  daemon=$(container daemon)
  [ -n "$daemon" ] || die "no daemon container in project $project"
  while :; do
    state=$(podman inspect -f '{{.State.Status}}' "$daemon" 2>/dev/null || echo missing)
    if [ "$state" = running ]; then
      if out=$(podman exec "$daemon" b3-health all 2>&1); then break; fi
    else
      out="daemon: container $daemon is $state, so nothing can be checked from it"
    fi
    out=$(grep -E '^(postgres|code|webserver|daemon): ' <<<"$out" | grep -v ': ok$' || true)
    if [ "$out" != "$last" ]; then
      sed "s/^/stack: [$((SECONDS - t0)) s] waiting: /" <<<"$out" >&2
      last=$out
    fi
    if [ $((SECONDS - s)) -ge "$timeout" ]; then
      echo "stack: not healthy after $timeout s; the last log lines:" >&2
      compose logs --tail 30 >&2 2>&1 || true
      return 1
    fi
    sleep 10
  done
  local pids=() name rc=0
  for service in "${services[@]}"; do
    name=$(container "$service")
    podman healthcheck run "$name" >/dev/null 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "stack: ${services[$i]}'s healthcheck failed" >&2; rc=1; }
  done
  return $rc
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up)
    tools
    images
    s=$SECONDS
    # A container still on an image replaced by the builds above (an upgrade, a code change):
    # podman-compose would keep it (same configuration), so every container is recreated.
    up_args=(up -d --no-build)
    current=" $(podman image inspect -f '{{.Id}}' "$B3_IMAGE" "$POSTGRES_IMAGE" | tr '\n' ' ') "
    for id in $(podman ps -aq --filter "label=io.podman.compose.project=$project"); do
      image=$(podman inspect -f '{{.Image}}' "$id")
      if [[ $current != *" $image "* ]]; then
        say "new images: recreating the containers (volumes are kept)"
        up_args+=(--force-recreate)
        break
      fi
    done
    up_log=$cache/compose-up.log
    if ! compose "${up_args[@]}" >"$up_log" 2>&1; then
      cat "$up_log" >&2
      die "podman-compose up failed"
    fi
    say "containers started in $((SECONDS - s)) s (project $project)"
    s=$SECONDS
    wait_healthy
    say "healthy in $((SECONDS - s)) s: $(podman exec "$(container daemon)" b3-health all | tr '\n' ' ')"
    say "the UI: http://$(setting B3_UI_BIND 127.0.0.1):$(setting B3_UI_PORT 3000)"
    ;;
  down)
    tools
    compose down "$@" >"$cache/compose-down.log" 2>&1 || { cat "$cache/compose-down.log" >&2; exit 1; }
    say "down (project $project)"
    ;;
  build) tools; images ;;
  health) tools; compose exec -T daemon b3-health all ;;
  compose) tools; compose "$@" ;;
  *) die "usage: scripts/stack.sh up|down [-v]|build|health|compose ARGS..." ;;
esac
