"""AWS Glue 5.0 job entry: refine portfolio dates into ``refined/`` and publish each atomically.

Deployed as the job script, with the ``glue`` package (layout.py, transform.py, refine.sql,
catalog.py) shipped beside it through ``--extra-py-files``. The awsglue wrapper is thin: the
work is in :func:`run_job`, which takes the Spark session and boto3 clients, so tests run it
on local Spark with the S3 and Glue calls going to a moto server. Spark only reads and writes
files (temp views, no metastore); the catalog is kept through boto3.

Arguments (``--name value``): ``--bucket``; either ``--data_carteira YYYY-MM-DD`` (one date:
the run the Lambda starts per landing file) or ``--data_carteiras D1,D2,…`` (ascending: a
backfill in one run, so a year costs one job start, not 250); ``--database`` (default
``default``, created when missing). Glue adds ``JOB_NAME`` and ``JOB_RUN_ID``. The layout,
the table name and the prefixes are fixed (glue/layout.py).

Publishing a date (:func:`publish_date`), under the date's lock (``refined/_locks/``, an S3
conditional write: one run per date at a time, whatever Glue's queue does), first skips a
date whose ``_current.json`` already records the inputs it would read (a duplicate event ends
in seconds; ``--force true`` refines anyway, for a new transform). It then writes
``refined/DataCarteira=D/Acao=X/run=<run id>/`` beside the current version and repoints the
date's catalog partitions there (glue/catalog.py: entrants created empty first, then one
batch call switches every issuer). The folders it superseded are **kept**: Athena plans a
query from the catalog and opens the files later, so a query planned before the repoint
still reads the old folders; ``_current.json`` records when each folder was superseded, and
a later run of the date deletes those superseded more than ``RETIRE_AFTER`` ago (longer than
the workgroup's query timeout). A run that fails before the repoint leaves the old version
readable.

Then the run patches the serving copy of the years it touched (glue/serving.py): one Parquet
file per year, catalogued as ``b3_etl_soma_acao_historico``, so history on Athena reads one
object per year instead of one per issuer and date.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from glue.catalog import ensure_database, ensure_table, register_partitions
from glue.layout import (
    PARTITION_COLUMNS,
    REFINED_PREFIX,
    RUN_ID_PATTERN,
    RUN_PARTITION,
    TABLE_NAME,
    issuer_from_refined_key,
    landing_key,
    refine_lock_key,
    refined_current_key,
    refined_date_prefix,
    refined_run_prefix,
)
from glue.outcome import batch_failure
from glue.published import list_landing, published_record, write_published_record
from glue.serving import (
    RETIRE_AFTER,
    LockPolicy,
    acquire_lock,
    check_lease,
    patch_serving,
    release_lock,
)
from glue.sessions import is_b3_session
from glue.storage import delete_keys, list_keys
from glue.transform import (
    previous_landing_date,
    publication_inputs,
    refine_spark,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

REQUIRED_ARGS: tuple[str, ...] = ("bucket",)
#: Exactly one of these names the run's dates.
DATE_ARGS: tuple[str, str] = ("data_carteira", "data_carteiras")
#: Optional job arguments and their defaults (getResolvedOptions itself has no defaults).
OPTIONAL_ARGS: dict[str, str] = {"database": "default", "force": "false"}
DEFAULT_JOB_NAME = "b3-etl-soma-acao"
#: The Glue job's Timeout (infra/template.yaml): Glue stops any run older than that, so a
#: run that started this long before this one is no longer in flight. (With job run queuing
#: on, this holds only if the time a run spends WAITING counts toward it.)
JOB_TIMEOUT = timedelta(minutes=60)
#: How long a run waits for the lock of a date another run is refining (within JOB_TIMEOUT).
WAIT_FOR_EARLIER_RUNS_S = 40 * 60
#: The per-date lock: a killed holder's lock is taken over after a whole job timeout; a live
#: one commits within the first half (check_lease), so the two never overlap.
DATE_LOCK = LockPolicy(lease=JOB_TIMEOUT, wait_s=WAIT_FOR_EARLIER_RUNS_S, poll_s=15.0)

DATE_COLUMN, ISSUER_COLUMN = PARTITION_COLUMNS


# --- arguments -----------------------------------------------------------------------------


def _given(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def resolve_args(argv: Sequence[str]) -> dict[str, str]:
    """The job's arguments through awsglue's getResolvedOptions, with defaults filled in.

    getResolvedOptions makes every name it is given required, so optional names are only
    asked for when present in ``argv``. ``argv[0]`` is the script, as in ``sys.argv``.
    """
    from awsglue.utils import getResolvedOptions

    optional = [n for n in [*DATE_ARGS, *OPTIONAL_ARGS, "JOB_NAME"] if _given(argv[1:], n)]
    names = [*REQUIRED_ARGS, *optional]
    resolved = getResolvedOptions(list(argv), names)
    args = {**OPTIONAL_ARGS, **{n: resolved[n] for n in names}}
    if resolved.get("JOB_RUN_ID"):  # reserved: awsglue always parses it, Glue always passes it
        args["JOB_RUN_ID"] = resolved["JOB_RUN_ID"]
    for name, value in args.items():
        if not value.strip("/"):
            raise ValueError(f"--{name} must not be empty")
    job_dates(args)  # refuse bad dates before Spark starts
    return args


def job_dates(args: Mapping[str, str]) -> list[date]:
    """The run's dates: ``data_carteira``, or ``data_carteiras`` (ascending, no repeats)."""
    given = [n for n in DATE_ARGS if n in args]
    if len(given) != 1:
        raise ValueError("give exactly one of --data_carteira D or --data_carteiras D1,D2,...")
    name = given[0]
    texts = [args[name]] if name == "data_carteira" else args[name].split(",")
    if not all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", t.strip()) for t in texts):
        raise ValueError(f"--{name} must be YYYY-MM-DD date(s), got {args[name]!r}")
    try:
        dates = [date.fromisoformat(t.strip()) for t in texts]
    except ValueError as exc:
        raise ValueError(f"--{name} holds an impossible date: {args[name]!r}") from exc
    if any(a >= b for a, b in zip(dates, dates[1:], strict=False)):
        raise ValueError(f"--{name} must be in ascending order without repeats: {args[name]!r}")
    return dates


def new_run_id() -> str:
    """A unique run id for runs Glue did not start (tests, a manual spark-submit)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What every date of one run shares."""

    bucket: str
    database: str
    run_id: str
    io_base: str  # where Spark reads and writes: s3://<bucket>, or a test's folder
    processado_em: datetime
    landing: Mapping[date, str]  # the bucket's landing files at the start: date -> ETag
    force: bool = False  # refine a date even when _current.json records the same inputs
    lock: LockPolicy = DATE_LOCK

    @property
    def landing_dates(self) -> list[date]:
        return sorted(self.landing)


def run_job(
    spark: SparkSession,
    s3_client: Any,
    glue_client: Any,
    args: Mapping[str, str],
    *,
    io_base_uri: str | None = None,
    processado_em: datetime | None = None,
) -> dict[str, Any]:
    """Refine and publish each of the run's dates; returns a JSON-friendly summary.

    S3 listing/deleting and the catalog go through the clients; Spark reads and writes under
    ``io_base_uri`` (default ``s3://<bucket>``: the seam tests use with a local folder). In a
    batch, a date that fails does not stop the others; the run fails at the end, naming it.
    """
    dates = job_dates(args)
    run_id = args.get("JOB_RUN_ID") or new_run_id()
    if not re.fullmatch(RUN_ID_PATTERN, run_id):  # a folder name: refuse before Spark writes
        raise ValueError(f"run id {run_id!r} does not match {RUN_ID_PATTERN}")
    run = Run(
        bucket=args["bucket"],
        database=args.get("database", "default"),
        run_id=run_id,
        io_base=(io_base_uri or f"s3://{args['bucket']}").rstrip("/"),
        processado_em=processado_em or datetime.now(UTC),
        landing={  # a stray file on a holiday is never a previous portfolio
            d: etag
            for d, etag in list_landing(s3_client, args["bucket"]).items()
            if is_b3_session(d)
        },
        force=args.get("force", "false").strip().lower() == "true",
    )
    database_created = ensure_database(glue_client, run.database)
    table_location = f"s3://{run.bucket}/{REFINED_PREFIX}/"
    table_created = ensure_table(glue_client, run.database, TABLE_NAME, table_location)
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "table": f"{run.database}.{TABLE_NAME}",
        "database_created": database_created,
        "table_created": table_created,
        "processado_em": run.processado_em.isoformat(),
        "dates": [],
        "failed": {},
    }
    # Timestamps as Parquet TIMESTAMP_MICROS (UTC), like the local writer; not INT96.
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    for day in dates:
        try:
            summary["dates"].append(publish_date(spark, s3_client, glue_client, run, day))
        except Exception as exc:
            if len(dates) == 1:
                raise
            log.exception("refining %s failed; the batch goes on", day.isoformat())
            summary["failed"][day.isoformat()] = f"{type(exc).__name__}: {exc}"
    summary["serving"] = serve_years(s3_client, glue_client, run, summary)
    log.info("run done: %s", json.dumps(summary))
    _raise_on_failures(summary, len(dates))
    return summary


def serve_years(
    s3_client: Any, glue_client: Any, run: Run, summary: dict[str, Any]
) -> list[dict[str, Any]]:
    """Patch the serving copy of the years of the dates this run published (glue/serving.py).

    Those dates are already published in refined: a failure here is recorded in the summary
    (the run then fails, naming it) and the next run touching the year repairs the copy."""
    years = sorted(
        {int(d["data_carteira"][:4]) for d in summary["dates"] if not d.get("skipped")}
    )
    if not years:
        return []
    try:
        patches = patch_serving(
            s3_client,
            glue_client,
            bucket=run.bucket,
            database=run.database,
            run_id=run.run_id,
            years=years,
        )
    except Exception as exc:
        log.exception("patching the serving copy of %s failed", years)
        summary["serving_failed"] = f"{type(exc).__name__}: {exc}"
        return []
    return [asdict(p) for p in patches]


def _raise_on_failures(summary: Mapping[str, Any], n_dates: int) -> None:
    problems = []
    if summary["failed"]:
        problems.append(batch_failure(summary["failed"], n_dates))
    if summary.get("serving_failed"):
        problems.append(
            "the serving copy (b3_etl_soma_acao_historico) was not patched: "
            f"{summary['serving_failed']}; the next run touching those years repairs it"
        )
    if problems:
        if not summary["failed"] and n_dates > 1:  # every date was published all the same
            problems.insert(0, batch_failure({}, n_dates))
        raise RuntimeError("; ".join(problems))


def is_current(record: Mapping[str, Any] | None, inputs: Mapping[str, Any]) -> bool:
    """Whether a date's ``_current.json`` records exactly ``inputs`` (publication_inputs)."""
    return bool(record) and bool(record.get("run_id")) and all(
        record.get(k) == v for k, v in inputs.items()
    )


def publish_date(
    spark: SparkSession, s3_client: Any, glue_client: Any, run: Run, day: date
) -> dict[str, Any]:
    """Refine ``day`` into this run's folders and repoint its partitions there, under the
    date's lock, unless ``_current.json`` already records these inputs (then nothing is read
    or written: a duplicate event costs a listing and two small GETs). Returns the summary."""
    if not is_b3_session(day):
        raise ValueError(
            f"{day.isoformat()} is not a B3 session (weekend or holiday): its landing file, if "
            f"any, is ignored and never refined; delete s3://{run.bucket}/{landing_key(day)} "
            "if it is stray"
        )
    if day not in run.landing_dates:
        raise FileNotFoundError(
            f"no landing file s3://{run.bucket}/{landing_key(day)}: nothing to refine for that date"
        )
    inputs = publication_inputs(run.landing, day, "etag")
    if not run.force and is_current(published_record(s3_client, run.bucket, day), inputs):
        return _skipped(run, day)
    lease = acquire_lock(
        s3_client, run.bucket, refine_lock_key(day), run.run_id, f"date {day}", run.lock
    )
    try:
        before = published_record(s3_client, run.bucket, day)
        if not run.force and is_current(before, inputs):  # published while this run waited
            return _skipped(run, day)
        return _publish_locked(spark, s3_client, glue_client, run, day, inputs, before, lease)
    finally:
        release_lock(s3_client, lease)


def _skipped(run: Run, day: date) -> dict[str, Any]:
    log.info("%s is already published from these landing files: skipped", day)
    return {
        "data_carteira": day.isoformat(),
        "skipped": "already published from these landing files (--force true refines anyway)",
        "output": f"s3://{run.bucket}/{refined_date_prefix(day)}",
    }


_RUN_OF_KEY = re.compile(rf"/{RUN_PARTITION}=([^/]+)/")


def retire_superseded(
    others: Sequence[str], retired: Mapping[str, str], now: datetime
) -> tuple[list[str], dict[str, str]]:
    """Split the date's superseded objects into those to delete now and those to keep.

    ``retired`` (from ``_current.json``): run id -> when its folders stopped being published.
    A folder first seen superseded now is kept and recorded with ``now``; one superseded more
    than RETIRE_AFTER ago is deleted (no query can still be reading it). Returns the keys to
    delete and the record to write."""
    by_run: dict[str, list[str]] = {}
    for key in others:
        found = _RUN_OF_KEY.search(key)
        by_run.setdefault(found.group(1) if found else "-", []).append(key)
    delete: list[str] = []
    keep: dict[str, str] = {}
    for run_id, keys in sorted(by_run.items()):
        since = retired.get(run_id)
        if since is not None and now - datetime.fromisoformat(since) >= RETIRE_AFTER:
            delete.extend(keys)
        else:
            keep[run_id] = since or now.isoformat()
    return delete, keep


def _publish_locked(
    spark: SparkSession,
    s3_client: Any,
    glue_client: Any,
    run: Run,
    day: date,
    inputs: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    lease: Any,
) -> dict[str, Any]:
    """Write, repoint, record (the module docstring); the caller holds the date's lock.

    The issuers are read back from the listing after the write (no second Spark action)."""
    anterior = previous_landing_date(run.landing_dates, day)
    write_refined(spark, run, day, anterior)
    written, others = _split_by_run(
        list_keys(s3_client, run.bucket, refined_date_prefix(day)), run, day
    )
    if not written:
        raise ValueError(
            f"landing file for {day.isoformat()} has no rows of that date; "
            "the refined date was left untouched"
        )
    doubled = {a: keys for a, keys in written.items() if len(keys) != 1}
    if doubled:  # a run id used twice: publishing would double those issuers' rows
        raise ValueError(f"run {run.run_id} wrote {day} more than once, not published: {doubled}")
    locations = {a: f"s3://{run.bucket}/{refined_run_prefix(day, a, run.run_id)}" for a in written}
    check_lease(s3_client, lease, run.lock)  # never repoint past half the lease
    changes = register_partitions(glue_client, run.database, TABLE_NAME, day, locations)
    retired = dict((before or {}).get("retired") or {})
    delete, keep = retire_superseded(others, retired, datetime.now(UTC))
    record = {
        "run_id": run.run_id,
        "processado_em": run.processado_em.isoformat(),
        "issuers": sorted(written),
        **inputs,
        "retired": keep,
    }
    write_published_record(s3_client, run.bucket, day, record)
    delete_keys(s3_client, run.bucket, delete)
    log.info(
        "published %s: %d issuers; %d old objects removed, %d kept for readers",
        day, len(written), len(delete), len(others) - len(delete),
    )  # fmt: skip
    return {
        "data_carteira": day.isoformat(),
        "data_carteira_anterior": anterior.isoformat() if anterior else None,
        "rows": len(written),
        "output": f"s3://{run.bucket}/{refined_date_prefix(day)}",
        "partitions_created": len(changes.created),
        "partitions_repointed": len(changes.updated),
        "partitions_deleted": changes.deleted,  # issuers gone since the previous version
        "objects_removed": len(delete),
        "objects_kept_for_readers": len(others) - len(delete),
    }


def _split_by_run(
    keys: Iterable[str], run: Run, day: date
) -> tuple[dict[str, list[str]], list[str]]:
    """The date's keys: this run's files by issuer, and everything else."""
    written: dict[str, list[str]] = {}
    others: list[str] = []
    for key in keys:
        if key == refined_current_key(day):  # replaced in place, never deleted
            continue
        acao = issuer_from_refined_key(key)
        if acao is not None and key.startswith(refined_run_prefix(day, acao, run.run_id)):
            written.setdefault(acao, []).append(key)
        else:
            others.append(key)
    return dict(sorted(written.items())), others


def write_refined(spark: SparkSession, run: Run, day: date, anterior: date | None) -> None:
    """Refine ``day`` on Spark and write one file per issuer under this run's folders, beside
    the version readers use now (a date with no rows writes nothing)."""
    from pyspark.sql import functions as F

    refined = refine_spark(
        spark,
        f"{run.io_base}/{landing_key(day)}",
        f"{run.io_base}/{landing_key(anterior)}" if anterior else None,
        day,
        anterior,
        run.processado_em,
    )
    (
        refined.drop(DATE_COLUMN)
        .withColumn(RUN_PARTITION, F.lit(run.run_id))
        .repartition(ISSUER_COLUMN)  # one task, hence one file, per issuer folder
        .write.mode("append")  # the date's current version stays until the repoint
        .option("compression", "snappy")
        .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")  # no _SUCCESS
        .partitionBy(ISSUER_COLUMN, RUN_PARTITION)  # Acao=X/run=<run id>/
        .parquet(f"{run.io_base}/{refined_date_prefix(day)}")
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The Glue entry: resolve arguments, build GlueContext/Job, run, commit."""
    import boto3
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    args = resolve_args(list(sys.argv if argv is None else argv))
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job_name = args.get("JOB_NAME", DEFAULT_JOB_NAME)
    job.init(job_name, dict(args))
    glue_client = boto3.client("glue")
    # One run per date: each date is refined under its lock (publish_date), not by waiting
    # on Glue's run list (which rested on queued time counting toward the job timeout).
    summary = run_job(glue_context.spark_session, boto3.client("s3"), glue_client, args)
    job.commit()
    print(json.dumps(summary))  # lands in the job's CloudWatch output log
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
