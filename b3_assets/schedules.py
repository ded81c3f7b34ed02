"""Every B3 trading day at 08:30 America/Sao_Paulo, that day's portfolio."""

from datetime import date

import dagster as dg

from b3_assets.assets import LANDING, RAW
from b3_assets.sessions import B3_TIMEZONE, is_trading_day

daily_ibov_job = dg.define_asset_job(
    "daily_ibov_portfolio",
    selection=dg.AssetSelection.assets(RAW, LANDING),
    description="Collect the day's portfolio from B3 and land it (the landing write starts "
    "the Glue job).",
)


def request_for(day: date) -> dg.RunRequest | dg.SkipReason:
    """The run for ``day``: its partition on a session, a skip naming the holiday otherwise."""
    if not is_trading_day(day):
        return dg.SkipReason(
            f"{day.isoformat()} is not a B3 trading session (weekend or "
            "B3 holiday): nothing to collect."
        )
    return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())


@dg.schedule(
    name="daily_ibov_portfolio_0830",
    job=daily_ibov_job,
    cron_schedule="30 8 * * 1-5",
    execution_timezone=B3_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="08:30 America/Sao_Paulo on every B3 trading day (B3 publishes the "
    "portfolio before the 10:00 open); B3 holidays are skipped.",
)
def daily_ibov_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return request_for(context.scheduled_execution_time.date())
