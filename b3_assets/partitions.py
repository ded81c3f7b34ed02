"""Dagster partitions: one per B3 trading session from 2023-01-02 on."""

from __future__ import annotations

from datetime import date

import dagster as dg

from b3_assets.sessions import B3_TIMEZONE, FIRST_TRADING_DATE, holiday_exclusions

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
