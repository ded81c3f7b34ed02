#!/usr/bin/env bash
# What the podman route of docs/hosting.md needs, installed if missing:
#   Debian packages  podman runc netavark aardvark-dns iptables (netavark sets up the bridge with
#                    it; Debian's podman only suggests it), debootstrap (the offline base image),
#                    python3-venv (the venv below)
#   PyPI             podman-compose 1.6.0 and its two dependencies, hash-pinned
#                    (scripts/podman-compose.txt), in its own venv: $B3_CACHE_DIR/podman-compose
# As root on Debian/Ubuntu the packages are installed with apt-get; elsewhere it names them.
# Called by scripts/stack.sh and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${B3_CACHE_DIR:-$HOME/.cache/b3-pipeline}
venv=$cache/podman-compose
say() { echo "container_tools: $*" >&2; }

packages=(podman runc netavark aardvark-dns iptables debootstrap python3-venv)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
  done
elif ! command -v podman >/dev/null 2>&1; then
  say "podman not found: install podman 4.3 or later"
  exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    say "missing ${missing[*]}; as root: apt-get install --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# The venv is rebuilt whenever the pinned requirements change.
stamp=$(sha256sum scripts/podman-compose.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.b3-requirements" 2>/dev/null)" != "$stamp" ] ||
  ! "$venv/bin/podman-compose" --help >/dev/null 2>&1; then
  say "podman-compose (scripts/podman-compose.txt) into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python=python3
  [ -x /usr/bin/python3 ] && python=/usr/bin/python3
  "$python" -m venv "$venv"
  if ! "$venv/bin/pip" install --disable-pip-version-check --require-hashes \
    -r scripts/podman-compose.txt >"$cache/podman-compose-install.log" 2>&1; then
    tail -20 "$cache/podman-compose-install.log" >&2
    exit 1
  fi
  echo "$stamp" >"$venv/.b3-requirements"
fi
