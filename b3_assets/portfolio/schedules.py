"""When the day's IBOV portfolio is collected, and whether it landed in time. On B3 trading
days, America/Sao_Paulo (weekends and B3 holidays are skipped, naming the holiday): 08:30 the
day's portfolio (``daily_ibov_portfolio``), 08:35 the period's views (``period_portfolios``),
09:45 a second attempt only when the 08:30 run failed and the date has not landed since; the
``landing_freshness`` sensor evaluates landing's ``freshness_check`` after the 09:30 deadline.
The other indices' and the levels' schedules live with their assets (``b3_assets/indices``,
``b3_assets/levels``), the gap audit's in ``audit.py``."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import dagster as dg

from b3_assets.keys import (
    LANDING,
    MART_KEYS,
    PERIOD_LANDING_KEYS,
    PERIOD_RAW_KEYS,
    RAW,
    REFINED,
    REPORT,
    REPORT_MARTS,
)
from b3_assets.partitions import b3_schedule, session_request
from b3_assets.platform.resources import LakeResource
from b3_assets.portfolio.enrichments import (
    FILL_CONFIG,
    FILL_CRON,
    FILL_SCHEDULE,
    FILL_TIMES,
    landing_entry,
    missing,
)
from b3_assets.sessions import B3_TIMEZONE, session_due
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import Lake

#: Landing's freshness: the latest session's partition by 09:30 America/Sao_Paulo.
FRESHNESS_DEADLINE = time(9, 30)


def is_landed(instance: dg.DagsterInstance, day: date) -> bool:
    """Whether landing has a materialization of ``day``'s partition (stored data, not a run)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LANDING, asset_partitions=[day.isoformat()]), limit=1
    )
    return bool(records.records)


@dg.asset_check(
    asset=LANDING,
    name="freshness_check",
    description="The latest B3 session's portfolio has landed by 09:30 São Paulo. Weekends and "
    "B3 holidays expect the session before them; the next session's partition, which exists "
    "early (B3 already shows it), is never late.",
)
def landing_freshness_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    due = session_due(datetime.now(UTC), FRESHNESS_DEADLINE)
    landed = is_landed(context.instance, due)
    return dg.AssetCheckResult(
        passed=landed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{due.isoformat()} has landed." if landed else (
            f"{due.isoformat()} has not landed by {FRESHNESS_DEADLINE:%H:%M} São Paulo. If B3 "
            "still serves it (it is today's session), materialize it (job "
            "daily_ibov_portfolio); otherwise import B3's CSV for that day (see the gap audit)."
        ),
        metadata={"expected_partition": due.isoformat(), "landed": landed},
    )


landing_freshness_checks = [landing_freshness_check]
freshness_job = dg.define_asset_job(
    "landing_freshness",
    selection=dg.AssetSelection.checks(landing_freshness_check),
    description="Evaluates landing's freshness_check (started by the landing_freshness sensor).",
)


def freshness_request(instance: dg.DagsterInstance, now: datetime) -> dg.RunRequest:
    """One evaluation when the due session's deadline passes, and one more when it lands: the
    run key (date and state) makes each happen once, whatever the sensor's interval."""
    due = session_due(now, FRESHNESS_DEADLINE)
    state = "landed" if is_landed(instance, due) else "missing"
    return dg.RunRequest(run_key=f"freshness-{due.isoformat()}-{state}")


daily_ibov_job = dg.define_asset_job(
    "daily_ibov_portfolio",
    # No check is planned in the collecting run: each step checks what it stored (checks.py),
    # so a failed fetch leaves every check at its last real evaluation; freshness is the
    # freshness sensor's to evaluate.
    selection=dg.AssetSelection.assets(
        RAW, LANDING, REFINED, *MART_KEYS.values(), REPORT, REPORT_MARTS
    ).without_checks(),
    description="Collect the day's portfolio from B3 and land it (the landing write starts "
    "the Glue job), the marts computed from landing; then record the refined date and draw "
    "the reports when Glue has refined it (locally at once; on AWS the sensor glue_job_runs "
    "does when the Glue run finishes).",
)


daily_ibov_schedule = b3_schedule(
    "daily_ibov_portfolio_0830",
    daily_ibov_job,
    "30 8 * * 1-5",
    "08:30 America/Sao_Paulo on every B3 trading day (B3 publishes the "
    "portfolio before the 10:00 open); B3 holidays are skipped.",
    lambda day, _context: session_request(day),
)


period_portfolios_job = dg.define_asset_job(
    "period_portfolios",
    selection=dg.AssetSelection.assets(*PERIOD_RAW_KEYS.values(), *PERIOD_LANDING_KEYS.values()),
    description="Capture the period's theoretical portfolio and the next period's preview as B3 "
    "shows them today (separate from the day's portfolio: a failure here never blocks it).",
)


period_portfolios_schedule = b3_schedule(
    "period_portfolios_0835",
    period_portfolios_job,
    "35 8 * * 1-5",
    "08:35 America/Sao_Paulo on every B3 trading day: the period's views, which B3 "
    "replaces without keeping history (a day not captured is lost).",
    lambda day, _context: session_request(day),
)


def retry_request_for(instance: dg.DagsterInstance, day: date) -> dg.RunRequest | dg.SkipReason:
    """A second attempt at ``day`` when the 08:30 run failed and landing still lacks the date.

    B3 is often briefly down in the early morning; an hour later it usually answers. A date
    already landed, or never attempted (the daemon was down: see the gap audit), is left alone.
    """
    first = session_request(day)
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


second_attempt_schedule = b3_schedule(
    "daily_ibov_portfolio_second_attempt_0945",
    daily_ibov_job,
    "45 9 * * 1-5",
    "09:45 America/Sao_Paulo: the day's portfolio again, only when the 08:30 run "
    "failed (B3 down for a while) and the date has not landed since.",
    lambda day, context: retry_request_for(context.instance, day),
)


def fill_request_for(
    instance: dg.DagsterInstance, lake: Lake, day: date, at: time
) -> dg.RunRequest | dg.SkipReason:
    """The daily job for ``day`` with the raw step only filling in what the day landed without
    (b3_assets/portfolio/enrichments.py): when its landing was built from a payload recording a
    missing enrichment. B3 serves only the day's views, so only the day itself is asked; ``at`` (the
    tick's time) makes one run per tick."""
    first = session_request(day)
    if isinstance(first, dg.SkipReason):
        return first
    key = day.isoformat()
    if not is_landed(instance, day):
        return dg.SkipReason(f"{key} has not landed: nothing to fill in (landing it is the "
                             "daily runs' job).")
    lacking = missing(landing_entry(RawArchive(lake), day))
    if not lacking:
        return dg.SkipReason(f"{key} landed with every enrichment: nothing to fill in.")
    return dg.RunRequest(
        run_key=f"{key}-{FILL_CONFIG}-{at:%H%M}",
        partition_key=key,
        run_config={"ops": {"raw__ibov_portfolio": {"config": {FILL_CONFIG: True}}}},
        tags={"b3/fill_enrichments": ", ".join(sorted(lacking))},
    )


@dg.schedule(
    name=FILL_SCHEDULE,
    job=daily_ibov_job,
    cron_schedule=FILL_CRON,
    execution_timezone=B3_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"{FILL_TIMES}: when the day landed without an enrichment (B3's sector view "
    "failed, timed out or had no labels: the plain portfolio landed with null sectors), asks "
    "B3 again and, when it has it now, rebuilds landing with the same rows plus it (and "
    "everything after landing follows). Nothing runs past the raw step otherwise.",
)
def enrichments_schedule(
    context: dg.ScheduleEvaluationContext, lake: LakeResource
) -> dg.RunRequest | dg.SkipReason:
    when = context.scheduled_execution_time.astimezone(ZoneInfo(B3_TIMEZONE))
    return fill_request_for(context.instance, lake.get(), when.date(), when.time())


@dg.sensor(
    name="landing_freshness",
    job=freshness_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates landing's freshness_check after each session's 09:30 deadline and "
    "again once that session lands (never on weekends or holidays' own account).",
)
def freshness_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest:
    return freshness_request(context.instance, datetime.now(UTC))
