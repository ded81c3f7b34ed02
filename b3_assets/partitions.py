"""Dagster partitions: one per B3 trading session from 2023-01-02 on."""

from __future__ import annotations

from datetime import date

import dagster as dg

from b3_assets.sessions import B3_TIMEZONE, FIRST_TRADING_DATE, holiday_exclusions

#: Weekdays minus B3 holidays. ``end_offset=1`` makes today's partition exist from midnight:
#: B3 publishes the session's portfolio before the open (and on weekends the next one's).
trading_day_partitions = dg.TimeWindowPartitionsDefinition(
    start=FIRST_TRADING_DATE.isoformat(),
    fmt="%Y-%m-%d",
    cron_schedule="0 0 * * 1-5",
    timezone=B3_TIMEZONE,
    end_offset=1,
    exclusions=holiday_exclusions(),
)


def partition_dates(context: dg.AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(k) for k in context.partition_keys]
