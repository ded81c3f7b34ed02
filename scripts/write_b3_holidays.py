"""Writes glue/b3_holidays.txt: B3's weekday holidays from exchange_calendars "BVMF".

The Glue job cannot import exchange_calendars (Glue 5.0 does not ship it), so it reads this
file, derived from the calendar the rest of the project uses; a test keeps the two equal.
Run it again to cover later years (change LAST_DAY): .venv/bin/python scripts/write_b3_holidays.py
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd

from b3_assets.sessions import B3_CALENDAR, FIRST_TRADING_DATE

LAST_DAY = date(2030, 12, 31)
OUT = Path(__file__).resolve().parents[1] / "glue" / "b3_holidays.txt"


def holiday_lines(first: date = FIRST_TRADING_DATE, last: date = LAST_DAY) -> list[str]:
    cal = xcals.get_calendar(B3_CALENDAR, start=first.isoformat(), end=last.isoformat())
    sessions = set(cal.sessions)
    weekdays = pd.bdate_range(first, last)
    return [
        f"# B3 weekday holidays {first} .. {last} (exchange_calendars {B3_CALENDAR}); "
        "written by scripts/write_b3_holidays.py",
        *(d.date().isoformat() for d in weekdays if d not in sessions),
    ]


if __name__ == "__main__":
    OUT.write_text("\n".join(holiday_lines()) + "\n")
    print(f"wrote {OUT}")
