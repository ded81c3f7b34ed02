"""B3 sessions for the Glue job, which has no exchange_calendars: weekdays that are not in
``b3_holidays.txt`` (written from exchange_calendars by scripts/write_b3_holidays.py).

A landing file on any other day (a stray file on a holiday) is ignored by the refine: it
must never become some date's previous portfolio."""

from __future__ import annotations

import functools
import pkgutil
from datetime import date

HOLIDAYS_RESOURCE = "b3_holidays.txt"


@functools.cache
def _holidays() -> tuple[date, date, frozenset[date]]:
    """(first day, last day covered, weekday holidays), read as package data (a zip too)."""
    data = pkgutil.get_data(__package__ or "glue", HOLIDAYS_RESOURCE)
    if data is None:
        raise FileNotFoundError(f"{HOLIDAYS_RESOURCE} is missing from the glue package")
    lines = data.decode().splitlines()
    header = lines[0].split()
    first, last = date.fromisoformat(header[4]), date.fromisoformat(header[6])
    return first, last, frozenset(date.fromisoformat(x) for x in lines[1:] if x.strip())


def is_b3_session(day: date) -> bool:
    """A weekday that is not a B3 holiday, from the project's first trading date on (a stray
    2022 file is no session); past the file's last year every weekday counts (regenerate the
    file before then: a test fails a year ahead)."""
    first, _, holidays = _holidays()
    return first <= day and day.weekday() < 5 and day not in holidays


def covered_until() -> date:
    return _holidays()[1]
