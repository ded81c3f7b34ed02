"""AWS Glue 5.0 job entry: refine one portfolio date into ``refined/DataCarteira=D/``.

Deployed as the job script, with the ``glue`` package (transform.py, refine.sql, catalog.py)
shipped beside it through ``--extra-py-files``. The awsglue wrapper is thin: all the work is
in :func:`run_job`, which takes the Spark session and boto3 clients, so tests run it on local
Spark with the S3 and Glue calls going to a moto server.

Arguments (``--name value``): ``--data_carteira`` YYYY-MM-DD and ``--bucket`` are required;
``--landing_prefix`` (``landing/ibov``), ``--refined_prefix`` (``refined``), ``--database``
(``default``) and ``--table`` (``b3_etl_soma_acao``) are optional.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from glue.catalog import ensure_table, register_partitions
from glue.layout import (
    LANDING_PREFIX,
    REFINED_PREFIX,
    TABLE_NAME,
    landing_date_from_key,
    landing_key,
    refined_date_prefix,
)
from glue.transform import previous_landing_date, refine_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

REQUIRED_ARGS: tuple[str, ...] = ("data_carteira", "bucket")
#: Optional job arguments and their defaults (getResolvedOptions itself has no defaults).
OPTIONAL_ARGS: dict[str, str] = {"database": "default"}
DEFAULT_JOB_NAME = "b3-etl-soma-acao"
#: Glue JobRunStates of a run that may still read landing or write refined.
ACTIVE_RUN_STATES = frozenset({"STARTING", "RUNNING", "STOPPING", "WAITING"})
#: How long a run waits for an earlier run of its date (the stack's job Timeout is 60 min).
WAIT_FOR_EARLIER_RUNS_S = 40 * 60
WAIT_POLL_S = 15.0


def _given(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def resolve_args(argv: Sequence[str]) -> dict[str, str]:
    """The job's arguments through awsglue's getResolvedOptions, with defaults filled in.

    getResolvedOptions makes every name it is given required, so optional names are only
    asked for when present in ``argv``. ``argv[0]`` is the script, as in ``sys.argv``.
    """
    from awsglue.utils import getResolvedOptions

    optional = [n for n in [*OPTIONAL_ARGS, "JOB_NAME"] if _given(argv[1:], n)]
    resolved = getResolvedOptions(list(argv), [*REQUIRED_ARGS, *optional])
    args = dict(OPTIONAL_ARGS)
    args.update({n: resolved[n] for n in [*REQUIRED_ARGS, *optional]})
    if resolved.get("JOB_RUN_ID"):  # reserved: awsglue always parses it, Glue always passes it
        args["JOB_RUN_ID"] = resolved["JOB_RUN_ID"]
    try:
        date.fromisoformat(args["data_carteira"])
    except ValueError as exc:
        raise ValueError(
            f"--data_carteira must be a date YYYY-MM-DD, got {args['data_carteira']!r}"
        ) from exc
    for name, value in args.items():
        if not value.strip("/"):
            raise ValueError(f"--{name} must not be empty")
    return args


def list_landing_dates(s3_client: Any, bucket: str) -> list[date]:
    """Trading dates with a landing file in the bucket, ascending."""
    dates: list[date] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{LANDING_PREFIX}/dt="):
        for obj in page.get("Contents", []):
            found = landing_date_from_key(obj["Key"])
            if found is not None:
                dates.append(found)
    return sorted(set(dates))


def delete_prefix(s3_client: Any, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix``; returns how many. Raises on any refused key."""
    deleted = 0
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if not keys:
            continue
        response = s3_client.delete_objects(
            Bucket=bucket, Delete={"Objects": keys, "Quiet": True}
        )  # a listing page holds at most 1000 keys: DeleteObjects' limit
        if response.get("Errors"):
            raise RuntimeError(f"S3 refused to delete under s3://{bucket}/{prefix}: {response}")
        deleted += len(keys)
    return deleted


def _run_order(run: Mapping[str, Any]) -> tuple[datetime, str]:
    started = run.get("StartedOn")
    if not isinstance(started, datetime):
        started = datetime.max.replace(tzinfo=UTC)
    elif started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started, str(run.get("Id", ""))


def earlier_active_runs(
    glue_client: Any, job_name: str, run_id: str, data_carteira: str
) -> list[dict[str, Any]]:
    """Runs of ``job_name`` for the same date, still in flight, that started before ``run_id``.

    Runs are ordered by (StartedOn, Id), so of two overlapping runs exactly one goes first. A
    run id Glue does not list (a local or test invocation) has nothing to wait for."""
    runs: list[dict[str, Any]] = []
    paginator = glue_client.get_paginator("get_job_runs")
    for page in paginator.paginate(JobName=job_name):
        runs.extend(page.get("JobRuns", []))
    mine = next((r for r in runs if r.get("Id") == run_id), None)
    if mine is None:
        return []
    return [
        r for r in runs
        if r.get("Id") != run_id
        and r.get("JobRunState") in ACTIVE_RUN_STATES
        and (r.get("Arguments") or {}).get("--data_carteira") == data_carteira
        and _run_order(r) < _run_order(mine)
    ]


def wait_for_earlier_runs(
    glue_client: Any,
    job_name: str,
    run_id: str,
    data_carteira: str,
    *,
    timeout_s: float = WAIT_FOR_EARLIER_RUNS_S,
    poll_s: float = WAIT_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Block until no earlier run of the same date is in flight; returns the ids waited for.

    Delivery of landing events is at-least-once and a backfill may start many runs, so two
    runs of one date can overlap. Each deletes and rewrites ``DataCarteira=D/``; interleaved,
    they could leave both runs' files behind (duplicate rows). Serializing them per date makes
    the last run's output the whole of the date. Raises TimeoutError, having written nothing,
    when an earlier run is still active after ``timeout_s``."""
    deadline = clock() + timeout_s
    waited: list[str] = []
    while True:
        earlier = earlier_active_runs(glue_client, job_name, run_id, data_carteira)
        if not earlier:
            return waited
        ids = [str(r["Id"]) for r in earlier]
        waited.extend(i for i in ids if i not in waited)
        if clock() >= deadline:
            states = ", ".join(f"{r['Id']} ({r.get('JobRunState')})" for r in earlier)
            raise TimeoutError(
                f"run {run_id} of {job_name} for {data_carteira} waited {timeout_s:.0f} s for "
                f"earlier run(s) of the same date to finish: {states}. Nothing was written; "
                "start this date again once they are done (or stop them in the Glue console)."
            )
        log.info("run %s waits for earlier run(s) of %s: %s", run_id, data_carteira, ids)
        sleep(poll_s)


def run_job(
    spark: SparkSession,
    s3_client: Any,
    glue_client: Any,
    args: Mapping[str, str],
    *,
    io_base_uri: str | None = None,
    processado_em: datetime | None = None,
) -> dict[str, Any]:
    """Refine ``args['data_carteira']``, replace its output and register its partitions.

    S3 listing/deleting and the catalog go through the clients; Spark reads and writes under
    ``io_base_uri`` (default ``s3://<bucket>``: the seam tests use with a local folder).
    Returns a JSON-friendly summary.
    """
    bucket = args["bucket"]
    database = args.get("database", "default")
    table = TABLE_NAME
    data_carteira = date.fromisoformat(args["data_carteira"])
    processado_em = processado_em or datetime.now(UTC)
    base = (io_base_uri or f"s3://{bucket}").rstrip("/")

    dates = list_landing_dates(s3_client, bucket)
    if data_carteira not in dates:
        raise FileNotFoundError(
            f"no landing file s3://{bucket}/{landing_key(data_carteira)}: "
            "nothing to refine for that date"
        )
    anterior = previous_landing_date(dates, data_carteira)
    refined = refine_spark(
        spark,
        f"{base}/{landing_key(data_carteira)}",
        f"{base}/{landing_key(anterior)}" if anterior else None,
        data_carteira,
        anterior,
        processado_em,
    ).persist()
    try:
        issuers = [row["Acao"] for row in refined.select("Acao").collect()]
        if not issuers:
            raise ValueError(
                f"landing file for {data_carteira.isoformat()} has no rows of that date; "
                "the refined date was left untouched"
            )
        date_prefix = refined_date_prefix(data_carteira)
        removed = delete_prefix(s3_client, bucket, date_prefix)
        # Timestamps as Parquet TIMESTAMP_MICROS (UTC), like the local writer; not INT96.
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        (
            refined.drop("DataCarteira")
            .repartition("Acao")  # one task, hence one file, per issuer folder
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "static")
            .option("compression", "snappy")
            .partitionBy("Acao")
            .parquet(f"{base}/{date_prefix}")
        )
    finally:
        refined.unpersist()
    location_root = f"s3://{bucket}/{REFINED_PREFIX}"
    created = ensure_table(glue_client, database, table, location_root + "/")
    changes = register_partitions(
        glue_client, database, table, location_root, data_carteira, issuers
    )
    summary: dict[str, Any] = {
        "data_carteira": data_carteira.isoformat(),
        "data_carteira_anterior": anterior.isoformat() if anterior else None,
        "rows": len(issuers),
        "issuers": issuers,
        "output": f"{base}/{date_prefix}",
        "objects_replaced": removed,
        "table": f"{database}.{table}",
        "table_created": created,
        "partitions_created": changes.created,
        "partitions_deleted": changes.deleted,
        "partitions_repointed": changes.updated,
        "processado_em": processado_em.isoformat(),
    }
    log.info("refine done: %s", json.dumps(summary))
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The Glue entry: resolve arguments, build GlueContext/Job, run, commit."""
    import boto3
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    args = resolve_args(list(sys.argv if argv is None else argv))
    glue_context = GlueContext(SparkContext.getOrCreate())
    spark = glue_context.spark_session
    job = Job(glue_context)
    job_name = args.get("JOB_NAME", DEFAULT_JOB_NAME)
    job.init(job_name, dict(args))
    glue_client = boto3.client("glue")
    if "JOB_RUN_ID" in args:  # Glue passes it; one run per date at a time
        wait_for_earlier_runs(glue_client, job_name, args["JOB_RUN_ID"], args["data_carteira"])
    summary = run_job(spark, boto3.client("s3"), glue_client, args)
    job.commit()
    print(json.dumps(summary))  # lands in the job's CloudWatch output log
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
