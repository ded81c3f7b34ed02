"""The resources of each environment, under the same keys; ``B3_ENV`` picks the set.

Asset code asks for ``lake``, ``b3``, ``glue_job`` and ``catalog`` by type and never learns
where it runs; only this module knows (the pattern of Dagster's
project_fully_featured). Each resource is typed configuration plus the one object it builds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from b3_assets.platform.catalog import AthenaCatalog, DuckDBCatalog, QueryEngine
from b3_assets.platform.glue_runs import GlueJobWatcher, finished_run, run_dates
from b3_assets.platform.local_aws import LocalGlueRunner, local_lake
from b3_assets.sessions import is_known_session, is_trading_day, not_a_session_message
from b3_assets.settings import Settings
from b3_assets.source.model import PortfolioView
from b3_assets.source.payload import RawPayload
from b3_assets.storage.lake import Lake, S3Lake
from b3_assets.storage.landing import landing_parquet
from glue.attempts import RefinePlan, refine_plan
from glue.layout import LANDING_BATCH_TAG, QUEUING, landing_key
from glue.local_job import file_sha256, published, serving_behind, stale_dates, sync_serving
from glue.published import published_record
from glue.published import stale_dates as glue_stale_dates


def _aws_client(service: str, region: str, endpoint_url: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=endpoint_url)


class B3Site(dg.ConfigurableResource):
    """B3's site as configured (``B3_BASE_URL``, ``B3_FETCH``, ``B3_BROWSER_PATH``, …)."""

    base_url: str
    fetch_mode: str = "auto"
    browser_path: str | None = None
    timeout_s: float = 20.0
    retries: int = 4

    def fetch(self, segment: str = "2", view: PortfolioView = "day") -> RawPayload:
        """The day's portfolio: B3's sector view, or with ``segment`` "1" the plain one; with
        ``view`` ``teorica`` or ``previa`` the period's view (from the JSON API)."""
        from b3_assets.source.fetch import fetch_portfolio

        return fetch_portfolio(
            self.fetch_mode,
            self.base_url,
            browser_path=self.browser_path,
            timeout_s=self.timeout_s,
            retries=self.retries,
            segment=segment,
            view=view,
        )


class LakeResource(dg.ConfigurableResource):
    """The lake: a folder (local) or a bucket (aws), with the same relative keys."""

    def get(self) -> Lake:
        raise NotImplementedError


class LocalLakeResource(LakeResource):
    """``B3_DATA_DIR``; its landing writes start the local Glue runner through the Lambda."""

    data_dir: str
    glue_job_name: str

    @cached_property
    def _lake(self) -> Lake:
        return local_lake(Path(self.data_dir), self.glue_job_name, is_known_session)

    def get(self) -> Lake:
        return self._lake


class S3LakeResource(LakeResource):
    """``B3_BUCKET``; its landing writes start Glue through S3 → EventBridge → Lambda."""

    bucket: str
    region: str
    endpoint_url: str | None = None

    def get(self) -> Lake:
        return S3Lake(self.bucket, _aws_client("s3", self.region, self.endpoint_url))


class GlueJobResource(dg.ConfigurableResource):
    """The refine job: its runs (what the sensor watches) and what follows a landing batch."""

    job_name: str

    def client(self) -> Any:
        raise NotImplementedError

    def watcher(self) -> GlueJobWatcher:
        return GlueJobWatcher(self.client(), self.job_name)

    def console_url(self, run_id: str) -> str | None:
        return None

    def after_landing(self, dates: list[date], batch: str | None) -> list[dict[str, Any]]:
        """What follows landing writes besides their events; returns failed runs' records.

        ``batch``: the id the landing files of a backfill were tagged with (None: a single
        date, which its landing event alone refines)."""
        raise NotImplementedError

    def pending_refines(self) -> list[date]:
        """Landing dates whose refine is missing or stale and that no run is refining now:
        what a lost event, a killed run or a gap filled before a date left behind."""
        raise NotImplementedError

    def refine(self, dates: list[date]) -> list[dict[str, Any]]:
        """Refine ``dates`` now (locally) or start their runs (AWS); returns failed runs."""
        raise NotImplementedError

    def given_up_refines(self) -> dict[date, str]:
        """Stale dates nothing will refine again until their landing file changes (AWS: too
        many failed Glue runs, glue/attempts.py), date -> why; none locally."""
        return {}

    def current_publications(self, dates: list[date]) -> dict[date, str]:
        """The Glue run id that published each of ``dates`` from its landing file as it is
        now (``refined/DataCarteira=D/_current.json``); a date Glue has not refined since its
        landing file was written (a run in flight on AWS, a refine that failed) is left out."""
        raise NotImplementedError


#: Dates per Glue run of a backfill: a few minutes of Spark, well inside the job's timeout
#: (and, locally, a run the sensor records in one tick).
MAX_DATES_PER_RUN = 250


def chunked(dates: list[date]) -> list[list[date]]:
    """``dates`` ascending, in runs of at most :data:`MAX_DATES_PER_RUN`."""
    days = sorted(dates)
    return [days[i : i + MAX_DATES_PER_RUN] for i in range(0, len(days), MAX_DATES_PER_RUN)]


class LocalGlueJob(GlueJobResource):
    """The local Glue runner over ``B3_DATA_DIR`` (synchronous refines on DuckDB)."""

    data_dir: str

    def client(self) -> LocalGlueRunner:
        return LocalGlueRunner(Path(self.data_dir).resolve(), is_known_session)

    def after_landing(self, dates: list[date], batch: str | None) -> list[dict[str, Any]]:
        """A single date's event refined it already; a backfill's files were left to this
        one run (the Lambda saw their batch tag). Either way every stale date is refined too:
        a gap filled, an earlier date corrected, a refine that died or failed (a failed one
        is tried once more here, and a second failure fails the landing run)."""
        days = set(self.pending_refines()) | (set(dates) if batch else set())
        return self.refine(sorted(days))

    def pending_refines(self) -> list[date]:
        """Stale dates, and published dates the serving copy does not show yet (a run killed
        between its publish and its serving patch)."""
        root = Path(self.data_dir).resolve()
        return sorted(set(stale_dates(root, is_known_session)) | set(serving_behind(root)))

    def refine(self, dates: list[date]) -> list[dict[str, Any]]:
        """One local Glue run per :data:`MAX_DATES_PER_RUN` dates, oldest first (the order
        that converges); then the serving copy is checked against the pointers (a run killed
        between its publish and its serving patch) and the catalog refreshed."""
        runner = self.client()
        runs = [runner.refine(self.job_name, chunk) for chunk in chunked(dates)]
        sync_serving(Path(self.data_dir).resolve())
        DuckDBCatalog(Path(self.data_dir)).refresh()
        return [run for run in runs if run["JobRunState"] != "SUCCEEDED"]

    def current_publications(self, dates: list[date]) -> dict[date, str]:
        root = Path(self.data_dir).resolve()
        current = {}
        for day in dates:
            pointer = published(root, day) or {}
            sha = file_sha256(root / landing_key(day))
            if sha is not None and pointer.get("landing_sha256") == sha and pointer.get("run_id"):
                current[day] = str(pointer["run_id"])
        return current


class AwsGlueJob(GlueJobResource):
    """The AWS Glue job of the stack (``B3_GLUE_JOB``)."""

    region: str
    endpoint_url: str | None = None
    bucket: str
    database: str

    def after_landing(self, dates: list[date], batch: str | None) -> list[dict[str, Any]]:
        """A backfill's landing files are tagged, so the Lambda starts nothing for them: one
        Glue run per :data:`MAX_DATES_PER_RUN` dates refines them all (the sensor reports each
        date). A single date is left to its landing event, as the design's daily path.

        Either way every stale date is refined too: the landing date after each written one
        (its previous portfolio just changed), and any date whose event was lost to the
        dead-letter queue or whose run died. Runs in flight are not waited for: a run of a
        date waits for the earlier runs of that date (glue/job.py), so the last one wins."""
        stale = glue_stale_dates(self._s3(), self.bucket, is_known_session)
        # Stale dates besides the ones just written: only those due (not in flight, not
        # backing off after failures, not given up: glue/attempts.py), so a daily landing
        # during a backfill does not start the backfill's dates a second time.
        others = self.plan(set(stale) - set(dates)).due
        # A backfill refines what it wrote even when the bytes did not change (a new transform).
        days = set(others) | set(dates) if batch else set(others)
        return self.refine(sorted(days))

    def plan(self, stale: set[date] | list[date]) -> RefinePlan:
        """Which of ``stale`` may start a Glue run now (glue/attempts.py: in flight, back-off
        after failed runs keyed on the landing file, a bounded number of attempts)."""
        glue = self.client()
        try:
            return refine_plan(self._s3(), glue, self.bucket, self.job_name, stale)
        except glue.exceptions.EntityNotFoundException as exc:
            raise self._no_such_job() from exc

    def pending_refines(self) -> list[date]:
        """Stale dates due for a Glue run now (the hourly sensor's question): none in flight,
        none backing off after a failed run, none given up (:meth:`plan`)."""
        stale = glue_stale_dates(self._s3(), self.bucket, is_known_session)
        return self.plan(stale).due if stale else []

    def given_up_refines(self) -> dict[date, str]:
        """Stale dates whose refine failed too often to be started again: date -> why."""
        stale = glue_stale_dates(self._s3(), self.bucket, is_known_session)
        return self.plan(stale).given_up if stale else {}

    def _no_such_job(self) -> RuntimeError:
        return RuntimeError(
            f"Glue job {self.job_name!r} does not exist in {self.region}: set B3_GLUE_JOB to "
            "the stack's job name (output GlueJobName) and AWS_REGION to its region"
        )

    def refine(self, dates: list[date]) -> list[dict[str, Any]]:
        glue = self.client()
        for days in chunked(dates):
            chunk = ",".join(d.isoformat() for d in days)
            try:
                glue.start_job_run(
                    JobName=self.job_name,
                    Arguments={
                        "--data_carteiras": chunk,
                        "--bucket": self.bucket,
                        "--database": self.database,
                    },
                    **QUEUING,  # past MaxConcurrentRuns, wait in Glue's queue: not refused
                )
            except glue.exceptions.EntityNotFoundException as exc:
                raise self._no_such_job() from exc
        return []

    def current_publications(self, dates: list[date]) -> dict[date, str]:
        """One HeadObject (the landing file's ETag) and one GET (``_current.json``) per
        date, 10 at a time (the client's connection pool)."""
        from concurrent.futures import ThreadPoolExecutor

        s3 = self._s3()

        def publication(day: date) -> str | None:
            try:
                head = s3.head_object(Bucket=self.bucket, Key=landing_key(day))
            except s3.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                    return None
                raise
            record = published_record(s3, self.bucket, day) or {}
            etag = head["ETag"].strip('"')
            run_id = record.get("run_id")
            return str(run_id) if run_id and record.get("landing_etag") == etag else None

        with ThreadPoolExecutor(max_workers=10) as pool:
            found = dict(zip(dates, pool.map(publication, dates), strict=True))
        return {day: run_id for day, run_id in found.items() if run_id}

    def client(self) -> Any:
        return _aws_client("glue", self.region, self.endpoint_url)

    def _s3(self) -> Any:
        return _aws_client("s3", self.region, self.endpoint_url)

    def console_url(self, run_id: str) -> str | None:
        r = self.region
        return (
            f"https://{r}.console.aws.amazon.com/gluestudio/home?region={r}#/job/"
            f"{self.job_name}/run/{run_id}"
        )


class CatalogResource(dg.ConfigurableResource):
    """The query engine over the refined table: DuckDB locally, Athena on AWS."""

    def engine(self) -> QueryEngine:
        raise NotImplementedError


class DuckDBCatalogResource(CatalogResource):
    data_dir: str

    def engine(self) -> QueryEngine:
        return DuckDBCatalog(Path(self.data_dir))


class AthenaCatalogResource(CatalogResource):
    database: str
    workgroup: str
    output_location: str | None = None
    region: str
    endpoint_url: str | None = None

    def engine(self) -> QueryEngine:
        client = _aws_client("athena", self.region, self.endpoint_url)
        return AthenaCatalog(client, self.database, self.workgroup, self.output_location)


def dates_label(days: tuple[date, ...]) -> str:
    """``2025-03-05``, or ``2025-01-02…2025-03-20, 32 dates`` for a backfill's run."""
    if len(days) <= 1:
        return ", ".join(d.isoformat() for d in days) or "no date"
    return f"{days[0].isoformat()}…{days[-1].isoformat()}, {len(days)} dates"


def failed_runs_failure(headline: str, failed: list[dict[str, Any]]) -> dg.Failure:
    """The step failure for refines that failed: each Glue run, its dates and Glue's error.
    Not retried: the same inputs fail the same way (fix the landing file, then rerun)."""
    return dg.Failure(description=f"{headline}\n{failed_runs_text(failed)}", allow_retries=False)


def failed_runs_text(failed: list[dict[str, Any]]) -> str:
    """One line per failed Glue run: its id, dates, state and Glue's error."""
    return "\n".join(
        f"Glue job run {r['Id']} ({dates_label(run_dates(r['Arguments']))}) "
        f"{r['JobRunState']}: {r.get('ErrorMessage')}"
        for r in failed
    )


def split_failed_runs(
    failed: list[dict[str, Any]], own: Iterable[date]
) -> tuple[list[dict[str, Any]], str | None]:
    """The failed refine runs that left one of ``own`` (the landing run's dates) unrefined,
    and a warning naming what the others left unrefined (older dates: a corrupt landing file
    of 2025-02-10 holds back 02-10 and 02-11, never the day that just landed).

    A run's own dates decide its outcome, so one broken old date never blocks a new day; the
    old one is reported here (the run log), on its glue_job_run_succeeded check and by the
    hourly reconciliation. Each Glue error names the file and the fix (glue/transform.py)."""
    days = set(own)
    mine: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    left_out: set[date] = set()
    for record in failed:
        run = finished_run(record)
        left = set(run.dates) - set(run.refined_dates)
        if left & days:
            mine.append(record)
        else:
            others.append(record)
            left_out |= left
    if not others:
        return mine, None
    warning = (
        f"{len(left_out)} other landing date(s) could not be refined "
        f"({', '.join(d.isoformat() for d in sorted(left_out))}); they do not hold back this "
        f"run's own date(s). Each failed refine run and its error:\n{failed_runs_text(others)}"
        "\nFix each landing file as its error says; until then those dates keep their "
        "published version (if any), their glue_job_run_succeeded check fails and the hourly "
        "refined_reconciliation tries them again."
    )
    return mine, warning


def write_landing(
    lake: Lake, glue_job: GlueJobResource, tables: dict[str, pa.Table], batch: str | None
) -> list[dict[str, Any]]:
    """Writes ``landing/ibov/dt=…/ibov.parquet`` of each date (atomic, deterministic) on the
    folder or S3, then lets the Glue job catch up (locally: refines what is stale).

    ``tables`` is ``{partition_key: table}`` so one run carries a whole backfill range;
    ``batch`` (a range run's id) tags the files so the Lambda leaves them to one Glue run.
    Returns the failed Glue runs' records (the caller fails the step naming them, after it
    has evaluated the files as stored)."""
    for key in sorted(tables):
        day = date.fromisoformat(key)
        if not is_trading_day(day):
            raise ValueError(f"{not_a_session_message(day)} No landing file is written for it.")
    for key in sorted(tables):
        tags = {LANDING_BATCH_TAG: batch} if batch else None
        lake.write_bytes(landing_key(date.fromisoformat(key)), landing_parquet(tables[key]), tags)
    return glue_job.after_landing([date.fromisoformat(k) for k in tables], batch)


def landing_uri(lake: Lake, keys: list[str]) -> str:
    """The landing file of a date, or ``first … last`` of a range."""
    first, last = min(keys), max(keys)
    uri = lake.uri(landing_key(date.fromisoformat(first)))
    if first != last:
        uri += f" … {lake.uri(landing_key(date.fromisoformat(last)))}"
    return uri


def resources_for(settings: Settings) -> dict[str, Any]:
    """The resources of ``settings.env``, under the keys every environment shares."""
    b3 = B3Site(
        base_url=settings.base_url,
        fetch_mode=settings.fetch,
        browser_path=settings.browser_path,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
    aws = {"region": settings.aws_region, "endpoint_url": settings.aws_endpoint_url}
    lake: LakeResource
    glue_job: GlueJobResource
    catalog: CatalogResource
    if settings.env == "aws":
        lake = S3LakeResource(bucket=settings.bucket, **aws)
        glue_job = AwsGlueJob(
            job_name=settings.glue_job_name,
            bucket=settings.bucket,
            database=settings.glue_database,
            **aws,
        )
        catalog = AthenaCatalogResource(
            database=settings.glue_database,
            workgroup=settings.athena_workgroup,
            output_location=settings.athena_output,
            **aws,
        )
    else:
        data_dir = str(settings.data_dir.resolve())
        lake = LocalLakeResource(data_dir=data_dir, glue_job_name=settings.glue_job_name)
        glue_job = LocalGlueJob(job_name=settings.glue_job_name, data_dir=data_dir)
        catalog = DuckDBCatalogResource(data_dir=data_dir)
    return {
        "b3": b3,
        "lake": lake,
        "glue_job": glue_job,
        "catalog": catalog,
    }
