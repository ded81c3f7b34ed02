#!/usr/bin/env bash
# The date-sensitive tests (marker any_day) at other dates and hours, under libfaketime:
#   scripts/any_day.sh                  the next Saturday, the next weekday B3 holiday and 08:29
#                                       São Paulo on the next session day (what `make test` runs)
#   scripts/any_day.sh --sweep DAY N    at 13:00 São Paulo on N consecutive days from DAY
#   scripts/any_day.sh --at "YYYY-MM-DD HH:MM:SS"   one moment (UTC)
# Extra arguments after `--` go to pytest (e.g. `-- -m "any_day and not slow"`).
# FAKETIME_DONT_FAKE_MONOTONIC=1 keeps timeouts in real time; b3_assets_tests/faketime_shim
# works around libfaketime's broken time.sleep (see its docstring).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/faketime.sh
command -v faketime >/dev/null 2>&1 || { echo "any_day: faketime is not installed" >&2; exit 1; }
moments=()
case "${1:-}" in
  --sweep) first=$2; days=$3; shift 3
    for ((i = 0; i < days; i++)); do moments+=("$(date -u -d "$first + $i day" +%F) 16:00:00"); done ;;
  --at) moments=("$2"); shift 2 ;;
  *) mapfile -t moments < <(.venv/bin/python - <<'PY'
from datetime import date, timedelta
from b3_assets.sessions import b3_calendar, is_trading_day, weekday_holidays
today = date.today()
saturday = today + timedelta((5 - today.weekday()) % 7 or 7)
holiday = min(d for d in weekday_holidays() if d > today)
session = next(d for d in (today + timedelta(n) for n in range(1, 15)) if is_trading_day(d))
print(f"{saturday} 15:00:00")   # 12:00 São Paulo on a Saturday
print(f"{holiday} 15:00:00")    # 12:00 São Paulo on a weekday B3 holiday
print(f"{session} 11:29:00")    # 08:29 São Paulo on a session day, a minute before the schedule
PY
) ;;
esac
[ "${1:-}" = "--" ] && shift
pytest_args=("$@")
[ ${#pytest_args[@]} -gt 0 ] || pytest_args=(-m any_day)
export FAKETIME_DONT_FAKE_MONOTONIC=1
export PYTHONPATH="$PWD/b3_assets_tests/faketime_shim${PYTHONPATH:+:$PYTHONPATH}"
rc=0
summary=()
for moment in "${moments[@]}"; do
  label="$(faketime "$moment" date -u '+%a %F %H:%M UTC')"
  echo "any_day: $label" >&2
  if faketime "$moment" .venv/bin/pytest -q -p no:cacheprovider "${pytest_args[@]}" \
      >"/tmp/any_day.$$.log" 2>&1; then result=passed; else result=FAILED; rc=1; fi
  line="$(grep -E '(passed|failed|error)' "/tmp/any_day.$$.log" | tail -1 || true)"
  summary+=("$label  $result  $line")
  [ "$result" = passed ] || tail -60 "/tmp/any_day.$$.log" >&2
done
rm -f "/tmp/any_day.$$.log"
printf 'any_day: %s\n' "${summary[@]}"
set +o pipefail # a line without "failed" is no error
passed=0 failed=0
for line in "${summary[@]}"; do
  p=$(grep -oE '[0-9]+ passed' <<<"$line" | awk '{s += $1} END {print s + 0}')
  f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | awk '{s += $1} END {print s + 0}')
  passed=$((passed + p)) failed=$((failed + f))
done
echo "any_day: $passed passed, $failed failed"
exit "$rc"
