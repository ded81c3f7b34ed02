"""Landing event -> one Glue job run: the Lambda between the lake and the refine job.

S3 publishes an EventBridge "Object Created" event for each object written to the lake bucket.
:func:`decide` (pure) accepts only a landing Parquet file of that bucket, and :func:`handle`
starts the Glue job for its date. Delivery is at-least-once; a repeated event starts a second
run for the same date, which is harmless because the job replaces that whole date.

Nothing is retried here: botocore's standard retry mode absorbs throttling, the job queues runs
past its concurrency limit, and any other error is logged and raised so
Lambda's async retries and then the dead-letter queue keep the event. Logs are plain
``logging`` records with ``extra`` fields; Lambda's JSON log format turns them into JSON.

Deployed alone as ``handler.py`` at the root of a zip: boto3 and the standard library only.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config as BotoConfig

#: Copy of ``glue.layout.LANDING_KEY_PATTERN`` (this file cannot import ``glue``); a test
#: proves the two equal.
LANDING_KEY_PATTERN = r"landing/ibov/dt=(\d{4}-\d{2}-\d{2})/ibov\.parquet"
_LANDING_KEY = re.compile(LANDING_KEY_PATTERN)
#: Copy of ``glue.layout.LANDING_BATCH_TAG``: a landing file of a backfill carries it, and
#: Dagster starts one run for the whole batch instead of one per file.
LANDING_BATCH_TAG = "b3-pipeline-batch"
SOURCE = "aws.s3"
DETAIL_TYPE = "Object Created"
#: Every StartJobRun asks for queuing: the API considers for Glue's queue only runs whose
#: JobRunQueuingEnabled is true (absent or false means a run past MaxConcurrentRuns is refused
#: with ConcurrentRunsExceededException, retried twice by Lambda and dead-lettered), whatever
#: the job's own setting. Copy of ``glue.layout.QUEUING``; a test proves the two equal.
QUEUING: dict[str, Any] = {"JobRunQueuingEnabled": True}
#: Throttling and transient errors are retried by botocore (with backoff), not by this code.
GLUE_RETRIES: dict[str, Any] = {"mode": "standard", "max_attempts": 5}

logger = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """The function's environment is incomplete: raised so the event is retried, not lost."""


@dataclass(frozen=True)
class Config:
    """What the handler needs besides the event: the job to start and the lake it watches."""

    job_name: str
    bucket: str
    database: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """``GLUE_JOB_NAME`` and ``B3_BUCKET`` (required), ``GLUE_DATABASE`` (optional)."""
        env = os.environ if environ is None else environ
        required: dict[str, str] = {}
        for name in ("GLUE_JOB_NAME", "B3_BUCKET"):
            required[name] = env.get(name, "").strip()
            if not required[name]:
                raise ConfigError(f"environment variable {name} is missing or empty")
        return cls(
            job_name=required["GLUE_JOB_NAME"],
            bucket=required["B3_BUCKET"],
            database=env.get("GLUE_DATABASE", "").strip() or None,
        )


@dataclass(frozen=True)
class Decision:
    """Start the job for ``data_carteira``, or ignore the event for ``reason``.

    Equal events give equal decisions, so a redelivered event targets the same date.
    """

    reason: str
    data_carteira: str | None = None
    event_id: str | None = None
    key: str | None = None

    @property
    def start(self) -> bool:
        return self.data_carteira is not None


def _field(node: Any, *path: str) -> Any:
    """``node[path[0]][path[1]]…``, or None as soon as a level is missing or not an object."""
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return node


def decide(event: Any, bucket: str) -> Decision:
    """Map an EventBridge event to a :class:`Decision`, with no I/O.

    Accepted: an S3 "Object Created" event of ``bucket`` whose URL-decoded key full-matches
    :data:`LANDING_KEY_PATTERN` with a real calendar date; everything else is ignored.
    """
    if not isinstance(event, Mapping):
        return Decision(f"event is not an object ({type(event).__name__})")
    event_id = event.get("id") if isinstance(event.get("id"), str) else None
    kind = (event.get("source"), event.get("detail-type"))
    if kind != (SOURCE, DETAIL_TYPE):
        return Decision(f"not an S3 {DETAIL_TYPE!r} event: {kind!r}", event_id=event_id)
    name = _field(event, "detail", "bucket", "name")
    raw_key = _field(event, "detail", "object", "key")
    if not isinstance(name, str) or not isinstance(raw_key, str):
        return Decision("event has no detail.bucket.name or detail.object.key", event_id=event_id)
    if name != bucket:
        return Decision(f"bucket {name!r} is not the lake bucket {bucket!r}", event_id=event_id)
    # S3 URL-encodes keys in its events ("+" for a space, "%3D" for "="): decode exactly once.
    key = unquote_plus(raw_key)
    match = _LANDING_KEY.fullmatch(key)
    if match is None:
        return Decision("key is not a landing file", event_id=event_id, key=key)
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        return Decision(f"{match.group(1)!r} is not a calendar date", event_id=event_id, key=key)
    return Decision("landing file", day.isoformat(), event_id=event_id, key=key)


def job_arguments(data_carteira: str, config: Config) -> dict[str, str]:
    """``StartJobRun`` Arguments: the date and the bucket; ``--database`` only when configured."""
    arguments = {"--data_carteira": data_carteira, "--bucket": config.bucket}
    if config.database:
        arguments["--database"] = config.database
    return arguments


class GlueClient(Protocol):
    """The one Glue method used, so the local runner can stand in for boto3's client."""

    def start_job_run(
        self, *, JobName: str, Arguments: dict[str, str], JobRunQueuingEnabled: bool
    ) -> Mapping[str, Any]: ...


def batch_of(s3_client: Any, bucket: str, key: str) -> str | None:
    """The backfill a landing object belongs to (its :data:`LANDING_BATCH_TAG`), or None."""
    tags = s3_client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    return next((t["Value"] for t in tags if t.get("Key") == LANDING_BATCH_TAG), None)


def handle(
    event: Any, glue_client: GlueClient, config: Config, s3_client: Any = None
) -> dict[str, Any]:
    """Decide; for a landing file start exactly one job run. Errors are logged and raised.

    With ``s3_client``, a landing file tagged as part of a backfill is left to the batch's
    own run (a year of backfill is one Glue run, not 250)."""
    decision = decide(event, config.bucket)
    fields = {"event_id": decision.event_id, "key": decision.key, "reason": decision.reason}
    if decision.data_carteira is None:
        logger.info("event ignored", extra=fields)
        return {"status": "ignored", "reason": decision.reason}
    if s3_client is not None and decision.key is not None:
        batch = batch_of(s3_client, config.bucket, decision.key)
        if batch is not None:
            reason = f"part of backfill {batch}: its one Glue run is started by Dagster"
            logger.info("event ignored", extra={**fields, "reason": reason})
            return {"status": "ignored", "reason": reason}
    arguments = job_arguments(decision.data_carteira, config)
    fields.update(job_name=config.job_name, data_carteira=decision.data_carteira)
    try:
        response = glue_client.start_job_run(
            JobName=config.job_name, Arguments=arguments, **QUEUING
        )
    except Exception:
        logger.exception("start_job_run failed; raising for Lambda's retries", extra=fields)
        raise
    run_id = response["JobRunId"]
    logger.info("job run started", extra={**fields, "job_run_id": run_id})
    return {
        "status": "started",
        "job_run_id": run_id,
        "data_carteira": decision.data_carteira,
        "arguments": arguments,
    }


@functools.cache
def glue_client() -> Any:
    """boto3's Glue client, built once per Lambda container and reused by later invocations."""
    return boto3.client("glue", config=BotoConfig(retries=GLUE_RETRIES))


@functools.cache
def s3_client() -> Any:
    """boto3's S3 client (for the batch tag), built once per Lambda container."""
    return boto3.client("s3", config=BotoConfig(retries=GLUE_RETRIES))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point (``handler.handler``): configuration from the environment."""
    config = Config.from_env()  # first: a broken environment fails before any AWS call
    return handle(event, glue_client(), config, s3_client())
