"""Nothing lost: landing dates whose refine never completed are found and refined again.

A landing write starts its refine through an event (S3 → EventBridge → Lambda, or the local
callback). An event lost to the dead-letter queue, a process killed between the write and its
refine, or a failed run leaves landing newer than refined, and the next landing run catches
up only the next morning. This sensor looks every hour: each landing date's published refine
records the landing files it was built from (``_current.json``), so a date is stale when
those differ from the files now (``GlueJobResource.pending_refines``); it then requests one
``reconcile_refined`` run that refines them, oldest first, and the ``glue_job_runs`` sensor
records the result as usual."""

from datetime import date

import dagster as dg

from b3_assets.resources import GlueJobResource, failed_runs_failure
from b3_assets.sensors import busy_runs

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
    "events, killed runs, gap fills) and requests one reconcile_refined run for them.",
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
    if not pending:
        return dg.SensorResult(skip_reason="every landing date's refine is current")
    context.log.warning(
        f"{len(pending)} landing date(s) were never refined as they are now: "
        f"{', '.join(d.isoformat() for d in pending)}; requesting their refine"
    )
    return dg.SensorResult(run_requests=[reconcile_request(pending)])
