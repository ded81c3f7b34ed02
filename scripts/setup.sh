#!/usr/bin/env bash
# Sets up .venv at the repository root with the locked dependencies (uv.lock).
# Needs Python 3.11 (uv finds it, or downloads it where downloads are allowed).
set -euo pipefail
cd "$(dirname "$0")/.."
py=""
for candidate in python3.11 python3 python; do
  if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
done
[ -n "$py" ] || { echo "setup: no python3 found; install Python 3.11 first" >&2; exit 1; }
if ! "$py" -m uv --version >/dev/null 2>&1 && ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv (the package manager that reads uv.lock)" >&2
  "$py" -m pip install --quiet --user uv 2>/dev/null || "$py" -m pip install --quiet uv
fi
if command -v uv >/dev/null 2>&1; then uv=(uv); else uv=("$py" -m uv); fi
"${uv[@]}" sync --frozen --python 3.11 --quiet
echo "setup: .venv ready ($(.venv/bin/python --version))" >&2
