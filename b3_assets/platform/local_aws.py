"""The AWS event path played locally: S3's "Object Created" event, the Lambda, a Glue runner.

With ``B3_ENV=local`` the folder lake emits the EventBridge event S3 would after a landing
write, the same ``lambda_handler`` code decides, and :class:`LocalGlueRunner` executes the
refine on DuckDB and records runs shaped like Glue JobRuns (what the sensor watches)."""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import secrets
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from b3_assets.platform.glue_runs import run_dates
from b3_assets.storage.lake import LocalLake
from glue.layout import LANDING_PREFIX
from glue.local_job import IsSession, run_local_refines, write_atomic
from glue.transform import as_interrupt, interrupted_query

log = logging.getLogger(__name__)


def object_created_event(
    bucket: str,
    key: str,
    *,
    event_id: str | None = None,
    time: dt.datetime | None = None,
    encode_key: bool = True,
) -> dict[str, Any]:
    """The EventBridge event S3 emits after a write of ``bucket``/``key``.

    The key is URL-encoded as in S3 notifications (``" "`` -> ``+``, ``=`` -> ``%3D``, ``/``
    kept) unless ``encode_key`` is false, so callers exercise the decoding real events need.
    """
    when = (time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": quote_plus(key, safe="/") if encode_key else key,
                "size": 0,
                "etag": "",
                "sequencer": f"{int(when.timestamp() * 1_000_000):018X}",
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": "000000000000",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


RUNS_DIR = "_glue_job_runs"


def check_record_types(run: dict[str, Any]) -> None:
    """A record the sensor can read as Glue would answer it: ValueError naming the field
    whose type is wrong (a hand-edited or foreign file must be skipped, not stop every tick)."""
    for key in ("Id", "JobName", "JobRunState"):
        if not isinstance(run[key], str):
            raise ValueError(f"{key} is {run[key]!r}, not a string")
    args = run.get("Arguments", {})
    if not isinstance(args, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
        raise ValueError(f"Arguments is {args!r}, not an object of strings")
    for key in ("ExecutionSeconds", "ExecutionTime", "NumberOfWorkers"):
        value = run.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{key} is {value!r}, not a number")
    message = run.get("ErrorMessage")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"ErrorMessage is {message!r}, not a string")


class LocalGlueRunner:
    """A stand-in for the AWS Glue service, shaped like boto3's Glue client.

    ``start_job_run`` runs the local job (glue/local_job.py) synchronously and records the run
    as a Glue JobRun under ``<lake>/_glue_job_runs/`` (fsynced, one file each, named by start
    time so listing newest-first reads only the page asked for). The Lambda code that starts
    runs and the watcher that reads them are the same code as on AWS."""

    def __init__(self, lake_root: Path, is_session: IsSession | None = None) -> None:
        self.lake_root = Path(lake_root)
        self.runs_dir = self.lake_root / RUNS_DIR
        self.is_session = is_session

    def start_job_run(
        self,
        JobName: str,
        Arguments: dict[str, str] | None = None,
        **_: Any,
    ) -> dict[str, str]:
        """Run the job now; a failed run is recorded with its error (as Glue does), not raised.
        An interrupt (SIGTERM, Ctrl-C) is recorded as STOPPED and raised: the caller stops."""
        return {"JobRunId": self._run(JobName, dict(Arguments or {}))["Id"]}

    def _run(self, job_name: str, args: dict[str, str]) -> dict[str, Any]:
        """One run, recorded as a Glue JobRun; returns its record."""
        run_id = "jr_" + secrets.token_hex(32)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        run: dict[str, Any] = {
            "Id": run_id,
            "JobName": job_name,
            "Arguments": args,
            "StartedOn": started.isoformat(),
            "WorkerType": "local-duckdb",
            "NumberOfWorkers": 1,
        }
        stopped: BaseException | None = None
        try:
            days = run_dates(args)
            if not days:
                raise ValueError(f"job arguments name no date (--data_carteira): {args}")
            run_local_refines(self.lake_root, days, started, run_id, self.is_session)
            run["JobRunState"] = "SUCCEEDED"
        except Exception as exc:
            if interrupted_query(exc):
                stopped = as_interrupt("refining")
                stopped.__cause__ = exc
            run["JobRunState"] = "FAILED"
            run["ErrorMessage"] = self._error_message(exc)
        except BaseException as exc:  # SIGTERM or Ctrl-C (Dagster's interrupt): stopping
            stopped = exc
        if stopped is not None:  # recorded as Glue records a stopped run, then raised again
            run["JobRunState"] = "STOPPED"
            run["ErrorMessage"] = (
                f"stopped: the process was interrupted (SIGTERM or Ctrl-C) while refining "
                f"({type(stopped).__name__}: {stopped}); the dates it had not published are "
                "left as they were (the next landing run or the hourly reconciliation "
                "refines them)"
            )
        elapsed = time.perf_counter() - t0
        run["CompletedOn"] = datetime.now(UTC).isoformat()
        run["LastModifiedOn"] = run["CompletedOn"]
        run["ExecutionTime"] = max(1, round(elapsed))
        run["ExecutionSeconds"] = round(elapsed, 3)
        name = f"{started.strftime('%Y%m%dT%H%M%S%f')}-{run_id}.json"
        try:
            write_atomic(self.runs_dir / name, json.dumps(run, indent=1, sort_keys=True).encode())
        except OSError as exc:  # the sensor cannot see this run: say so where someone reads
            if stopped is not None:
                raise stopped from exc
            outcome = run["JobRunState"] + (f" ({run['ErrorMessage']})"
                                             if "ErrorMessage" in run else "")
            raise OSError(
                exc.errno,
                f"the local Glue run {run_id} of {args.get('--data_carteira') or 'its dates'} "
                f"ended {outcome}, and its run record could not be written to "
                f"{self.runs_dir} ({exc.strerror}), so the glue_job_runs sensor will not see "
                f"it. {self._fix(exc)}") from exc
        if stopped is not None:
            raise stopped
        return run

    def _fix(self, exc: OSError) -> str:
        if exc.errno == errno.ENOSPC:
            return (f"Free space on the lake's disk ({self.lake_root}); the hourly "
                    "refined_reconciliation then refines every stale date (or re-materialize "
                    "them).")
        return "Fix the cause, then re-materialize the dates (or wait for the reconciliation)."

    def _error_message(self, exc: Exception) -> str:
        """Glue's ErrorMessage for a failed local run; a full disk says where and what to do."""
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return (f"OSError: no space left on the lake's disk ({self.lake_root}) while "
                    f"refining ({exc.filename or exc}). Nothing half-written is visible; "
                    f"{self._fix(exc)}")
        return f"{type(exc).__name__}: {exc}"

    def _record_files(self) -> list[Path]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(self.runs_dir.glob("*.json"), reverse=True)

    def _read(self, path: Path) -> dict[str, Any] | None:
        """One run record, or None (with a warning naming the file) when it is unreadable."""
        try:
            run = json.loads(path.read_text())
            if not isinstance(run, dict):
                raise ValueError(f"a JSON {type(run).__name__}, not a Glue JobRun record")
            for key in ("StartedOn", "CompletedOn", "LastModifiedOn"):
                if key in run:
                    run[key] = datetime.fromisoformat(run[key])
            if not {"Id", "JobName", "JobRunState", "StartedOn"} <= set(run):
                raise ValueError("not a Glue JobRun record (Id, JobName, JobRunState, StartedOn)")
            check_record_types(run)
            return run
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("skipped unreadable Glue run record %s: %s", path, exc)
            return None

    def get_job_runs(
        self,
        JobName: str,
        NextToken: str | None = None,
        MaxResults: int = 100,
    ) -> dict[str, Any]:
        """Runs newest first, a page at a time, as Glue's GetJobRuns answers."""
        files = self._record_files()
        start = int(NextToken or 0)
        page: list[dict[str, Any]] = []
        position = start
        while position < len(files) and len(page) < MaxResults:
            run = self._read(files[position])
            position += 1
            if run is not None and run["JobName"] == JobName:
                page.append(run)
        out: dict[str, Any] = {"JobRuns": page}
        if position < len(files):
            out["NextToken"] = str(position)
        return out

    def refine(self, job_name: str, dates: list[date]) -> dict[str, Any]:
        """One run over ``dates`` (as Dagster starts one Glue run per backfill chunk)."""
        key = "--data_carteira" if len(dates) == 1 else "--data_carteiras"
        return self._run(job_name, {key: ",".join(d.isoformat() for d in sorted(dates))})


class LocalObjectTags:
    """The tags of the object just written, answered as S3's GetObjectTagging does: the one
    S3 call the Lambda makes (a backfill's landing files are left to the batch's own run)."""

    def __init__(self, key: str, tags: dict[str, str]) -> None:
        self.key, self.tags = key, tags

    def get_object_tagging(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key != self.key:
            raise KeyError(f"only the tags of {self.key} are known here, not {Key}")
        return {"TagSet": [{"Key": k, "Value": v} for k, v in self.tags.items()]}


def local_lake(data_dir: Path, job_name: str, is_session: IsSession | None = None) -> LocalLake:
    """The folder lake wired as S3 + the EventBridge rule + the Lambda are on AWS.

    Every object written emits S3's "Object Created" event to the same ``lambda_handler`` code,
    which decides (only landing files start runs) and starts the local Glue runner."""
    from lambda_handler.handler import Config, handle

    lake = LocalLake(data_dir)
    runner = LocalGlueRunner(lake.root, is_session)
    config = Config(job_name=job_name, bucket=lake.bucket)

    def deliver(bucket: str, key: str, tags: dict[str, str]) -> None:
        if key.startswith(LANDING_PREFIX + "/"):  # what the EventBridge rule forwards
            handle(object_created_event(bucket, key), runner, config, LocalObjectTags(key, tags))

    lake.add_listener(deliver)
    return lake
