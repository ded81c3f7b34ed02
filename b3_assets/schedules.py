"""Every B3 trading day at 08:30 America/Sao_Paulo, that day's portfolio."""

from datetime import date

import dagster as dg

from b3_assets.assets import LANDING, RAW
from b3_assets.marts import MART_KEYS
from b3_assets.period_assets import LANDING_KEYS, RAW_KEYS
from b3_assets.sessions import B3_TIMEZONE, is_trading_day

#: Landing's freshness: the latest trading day's partition by 09:30 America/Sao_Paulo. On a
#: holiday the latest partition is the previous session's, so holidays need nothing.
landing_freshness_checks = dg.build_time_partition_freshness_checks(
    assets=[LANDING], deadline_cron="30 9 * * 1-5", timezone=B3_TIMEZONE
)
daily_ibov_job = dg.define_asset_job(
    "daily_ibov_portfolio",
    # Freshness is the freshness sensor's to evaluate, not the collecting run's.
    selection=dg.AssetSelection.assets(RAW, LANDING, *MART_KEYS.values())
    - dg.AssetSelection.checks(*landing_freshness_checks),
    description="Collect the day's portfolio from B3 and land it (the landing write starts "
    "the Glue job), then the marts computed from landing.",
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


period_portfolios_job = dg.define_asset_job(
    "period_portfolios",
    selection=dg.AssetSelection.assets(*RAW_KEYS.values(), *LANDING_KEYS.values()),
    description="Capture the period's theoretical portfolio and the next period's preview as B3 "
    "shows them today (separate from the day's portfolio: a failure here never blocks it).",
)


@dg.schedule(
    name="period_portfolios_0835",
    job=period_portfolios_job,
    cron_schedule="35 8 * * 1-5",
    execution_timezone=B3_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="08:35 America/Sao_Paulo on every B3 trading day: the period's views, which B3 "
    "replaces without keeping history (a day not captured is lost).",
)
def period_portfolios_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    return request_for(context.scheduled_execution_time.date())


def retry_request_for(instance: dg.DagsterInstance, day: date) -> dg.RunRequest | dg.SkipReason:
    """A second attempt at ``day`` when the 08:30 run failed and landing still lacks the date.

    B3 is often briefly down in the early morning; an hour later it usually answers. A date
    already landed, or never attempted (the daemon was down: see the gap audit), is left alone.
    """
    first = request_for(day)
    if isinstance(first, dg.SkipReason):
        return first
    key = day.isoformat()
    if key in instance.get_materialized_partitions(LANDING):
        return dg.SkipReason(f"{key} is already landed: no second attempt needed.")
    runs = instance.get_runs(
        dg.RunsFilter(job_name=daily_ibov_job.name, tags={"dagster/partition": key}), limit=1
    )
    if not runs or runs[0].status != dg.DagsterRunStatus.FAILURE:
        state = runs[0].status.value if runs else "no run"
        return dg.SkipReason(f"the first attempt at {key} did not fail ({state}): nothing to do.")
    return dg.RunRequest(run_key=f"{key}-second-attempt", partition_key=key)


@dg.schedule(
    name="daily_ibov_portfolio_second_attempt_0945",
    job=daily_ibov_job,
    cron_schedule="45 9 * * 1-5",
    execution_timezone=B3_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="09:45 America/Sao_Paulo: the day's portfolio again, only when the 08:30 run "
    "failed (B3 down for a while) and the date has not landed since.",
)
def second_attempt_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    return retry_request_for(context.instance, context.scheduled_execution_time.date())


freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=landing_freshness_checks,
    name="landing_freshness",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
