#!/usr/bin/env bash
# Debian's faketime (libfaketime): the any-day tests run the date-sensitive tests at other
# dates and hours with it (scripts/any_day.sh).
set -euo pipefail
command -v faketime >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
else
  echo "faketime.sh: install libfaketime's command (e.g. apt-get install faketime) to run" \
    "the any-day tests" >&2
fi
