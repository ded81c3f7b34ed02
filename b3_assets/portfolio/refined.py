"""refined/b3_etl_soma_acao in Dagster: what the Glue job published, recorded by a run.

The Glue job (DuckDB locally) writes the refined dates; the landing write starts it. This
asset's step never starts Glue: it records, for each date of its run, the Glue run whose
output is current (``refined/DataCarteira=D/_current.json`` names the run and the landing
bytes it was built from), with that run's metadata, and evaluates the refined checks of those
dates in the same run. So each refined partition shows the Dagster run and job that recorded
it, and its checks target that materialization.

Two runs record: the daily run, right after landing (locally the refine ran inside the landing
step, so the day's report follows in the same run); and ``refined_followup``, which the
``glue_job_runs`` sensor requests for Glue runs no run has recorded yet (on AWS the daily
run's Glue run finishes a minute or two later; backfills; the hourly reconciliation). A date
whose landing file Glue has not refined yet is left out, named in the log, and no output is
yielded (the report of the run is skipped); its Glue run's follow-up records it."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.keys import LANDING, REFINED
from b3_assets.partitions import partition_dates, trading_day_partitions
from b3_assets.platform.check_results import evaluated_by_own_step
from b3_assets.platform.glue_runs import FinishedRun
from b3_assets.platform.resources import CatalogResource, GlueJobResource, LakeResource
from b3_assets.portfolio.assets import refined_table_schema
from b3_assets.portfolio.checks import (
    REFINED_CHECK_KEYS,
    refined_evaluations,
    run_metadata,
)
from glue.layout import REFINED_PREFIX, refined_date_prefix

#: The metadata key naming the Glue run(s) a materialization records (the sensor reads it).
GLUE_RUN_ID = "glue_job_run_id"


def recorded_metadata(
    days: list[date],
    publishers: dict[date, str],
    runs: dict[str, FinishedRun],
    lake_uri: str,
    console_url: str | None,
) -> dict[str, Any]:
    """What a refined materialization shows: the Glue run of its dates (or each run of a
    range), its state, duration, DPU-seconds and console link (AWS), where the data is."""
    ids = sorted({publishers[d] for d in days})
    found = [runs[i] for i in ids if i in runs]
    meta: dict[str, Any] = {GLUE_RUN_ID: ", ".join(ids)}
    if len(found) == 1 and len(ids) == 1:
        meta.update(run_metadata(found[0]))
        if len(found[0].dates) > 1:
            meta["dates_in_run"] = len(found[0].dates)
    if any(not r.succeeded for r in found):
        meta["run_outcome"] = "these dates were published; others of the run failed"
    elif found:
        meta["duration_s"] = round(sum(r.execution_s for r in found), 3)
    dpu = [r.dpu_seconds for r in found if r.dpu_seconds is not None]
    if dpu:
        meta["dpu_seconds"] = round(sum(dpu), 1)
    meta["lake_uri"] = dg.MetadataValue.url(lake_uri)
    if console_url:
        meta["glue_console"] = dg.MetadataValue.url(console_url)
    if len(days) > 1:
        meta["dates"] = len(days)
    return meta


@dg.asset(
    key=REFINED,
    deps=[LANDING],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    tags={"layer": "refined"},
    kinds={"glue", "spark", "duckdb"},
    # In the daily run, right after landing (before the marts): what the report waits for.
    op_tags={"dagster/priority": "1"},
    description="**Refined** b3_etl_soma_acao: one row per issuer per date, written by the "
    "Glue job (DuckDB locally) that the landing write starts. Materializing it records the "
    "Glue run that published each date (it never starts Glue) and evaluates the refined "
    "checks; the daily run does so after landing, the sensor glue_job_runs requests it for "
    "any other Glue run. refined/DataCarteira=…/Acao=…/, table b3_etl_soma_acao.",
    metadata={"dagster/column_schema": refined_table_schema()},
)
def refined_b3_etl_soma_acao(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    catalog: CatalogResource,
    glue_job: GlueJobResource,
) -> Iterator[dg.AssetCheckEvaluation | dg.AssetMaterialization | dg.MaterializeResult]:
    days = partition_dates(context)
    publishers = glue_job.current_publications(days)
    recorded = [d for d in days if d in publishers]
    waiting = [d for d in days if d not in publishers]
    if waiting:
        context.log.info(
            f"{len(waiting)} date(s) not refined from their current landing file yet: "
            f"{', '.join(map(str, waiting[:20]))}{' …' if len(waiting) > 20 else ''}. Their "
            "Glue run is recorded when it finishes (sensor glue_job_runs); a failed one shows "
            "on the date's glue_job_run_succeeded check."
        )
    if not recorded:
        return
    runs = glue_job.watcher().find(set(publishers.values()))
    the_lake = lake.get()

    def metadata(of: list[date]) -> dict[str, Any]:
        one = len(of) == 1
        uri = the_lake.uri(refined_date_prefix(of[0]) if one else REFINED_PREFIX + "/")
        console = glue_job.console_url(publishers[of[0]]) if one else None
        return recorded_metadata(of, publishers, runs, uri, console)

    if not waiting:
        # One output for the run's dates: Dagster records it for each, and the report follows.
        yield dg.MaterializeResult(metadata=metadata(recorded))
    else:
        for day in recorded:
            yield dg.AssetMaterialization(
                asset_key=REFINED, partition=day.isoformat(), metadata=metadata([day])
            )
    # The refined checks of the dates recorded, after their materializations (as a check
    # step would), on the rows the catalog serves now.
    if not evaluated_by_own_step(context, REFINED_CHECK_KEYS):
        yield from refined_evaluations([d.isoformat() for d in recorded], lake, catalog, glue_job)
