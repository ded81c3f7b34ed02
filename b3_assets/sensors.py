"""The sensor that turns finished Glue job runs into refined partitions in Dagster.

A tick only lists Glue runs: it records each finished run once (the cursor remembers run ids)
as a materialization of each date it refined, and requests one run that evaluates the
refined checks (and, for refined dates, draws the report) over those dates. At most
``MAX_RUNS_PER_TICK`` runs are handled per tick, so a backlog drains over ticks that stay
well inside Dagster's sensor timeout."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from b3_assets.assets import REFINED
from b3_assets.checks import run_metadata
from b3_assets.glue_runs import FinishedRun, WatchCursor
from b3_assets.report_assets import REPORT, REPORT_MARTS
from b3_assets.resources import GlueJobResource, LakeResource
from b3_assets.sessions import trading_days
from b3_assets.settings import Settings
from glue.layout import refined_date_prefix

MAX_RUNS_PER_TICK = 50
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: Older runs still "in progress" are taken for stuck (a dead worker), not busy.
BUSY_RUN_HORIZON = timedelta(hours=6)

refined_followup_job = dg.define_asset_job(
    "refined_followup",
    selection=dg.AssetSelection.checks_for_assets(REFINED)
    | dg.AssetSelection.assets(REPORT, REPORT_MARTS),
    description="After Glue refined dates: the refined checks and the reports of those dates "
    "(the marts were computed from landing by the collecting run).",
)
refined_checks_job = dg.define_asset_job(
    "refined_checks",
    selection=dg.AssetSelection.checks_for_assets(REFINED),
    description="The refined checks of dates whose Glue run failed (the failure shows there).",
)


def success_metadata(run: FinishedRun, lake_uri: str, console_url: str | None) -> dict[str, Any]:
    meta = run_metadata(run)
    meta["lake_uri"] = dg.MetadataValue.url(lake_uri)
    if run.dpu_seconds is not None:
        meta["dpu_seconds"] = round(run.dpu_seconds, 1)
    if len(run.dates) > 1:
        meta["dates_in_run"] = len(run.dates)
    if console_url:
        meta["glue_console"] = dg.MetadataValue.url(console_url)
    return meta


def materializations(
    runs: list[FinishedRun], lake: LakeResource, glue_job: GlueJobResource
) -> list[dg.AssetMaterialization]:
    """One refined materialization per date each run published: every date of a SUCCEEDED
    run, and the dates a failed run of many dates published anyway (no I/O beyond names)."""
    the_lake = lake.get()
    return [
        dg.AssetMaterialization(
            asset_key=REFINED,
            partition=day.isoformat(),
            metadata=success_metadata(
                run, the_lake.uri(refined_date_prefix(day)), glue_job.console_url(run.run_id)
            ),
            description=f"Glue job run {run.run_id}"
            + ("" if run.succeeded else " (this date was published; others of the run failed)"),
        )
        for run in runs
        for day in run.refined_dates
    ]


def contiguous_ranges(days: set[date]) -> list[tuple[date, date]]:
    """``days`` as runs of consecutive B3 sessions, so a range never covers a date left out."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(days):
        if ranges and len(trading_days(ranges[-1][1], day)) == 2:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def range_requests(job: str, days: set[date], runs: list[FinishedRun]) -> list[dg.RunRequest]:
    """One run per range of ``days``, keyed by the Glue runs it follows (requested once)."""
    return [
        dg.RunRequest(
            job_name=job,
            run_key=f"{job}-{first}-{last}-{runs[0].run_id}-{runs[-1].run_id}-{len(runs)}",
            tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
        )
        for first, last in contiguous_ranges(days)
    ]


def followup_requests(runs: list[FinishedRun]) -> list[dg.RunRequest]:
    """Checks and report for refined dates; the checks alone for dates whose run failed."""
    succeeded = {d for r in runs for d in r.refined_dates}
    failed = {d for r in runs for d in r.dates} - succeeded
    return range_requests(refined_followup_job.name, succeeded, runs) + range_requests(
        refined_checks_job.name, failed, runs
    )


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def busy_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress that may write landing or refine (the checks and reports do not),
    created within :data:`BUSY_RUN_HORIZON`."""
    quiet = {refined_followup_job.name, refined_checks_job.name}
    # A run whose worker died stays STARTED until run monitoring notices: not for ever busy.
    recent = datetime.now(UTC) - BUSY_RUN_HORIZON
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, created_after=recent), limit=100)
    return [run for run in runs if run.job_name not in quiet]


def dates_being_landed(instance: dg.DagsterInstance) -> set[date]:
    """Dates a collecting run still in progress is landing (its partition or range).

    Locally the refine runs inside the landing step: a Glue run can finish before Dagster
    records the landing materialization that caused it. Recording refined only once that run
    is over keeps every refined materialization newer than its landing write."""
    busy: set[date] = set()
    for run in busy_runs(instance):
        tags = run.tags
        first = tags.get(RANGE_START) or tags.get("dagster/partition")
        last = tags.get(RANGE_END) or first
        if first and last:
            busy.update(trading_days(date.fromisoformat(first), date.fromisoformat(last)))
    return busy


@dg.sensor(
    name="glue_job_runs",
    minimum_interval_seconds=Settings.from_env().sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[refined_followup_job, refined_checks_job],
    description="Watches the Glue job and records each finished run on "
    "refined/b3_etl_soma_acao (once), then runs the refined checks and the report of those "
    f"dates. At most {MAX_RUNS_PER_TICK} runs per tick.",
)
def glue_job_runs(
    context: dg.SensorEvaluationContext, glue_job: GlueJobResource, lake: LakeResource
) -> dg.SensorResult:
    busy = dates_being_landed(context.instance)
    runs, cursor = glue_job.watcher().poll(
        WatchCursor.from_json(context.cursor),
        MAX_RUNS_PER_TICK,
        defer=lambda run: bool(busy.intersection(run.dates)),
    )
    runs = [r for r in runs if r.dates]
    for run in runs:
        if not run.succeeded:
            context.log.error(
                f"Glue job run {run.run_id} for {', '.join(map(str, run.dates))} "
                f"{run.state}: {run.error_message}"
            )
    if not runs:
        return dg.SensorResult(
            skip_reason="no Glue job run finished since the last tick", cursor=cursor.to_json()
        )
    return dg.SensorResult(
        asset_events=materializations(runs, lake, glue_job),
        run_requests=followup_requests(runs),
        cursor=cursor.to_json(),
    )
