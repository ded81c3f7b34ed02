"""Asset checks on landing and refined; the rules live in ``quality``.

Refined is written by Glue, not by a Dagster step, so its checks are also evaluated by the
sensor when it reports a run (and can be run from the UI)."""

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.assets import LANDING, REFINED
from b3_assets.catalog import QueryEngine
from b3_assets.glue_runs import TERMINAL_STATES, FinishedRun, GlueJobWatcher, finished_run
from b3_assets.lake import Lake
from b3_assets.landing import read_landing
from b3_assets.partitions import trading_days
from b3_assets.quality import CheckOutcome, landing_checks, refined_checks

LANDING_CHECKS = (
    "at_least_50_constituents",
    "unique_codes",
    "quantities_add_up_to_header_total",
    "participations_add_up_to_100",
)
REFINED_CHECKS = ("one_row_per_issuer", "participations_add_up_to_100")
REFINED_ROWS_SQL = (
    "SELECT Acao, participacao_total_pct FROM b3_etl_soma_acao WHERE DataCarteira = ? ORDER BY Acao"
)


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, int | bool) else dg.MetadataValue.text(str(v)))
        for k, v in values.items()
    }


def _over_dates(outcomes: dict[str, CheckOutcome]) -> dg.AssetCheckResult:
    """One result for the run's dates (a backfill runs many at once): passes if all do."""
    failed = {d: meta for d, (ok, meta) in outcomes.items() if not ok}
    if len(outcomes) == 1:
        ((day, (ok, meta)),) = outcomes.items()
        return dg.AssetCheckResult(passed=ok, metadata={"data_carteira": day, **_metadata(meta)})
    return dg.AssetCheckResult(
        passed=not failed,
        metadata={
            "dates_checked": len(outcomes),
            "failed": dg.MetadataValue.json(failed) if failed else "none",
        },
    )


def refined_rows(catalog: QueryEngine, day: date) -> list[dict[str, Any]]:
    return catalog.query(REFINED_ROWS_SQL, [day.isoformat()]).as_dicts()


def _landing_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=LANDING,
        name=name,
        partitions_def=trading_days,
        required_resource_keys={"lake"},
        description=f"Landing rule: {name.replace('_', ' ')}.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lake = context.resources.lake
        return _over_dates(
            {
                k: landing_checks(read_landing(lake, date.fromisoformat(k)))[name]
                for k in context.partition_keys
            }
        )

    return _check


def _refined_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=REFINED,
        name=name,
        partitions_def=trading_days,
        required_resource_keys={"lake", "catalog"},
        description=f"Refined rule: {name.replace('_', ' ')}.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        r = context.resources
        return _over_dates(
            {
                k: refined_checks(
                    refined_rows(r.catalog, date.fromisoformat(k)),
                    read_landing(r.lake, date.fromisoformat(k)),
                )[name]
                for k in context.partition_keys
            }
        )

    return _check


def refined_evaluations(
    lake: Lake, catalog: QueryEngine, day: date
) -> list[dg.AssetCheckEvaluation]:
    """The refined checks of one date as evaluations the sensor reports with the run."""
    outcomes = refined_checks(refined_rows(catalog, day), read_landing(lake, day))
    return [
        dg.AssetCheckEvaluation(
            asset_key=REFINED,
            check_name=name,
            passed=ok,
            metadata=_metadata(meta),
            partition=day.isoformat(),
        )
        for name, (ok, meta) in outcomes.items()
    ]


GLUE_RUN_CHECK = "glue_job_run_succeeded"


def glue_run_evaluation(
    day: date, passed: bool, metadata: dict[str, Any]
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=REFINED,
        check_name=GLUE_RUN_CHECK,
        passed=passed,
        metadata=_metadata(metadata),
        partition=day.isoformat(),
    )


def latest_run_of(watcher: GlueJobWatcher, day: date) -> FinishedRun | None:
    for run in watcher.runs():
        if run["JobRunState"] in TERMINAL_STATES and (
            (run.get("Arguments") or {}).get("--data_carteira") == day.isoformat()
        ):
            return finished_run(run)
    return None


def run_metadata(run: FinishedRun) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "glue_job_run_id": run.run_id,
        "state": run.state,
        "duration_s": round(run.execution_s, 3),
    }
    if run.error_message:
        meta["error_message"] = run.error_message
    return meta


@dg.asset_check(
    asset=REFINED,
    name=GLUE_RUN_CHECK,
    partitions_def=trading_days,
    required_resource_keys={"glue_watcher"},
    description="The latest Glue job run of the date succeeded (a failed run "
    "shows Glue's error message here). The sensor reports it with each run.",
)
def glue_job_run_succeeded(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    outcomes: dict[str, CheckOutcome] = {}
    for key in context.partition_keys:
        run = latest_run_of(context.resources.glue_watcher, date.fromisoformat(key))
        outcomes[key] = (
            (run is not None and run.succeeded),
            run_metadata(run) if run else {"state": "no run found"},
        )
    return _over_dates(outcomes)


landing_checks_defs: list[Callable[..., Any]] = [_landing_check(n) for n in LANDING_CHECKS]
refined_checks_defs: list[Callable[..., Any]] = [
    *(_refined_check(n) for n in REFINED_CHECKS),
    glue_job_run_succeeded,
]
