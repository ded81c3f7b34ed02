"""The sensor that turns finished Glue job runs into refined partitions in Dagster.

A tick lists Glue runs and handles each finished run once (the cursor remembers run ids): for
the dates it published that no Dagster run has recorded yet, it requests one
``refined_followup`` run per range, whose refined step records them (so each partition shows
that run and its job), evaluates the refined checks and draws the reports; for dates whose
run failed, one ``refined_checks`` run (Glue's error shows on glue_job_run_succeeded). The
daily run records its own date itself (``refined.py``), so locally it needs no follow-up.
At most ``MAX_RUNS_PER_TICK`` runs are handled per tick, so a backlog drains over ticks that
stay well inside Dagster's sensor timeout."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from b3_assets.keys import LANDING, MART_KEYS, REFINED, REPORT, REPORT_MARTS
from b3_assets.platform.glue_runs import FinishedRun, WatchCursor
from b3_assets.platform.instance import MAX_RUNTIME_S, RUN_MONITORING_POLL_S
from b3_assets.platform.resources import GlueJobResource
from b3_assets.portfolio.refined import GLUE_RUN_ID
from b3_assets.sessions import trading_days
from b3_assets.settings import Settings

MAX_RUNS_PER_TICK = 50
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: Older runs still "in progress" are taken for stuck (a dead worker), not busy: past run
#: monitoring's limit (instance.py) a healthy run has ended, and a killed one is failed.
BUSY_RUN_HORIZON = timedelta(seconds=MAX_RUNTIME_S + RUN_MONITORING_POLL_S)
#: The jobs whose runs (the whole job) write IBOV's landing files or refine them. Any other
#: run is busy only when its asset selection has landing (the UI's or the CLI's backfills).
LANDING_WRITER_JOBS = frozenset({"daily_ibov_portfolio", "reconcile_refined"})

refined_followup_job = dg.define_asset_job(
    "refined_followup",
    # The refined and marts steps evaluate the checks of the dates they record (checks.py).
    # The marts are in it because a landing write of any kind (the UI or the CLI on landing
    # alone, a gap fill) is followed by this run: its report of the marts needs them.
    selection=dg.AssetSelection.assets(
        REFINED, *MART_KEYS.values(), REPORT, REPORT_MARTS
    ).without_checks(),
    description="After Glue refined dates no run has recorded: record them on refined (its "
    "step evaluates the refined checks), compute their marts from landing (with the next "
    "landing date's, whose previous date may have changed) and draw both reports.",
)
refined_checks_job = dg.define_asset_job(
    "refined_checks",
    selection=dg.AssetSelection.checks_for_assets(REFINED),
    description="The refined checks of dates whose Glue run failed (the failure shows there).",
)


def already_recorded(instance: dg.DagsterInstance, run: FinishedRun) -> set[date]:
    """The dates of ``run`` whose refined materialization since it started names it (the
    daily run records its own Glue run: locally the refine runs inside its landing step)."""
    days = [d.isoformat() for d in run.refined_dates]
    if not days:
        return set()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=REFINED,
            asset_partitions=days,
            after_timestamp=run.started_on.timestamp() - 1,
        ),
        limit=len(days) * 4,
    ).records
    recorded = set()
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(GLUE_RUN_ID) if materialization else None
        text = getattr(value, "value", value)
        if isinstance(text, str) and run.run_id in text.split(", "):
            recorded.add(date.fromisoformat(str(record.partition_key)))
    return recorded


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


def followup_requests(
    runs: list[FinishedRun], recorded: dict[str, set[date]] | None = None
) -> list[dg.RunRequest]:
    """Record, check and report the dates each run published that no Dagster run recorded
    from it yet (``recorded``: run id -> dates); the checks alone for dates whose run failed."""
    done = recorded or {}
    published = {d for r in runs for d in r.refined_dates}
    succeeded = {d for r in runs for d in r.refined_dates if d not in done.get(r.run_id, set())}
    failed = {d for r in runs for d in r.dates} - published
    return range_requests(refined_followup_job.name, succeeded, runs) + range_requests(
        refined_checks_job.name, failed, runs
    )


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def writes_landing(run: dg.DagsterRun) -> bool:
    """Whether ``run`` may write landing or refine: a run of a subset by what it selected,
    else by its job (the freshness check, marts, reports, audit, indices and levels never do)."""
    if run.asset_selection is not None:
        return LANDING in run.asset_selection
    return run.job_name in LANDING_WRITER_JOBS


def busy_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress that may write landing or refine (:func:`writes_landing`), created
    within :data:`BUSY_RUN_HORIZON`."""
    # A run whose worker died stays STARTED until run monitoring notices: not for ever busy.
    recent = datetime.now(UTC) - BUSY_RUN_HORIZON
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, created_after=recent), limit=100)
    return [run for run in runs if writes_landing(run)]


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


def glue_job_runs_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor, ticking every ``B3_SENSOR_INTERVAL`` seconds of the settings given (the
    code location's, or a test's): nothing reads the environment when this module is imported."""
    return dg.SensorDefinition(
        name="glue_job_runs",
        evaluation_fn=glue_job_runs,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[refined_followup_job, refined_checks_job],
        description="Watches the Glue job: for each finished run (once), requests the run "
        "that records its dates on refined/b3_etl_soma_acao with their marts, checks and "
        "reports, unless a run recorded them already (the daily run records its own date); "
        f"the refined checks alone for dates that failed. At most {MAX_RUNS_PER_TICK} runs "
        "per tick.",
    )


def glue_job_runs(
    context: dg.SensorEvaluationContext, glue_job: GlueJobResource
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
    recorded = {run.run_id: already_recorded(context.instance, run) for run in runs}
    requests = followup_requests(runs, recorded)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"{len(runs)} Glue run(s) finished, already recorded by the run that "
            "landed their dates",
            cursor=cursor.to_json(),
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor.to_json())
