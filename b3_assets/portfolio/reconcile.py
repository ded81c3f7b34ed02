"""Nothing lost: landing dates whose refine never completed are found and refined again.

A landing write starts its refine through an event (S3 → EventBridge → Lambda, or the local
callback). An event lost to the dead-letter queue, a process killed between the write and its
refine, or a failed run leaves landing newer than refined, and the next landing run catches
up only the next morning. This sensor looks every hour: each landing date's published refine
records the landing files it was built from (``_current.json``), so a date is stale when
those differ from the files now (``GlueJobResource.pending_refines``); it then requests one
``reconcile_refined`` run that refines them, oldest first, and the ``glue_job_runs`` sensor
records the result as usual. Dates given up after repeated failed runs (glue/attempts.py)
are never requested again until their landing file changes; each tick names them and says
what to do (:func:`given_up_message`), in its log and as the skip reason."""

from collections.abc import Mapping
from datetime import date

import dagster as dg

from b3_assets.platform.resources import GlueJobResource, failed_runs_failure
from b3_assets.portfolio.sensors import busy_runs

#: How often the lake is compared with what was refined (a listing and a small read per date).
RECONCILE_INTERVAL_S = 3600


class ReconcileConfig(dg.Config):
    dates: list[str]


@dg.op(
    description="Refines the stale landing dates the sensor found that are still stale, "
    "oldest first, one Glue run per 250 dates: locally now; on AWS by starting Glue runs "
    "(their outcome is recorded by the glue_job_runs sensor)."
)
def refine_stale_dates(
    context: dg.OpExecutionContext, config: ReconcileConfig, glue_job: GlueJobResource
) -> None:
    requested = [date.fromisoformat(d) for d in config.dates]
    # Asked again now: a landing run since the tick may have refined some (or, on AWS, a Glue
    # run may be working on them), and refining those again would only duplicate work.
    still = set(glue_job.pending_refines())
    days = [d for d in requested if d in still]
    done = [d.isoformat() for d in requested if d not in still]
    if done:
        context.log.info(f"already current or being refined since the sensor's tick: {done}")
    if not days:
        return
    context.log.info(f"refining {len(days)} stale date(s): {[d.isoformat() for d in days]}")
    failed = glue_job.refine(days)
    if failed:
        raise failed_runs_failure("refining stale dates failed:", failed)


@dg.job(
    name="reconcile_refined",
    description="Refines landing dates whose refine is missing or stale (a lost event, a "
    "killed run, a gap filled before them). Requested by the refined_reconciliation sensor.",
)
def reconcile_refined_job() -> None:
    refine_stale_dates()


def given_up_message(given_up: Mapping[date, str]) -> str | None:
    """What an operator must know about the dates the reconciliation no longer refines.

    A date whose Glue runs failed too often (glue/attempts.py: back-off keyed on the landing
    file's ETag, then given up) is left out of every reconcile run so it cannot cost a Glue
    run an hour forever; saying so each hour keeps it from being skipped in silence. Its
    landing file is what failed: fixing it changes the ETag, and the next tick refines it."""
    if not given_up:
        return None
    lines = [f"{d.isoformat()}: {why}" for d, why in sorted(given_up.items())]
    return (
        f"{len(given_up)} landing date(s) are given up after repeated failed Glue runs and "
        "will not be refined again until their landing file changes:\n  "
        + "\n  ".join(lines)
        + "\nFix each date's landing file (read the Glue error above, then re-materialize "
        "landing/ibov_portfolio for the date, or raw/ibov_portfolio first if B3's payload was "
        "wrong): the new file's ETag makes the date due again, and this sensor requests its "
        "refine on its next tick."
    )


def reconcile_request(pending: list[date]) -> dg.RunRequest:
    texts = [d.isoformat() for d in pending]
    return dg.RunRequest(
        run_config={"ops": {"refine_stale_dates": {"config": {"dates": texts}}}},
        tags={"b3/stale_dates": f"{texts[0]}…{texts[-1]} ({len(texts)})"},
    )


@dg.sensor(
    name="refined_reconciliation",
    minimum_interval_seconds=RECONCILE_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=reconcile_refined_job,
    description="Every hour: finds landing dates whose refine is missing or stale (lost "
    "events, killed runs, gap fills) and requests one reconcile_refined run for them; names "
    "the dates given up after repeated failed Glue runs and what to do about them.",
)
def refined_reconciliation(
    context: dg.SensorEvaluationContext, glue_job: GlueJobResource
) -> dg.SensorResult:
    busy = busy_runs(context.instance)
    if busy:
        return dg.SensorResult(
            skip_reason=f"{len(busy)} run(s) are landing or refining; checking after them"
        )
    pending = glue_job.pending_refines()
    given_up = given_up_message(glue_job.given_up_refines())
    if given_up:
        context.log.warning(given_up)
    if not pending:
        return dg.SensorResult(skip_reason=given_up or "every landing date's refine is current")
    context.log.warning(
        f"{len(pending)} landing date(s) were never refined as they are now: "
        f"{', '.join(d.isoformat() for d in pending)}; requesting their refine"
    )
    return dg.SensorResult(run_requests=[reconcile_request(pending)])
