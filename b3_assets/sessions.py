"""B3 trading sessions (exchange_calendars "BVMF") as Dagster partitions and schedule days.

Weekends and B3 holidays (Carnival, Good Friday, Consciência Negra since 2024, Christmas Eve,
New Year's Eve, ...) are not partitions; Ash Wednesday (a late-opening session) is."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

B3_CALENDAR = "BVMF"
B3_TIMEZONE = "America/Sao_Paulo"
FIRST_TRADING_DATE = date(2023, 1, 2)


@cache
def b3_calendar() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(B3_CALENDAR, start=FIRST_TRADING_DATE.isoformat())


def is_trading_day(day: date) -> bool:
    cal = b3_calendar()
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session:
        raise ValueError(
            f"{day} is outside the B3 calendar known to exchange_calendars "
            f"({cal.first_session.date()} to {cal.last_session.date()})"
        )
    return bool(cal.is_session(ts))


def is_known_session(day: date) -> bool:
    """Like :func:`is_trading_day`, for dates found in the lake rather than asked for: a
    file dated outside the calendar (a stray 2022 file) is no session, never an error."""
    cal = b3_calendar()
    ts = pd.Timestamp(day)
    return cal.first_session <= ts <= cal.last_session and bool(cal.is_session(ts))


def trading_days(start: date, end: date) -> list[date]:
    """B3 sessions from ``start`` to ``end``, both included."""
    return [ts.date() for ts in b3_calendar().sessions_in_range(start, end)]


@cache
def weekday_holidays() -> tuple[date, ...]:
    """Weekdays on which B3 does not trade, over the calendar's whole span."""
    cal = b3_calendar()
    weekdays = pd.bdate_range(cal.first_session, cal.last_session)
    sessions = set(cal.sessions)
    return tuple(d.date() for d in weekdays if d not in sessions)


def holiday_exclusions() -> list[datetime]:
    """The holidays in the form ``TimeWindowPartitionsDefinition(exclusions=…)`` takes."""
    return [datetime(d.year, d.month, d.day) for d in weekday_holidays()]


def b3_session_now(now: datetime | None = None) -> date:
    """The trading date B3 is on at ``now`` (default: now): today in São Paulo when it is a
    session, else the next session (on weekends and holidays B3 already shows the next
    session's data). The latest partition is always this date (``partitions.py``)."""
    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(B3_TIMEZONE))
    return b3_calendar().date_to_session(pd.Timestamp(moment.date()), direction="next").date()


def session_due(now: datetime, deadline: time) -> date:
    """The latest session whose portfolio should have landed by ``now``: today's once the
    São Paulo ``deadline`` has passed on a session day, else the session before. On weekends
    and holidays that is the last session, so a partition that exists early (the next
    session's, which B3 already shows) is never "late"."""
    local = now.astimezone(ZoneInfo(B3_TIMEZONE))
    cal = b3_calendar()
    today = pd.Timestamp(local.date())
    if cal.is_session(today):
        return local.date() if local.time() >= deadline else cal.previous_session(today).date()
    return cal.date_to_session(today, direction="previous").date()


def sessions_around(day: date) -> tuple[date, date]:
    """The sessions just before and just after ``day`` (for "not a B3 session" messages)."""
    cal, one_day = b3_calendar(), pd.Timedelta(days=1)
    ts = pd.Timestamp(day)
    return (cal.date_to_session(ts - one_day, direction="previous").date(),
            cal.date_to_session(ts + one_day, direction="next").date())


def not_a_session_message(day: date) -> str:
    """The one wording for a date that is no partition (CLI, schedules, docs quote it)."""
    before, after = sessions_around(day)
    return (f"{day.isoformat()} is not a B3 session ({day:%A}, a weekend or B3 holiday): the "
            f"sessions around it are {before.isoformat()} and {after.isoformat()}.")
