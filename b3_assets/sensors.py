"""The sensor that turns finished Glue job runs into refined partitions in Dagster.

Each run is reported once (the cursor remembers run ids): a SUCCEEDED run becomes a
materialization of its date with the run's metadata and the refined checks; a failed run
becomes a failed ``glue_job_run_succeeded`` check carrying Glue's error message."""

from typing import Any

import dagster as dg

from b3_assets.assets import REFINED
from b3_assets.checks import glue_run_evaluation, refined_evaluations, run_metadata
from b3_assets.glue_runs import FinishedRun, GlueJobWatcher, WatchCursor
from b3_assets.lake import Lake
from b3_assets.report_assets import REPORT
from b3_assets.settings import Settings
from glue.layout import refined_date_prefix


def console_url(settings: Settings, run: FinishedRun) -> str | None:
    if settings.env != "aws":
        return None
    r = settings.aws_region
    return (
        f"https://{r}.console.aws.amazon.com/gluestudio/home?region={r}#/job/"
        f"{settings.glue_job_name}/run/{run.run_id}"
    )


def success_metadata(run: FinishedRun, lake: Lake, settings: Settings) -> dict[str, Any]:
    assert run.data_carteira is not None
    prefix = refined_date_prefix(run.data_carteira)
    issuers = sorted(
        {k.split("Acao=", 1)[1].split("/", 1)[0] for k in lake.list_keys(prefix) if "Acao=" in k}
    )
    meta = run_metadata(run)
    meta.update(
        {
            "dagster/row_count": len(issuers),
            "issuers": len(issuers),
            "issuer_roots": ", ".join(issuers),
            "lake_uri": dg.MetadataValue.url(lake.uri(prefix)),
        }
    )
    if run.dpu_seconds is not None:
        meta["dpu_seconds"] = round(run.dpu_seconds, 1)
    url = console_url(settings, run)
    if url:
        meta["glue_console"] = dg.MetadataValue.url(url)
    return meta


def report_finished_runs(
    runs: list[FinishedRun], lake: Lake, catalog: Any, settings: Settings, log: Any = None
) -> list[Any]:
    """Asset events for finished runs (pure enough to test without a sensor context)."""
    events: list[Any] = []
    for run in runs:
        if run.data_carteira is None:
            continue
        day = run.data_carteira
        if run.succeeded:
            events.append(
                dg.AssetMaterialization(
                    asset_key=REFINED,
                    partition=day.isoformat(),
                    metadata=success_metadata(run, lake, settings),
                    description=f"Glue job run {run.run_id}",
                )
            )
            events.append(glue_run_evaluation(day, True, run_metadata(run)))
            try:
                events.extend(refined_evaluations(lake, catalog, day))
            except Exception as exc:  # the checks must not hide the materialization
                if log:
                    log.warning(f"refined checks of {day} could not run: {exc}")
        else:
            events.append(glue_run_evaluation(day, False, run_metadata(run)))
            if log:
                log.error(f"Glue job run {run.run_id} for {day} {run.state}: {run.error_message}")
    return events


def report_requests(runs: list[FinishedRun]) -> list[dg.RunRequest]:
    """The report follows each refined date: one run per SUCCEEDED Glue run."""
    return [
        dg.RunRequest(
            asset_selection=[REPORT],
            partition_key=run.data_carteira.isoformat(),
            run_key=f"report-{run.run_id}",
        )
        for run in runs
        if run.succeeded and run.data_carteira is not None
    ]


def build_glue_runs_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="glue_job_runs",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"glue_watcher", "lake", "catalog"},
        asset_selection=[REPORT],
        description=f"Watches Glue job {settings.glue_job_name} and reports each finished run "
        "on refined/b3_etl_soma_acao (once); a refined date then gets its "
        "report/ibov_composition.",
    )
    def glue_job_runs(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        watcher: GlueJobWatcher = context.resources.glue_watcher
        runs, cursor = watcher.poll(WatchCursor.from_json(context.cursor))
        events = report_finished_runs(
            runs, context.resources.lake, context.resources.catalog, settings, context.log
        )
        if not runs:
            return dg.SensorResult(
                skip_reason="no Glue job run finished since the last tick", cursor=cursor.to_json()
            )
        return dg.SensorResult(
            asset_events=events, run_requests=report_requests(runs), cursor=cursor.to_json()
        )

    return glue_job_runs
