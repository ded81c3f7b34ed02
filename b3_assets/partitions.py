"""The B3 calendar in Dagster: one partition per trading session from 2023-01-02 on, and how
every schedule asks for a session's run (São Paulo time, a skip naming a weekend or holiday)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.sessions import (
    B3_TIMEZONE,
    FIRST_TRADING_DATE,
    holiday_exclusions,
    is_trading_day,
    not_a_session_message,
)

#: Saturday and Sunday ticks, excluded from the every-day cron below.
WEEKEND_TICKS = ("0 0 * * 6", "0 0 * * 0")

#: One partition per B3 session, and the latest one is always the session B3 serves now
#: (:func:`b3_assets.sessions.b3_session_now`): today from midnight on a session day, and the
#: NEXT session all through a weekend or holiday (B3 already shows its portfolio then).
#:
#: Why an every-day cron with the weekends excluded, not ``1-5``: Dagster's ``end_offset=1``
#: adds the partition after the window that contains *now*. With a weekday cron Friday's window
#: runs to Monday 00:00, so all weekend the latest partition stayed Friday's, which B3 no longer
#: serves. With every day ticking, Saturday and Sunday fall in their own (excluded) windows and
#: the partition after them, Monday's, exists from Saturday 00:00. Weekday holidays were already
#: excluded ticks and behave the same way. ``test_calendar`` pins the rule hour by hour.
trading_day_partitions = dg.TimeWindowPartitionsDefinition(
    start=FIRST_TRADING_DATE.isoformat(),
    fmt="%Y-%m-%d",
    cron_schedule="0 0 * * *",
    timezone=B3_TIMEZONE,
    end_offset=1,
    exclusions=[*WEEKEND_TICKS, *holiday_exclusions()],
)


def partition_dates(context: dg.AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(k) for k in context.partition_keys]


def latest_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: set[str] | None = None
) -> dict[str, int]:
    """Partition key -> storage id of its latest materialization of ``key`` (one indexed
    query): what "newer than" means between assets of the same date."""
    return dict(
        instance.get_latest_storage_id_by_partition(
            key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions
        )
    )


def session_request(day: date, run_key: str | None = None) -> dg.RunRequest | dg.SkipReason:
    """The run of ``day``'s partition on a session (``run_key``: the date by default), a skip
    naming the weekend or holiday otherwise."""
    if not is_trading_day(day):
        return dg.SkipReason(f"{not_a_session_message(day)} Nothing to collect.")
    return dg.RunRequest(run_key=run_key or day.isoformat(), partition_key=day.isoformat())


def b3_schedule(
    name: str, job: dg.UnresolvedAssetJobDefinition, cron: str, description: str,
    request: Callable[[date, dg.ScheduleEvaluationContext], Any],
) -> dg.ScheduleDefinition:
    """A schedule of ``job`` at ``cron`` São Paulo time, running from the start: a tick on a
    weekend or B3 holiday skips naming the day (:func:`session_request`); on a session it asks
    ``request(date of the tick, context)`` for its runs or the reason to skip. No request
    reads the instance on a day that is no session, so a tick evaluated without one (a test,
    a preview) works on any day."""

    @dg.schedule(name=name, job=job, cron_schedule=cron, execution_timezone=B3_TIMEZONE,
                 default_status=dg.DefaultScheduleStatus.RUNNING, description=description)
    def _schedule(context: dg.ScheduleEvaluationContext) -> Any:
        day = context.scheduled_execution_time.date()
        first = session_request(day)
        return first if isinstance(first, dg.SkipReason) else request(day, context)

    return _schedule
