"""Landing event → Glue job run: the Lambda between the lake and the refine job.

S3 publishes an EventBridge "Object Created" event for every object written to the lake bucket;
the stack's rule forwards only ``landing/ibov/dt=…/*.parquet`` keys here, and this module starts
the Glue job for that portfolio date (``--data_carteira YYYY-MM-DD``). The local lake emits the
very same event (:func:`object_created_event`) and feeds it to :func:`handle` with a local runner
in place of the Glue client, so both environments run this exact code.

Delivery is at-least-once (EventBridge and Lambda's asynchronous retries may both repeat an
event). Nothing here deduplicates: :func:`decide` is pure, so a repeated event always maps to
the same date, and the Glue job replaces that whole date (``DataCarteira=…/``) on every run, so
a second run for the same date rewrites the same rows instead of appending duplicates. Two
runs of one date that overlap in time are serialized by the job itself (a later run waits for
the earlier one, ``glue.job.wait_for_earlier_runs``), so they never interleave their writes.

Everything that is not a landing Parquet file of this bucket is logged and ignored (the return
value says why). When Glue refuses a run for now — ``ConcurrentRunsExceededException`` while a
large backfill fills the job's slots, throttling — the handler waits (backoff with jitter) and
asks again within the same invocation while its time lasts, so a backfill drains at Glue's pace
instead of exhausting Lambda's two retries in three minutes. What still fails, and every other
error (missing permissions, a deleted job), is raised, never swallowed: Lambda then retries the
event and finally parks it in the dead-letter queue, so no landing date is lost silently.

Only boto3 and the standard library are used: the file ships as a plain zip.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote_plus, unquote_plus

__all__ = [
    "CONCURRENCY_ERROR_CODES",
    "DEFAULT_LANDING_PREFIX",
    "THROTTLING_ERROR_CODES",
    "Config",
    "ConfigError",
    "Decision",
    "GlueClient",
    "decide",
    "handle",
    "handler",
    "is_retryable_error",
    "job_arguments",
    "object_created_event",
    "retry_wait_s",
]

DEFAULT_LANDING_PREFIX = "landing/ibov"
DETAIL_TYPE = "Object Created"
SOURCE = "aws.s3"

#: Error codes botocore itself treats as throttling (botocore.retries.standard), plus Glue's own.
THROTTLING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
#: Glue refuses a run because too many are in flight: worth retrying later, never dropping.
CONCURRENCY_ERROR_CODES = frozenset(
    {"ConcurrentRunsExceededException", "ResourceNumberLimitExceededException"}
)

#: Waiting for Glue to accept a refused run: first wait, ceiling, and the time kept in hand so
#: the last attempt's error is logged and raised before Lambda's timeout cuts the invocation.
RETRY_FIRST_WAIT_S = 2.0
RETRY_MAX_WAIT_S = 30.0
RETRY_SAFETY_MARGIN_S = 10.0

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Spark skips files whose names start with "_" or "." (markers, temp files): a run for them
# would refine nothing new, so they are not triggers either.
_NAME_RE = re.compile(r"[^/._][^/]*\.parquet")


# --------------------------------------------------------------------------- logging


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, so CloudWatch Logs Insights can filter on every field."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class _StdoutHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at emit time (Lambda's stream, or a test capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # pragma: no cover - logging must never break the handler
            self.handleError(record)


logger = logging.getLogger("b3.lambda_handler")
if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
    _handler = _StdoutHandler()
    _handler.setFormatter(_JsonFormatter())
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    # Lambda's runtime puts its own text handler on the root logger; propagating would print
    # every line twice, once not as JSON.
    logger.propagate = False


def _log(level: int, message: str, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})


# --------------------------------------------------------------------------- configuration


class ConfigError(RuntimeError):
    """The function's environment is incomplete: raised so the event goes to the DLQ, not lost."""


@dataclass(frozen=True)
class Config:
    """What the handler needs besides the event: the job to start and the lake it watches."""

    job_name: str
    bucket: str
    landing_prefix: str = DEFAULT_LANDING_PREFIX
    refined_prefix: str | None = None
    database: str | None = None
    table: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read ``GLUE_JOB_NAME``, ``B3_BUCKET``, ``LANDING_PREFIX`` and the optional job args."""
        env = os.environ if environ is None else environ
        job_name = env.get("GLUE_JOB_NAME", "").strip()
        bucket = env.get("B3_BUCKET", "").strip()
        missing = [n for n, v in (("GLUE_JOB_NAME", job_name), ("B3_BUCKET", bucket)) if not v]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        prefix = env.get("LANDING_PREFIX", "").strip().strip("/") or DEFAULT_LANDING_PREFIX
        return cls(
            job_name=job_name,
            bucket=bucket,
            landing_prefix=prefix,
            refined_prefix=env.get("REFINED_PREFIX", "").strip() or None,
            database=env.get("GLUE_DATABASE", "").strip() or None,
            table=env.get("GLUE_TABLE", "").strip() or None,
        )


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Decision:
    """What to do with one event: start the job for ``data_carteira``, or ignore it (``reason``).

    Pure data, equal for equal events: a redelivered event yields an equal decision.
    """

    action: Literal["start", "ignore"]
    reason: str
    event_id: str | None = None
    bucket: str | None = None
    key: str | None = None
    data_carteira: str | None = None

    @property
    def start(self) -> bool:
        return self.action == "start"


def _ignore(reason: str, event_id: str | None = None, bucket: str | None = None,
            key: str | None = None) -> Decision:
    return Decision("ignore", reason, event_id=event_id, bucket=bucket, key=key)


def decide(
    event: Any, bucket: str, landing_prefix: str = DEFAULT_LANDING_PREFIX
) -> Decision:
    """Map an EventBridge S3 event to a :class:`Decision`, with no I/O.

    Accepted: detail-type "Object Created" from ``aws.s3`` in ``bucket``, whose URL-decoded key
    is exactly ``<landing_prefix>/dt=YYYY-MM-DD/<name>.parquet`` with a real calendar date.
    """
    if not isinstance(event, Mapping):
        return _ignore(f"event is not an object ({type(event).__name__})")
    raw_id = event.get("id")
    event_id = raw_id if isinstance(raw_id, str) else None
    if event.get("detail-type") != DETAIL_TYPE:
        return _ignore(f"detail-type is {event.get('detail-type')!r}, not {DETAIL_TYPE!r}",
                       event_id)
    if event.get("source") != SOURCE:
        return _ignore(f"source is {event.get('source')!r}, not {SOURCE!r}", event_id)
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return _ignore("event has no detail object", event_id)
    bucket_obj, object_obj = detail.get("bucket"), detail.get("object")
    name = bucket_obj.get("name") if isinstance(bucket_obj, Mapping) else None
    raw_key = object_obj.get("key") if isinstance(object_obj, Mapping) else None
    if not isinstance(name, str) or not name:
        return _ignore("event has no detail.bucket.name", event_id)
    if not isinstance(raw_key, str) or not raw_key:
        return _ignore("event has no detail.object.key", event_id, name)
    # S3 URL-encodes keys in its notifications ("+" for a space, "%3D" for "="); decoding a key
    # that carries no escapes leaves it unchanged.
    key = unquote_plus(raw_key)
    if name != bucket:
        return _ignore(f"bucket {name!r} is not the lake bucket {bucket!r}", event_id, name, key)

    prefix = landing_prefix.strip("/")
    if not key.startswith(prefix + "/"):
        return _ignore(f"key is not under {prefix}/", event_id, name, key)
    parts = key[len(prefix) + 1:].split("/")
    if any(p in ("", ".", "..") for p in parts):
        return _ignore("key has empty, '.' or '..' path segments", event_id, name, key)
    if len(parts) != 2:
        return _ignore(f"key is not {prefix}/dt=YYYY-MM-DD/<file>.parquet (nested or flat)",
                       event_id, name, key)
    partition, filename = parts
    if not partition.startswith("dt="):
        return _ignore("partition folder is not dt=YYYY-MM-DD", event_id, name, key)
    date_text = partition[3:]
    if not _DATE_RE.fullmatch(date_text):
        return _ignore(f"partition date {date_text!r} is not YYYY-MM-DD", event_id, name, key)
    try:
        date = dt.date.fromisoformat(date_text)
    except ValueError:
        return _ignore(f"partition date {date_text!r} is not a calendar date", event_id, name,
                       key)
    if not _NAME_RE.fullmatch(filename):
        return _ignore(f"file {filename!r} is not a visible .parquet file", event_id, name, key)
    return Decision("start", f"landing file for {date.isoformat()}", event_id=event_id,
                    bucket=name, key=key, data_carteira=date.isoformat())


def job_arguments(decision: Decision, config: Config) -> dict[str, str]:
    """The ``Arguments`` of ``StartJobRun`` for a start decision (the optional ones only if set)."""
    if not decision.start or decision.data_carteira is None:
        raise ValueError(f"no job arguments for an ignored event: {decision.reason}")
    args = {
        "--data_carteira": decision.data_carteira,
        "--bucket": config.bucket,
        "--landing_prefix": config.landing_prefix,
    }
    for name, value in (("--refined_prefix", config.refined_prefix),
                        ("--database", config.database), ("--table", config.table)):
        if value:
            args[name] = value
    return args


# --------------------------------------------------------------------------- side effects


class GlueClient(Protocol):
    """The one boto3 Glue method used, so a local runner can stand in for AWS."""

    def start_job_run(self, *, JobName: str, Arguments: dict[str, str]) -> Mapping[str, Any]:
        ...


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None


def is_retryable_error(exc: BaseException) -> bool:
    """True for throttling and Glue concurrency limits: the run should happen, just later."""
    code = _error_code(exc)
    return code in THROTTLING_ERROR_CODES or code in CONCURRENCY_ERROR_CODES


def retry_wait_s(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before asking Glue again after refusal number ``attempt`` (1-based): doubling
    from RETRY_FIRST_WAIT_S up to RETRY_MAX_WAIT_S, jittered to 50–100 % so the waiting
    invocations of a backfill do not ask in lockstep."""
    ceiling = min(RETRY_MAX_WAIT_S, RETRY_FIRST_WAIT_S * 2 ** min(attempt - 1, 16))
    return ceiling * (rng or random).uniform(0.5, 1.0)


def handle(
    event: Any,
    glue_client: GlueClient,
    config: Config,
    *,
    request_id: str | None = None,
    time_left_s: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Decide, and for a landing file start one job run; return a small summary of what happened.

    With ``time_left_s`` (the Lambda context's remaining time), a run Glue refuses for now
    (:func:`is_retryable_error`) is asked for again after :func:`retry_wait_s` while enough
    time is left. Then, or at once for any other error, raises what ``start_job_run`` raised
    (after logging it), so the caller — Lambda's async retry and DLQ, or the local runner —
    sees the failure instead of a lost date.
    """
    decision = decide(event, config.bucket, config.landing_prefix)
    fields: dict[str, Any] = {
        "event_id": decision.event_id,
        "bucket": decision.bucket,
        "key": decision.key,
        "decision": decision.action,
        "reason": decision.reason,
    }
    if request_id:
        fields["aws_request_id"] = request_id
    if not decision.start:
        _log(logging.INFO, "event ignored", **fields)
        return {"status": "ignored", "reason": decision.reason, "event_id": decision.event_id}

    arguments = job_arguments(decision, config)
    fields.update(job_name=config.job_name, data_carteira=decision.data_carteira)
    attempt = 1
    while True:
        try:
            response = glue_client.start_job_run(JobName=config.job_name, Arguments=arguments)
            break
        except Exception as exc:
            retryable = is_retryable_error(exc)
            wait = retry_wait_s(attempt)
            if (retryable and time_left_s is not None
                    and time_left_s() - wait > RETRY_SAFETY_MARGIN_S):
                _log(logging.WARNING, "Glue refused the run for now; asking again",
                     **fields, error_code=_error_code(exc), attempt=attempt,
                     wait_s=round(wait, 3))
                sleep(wait)
                attempt += 1
                continue
            _log(logging.ERROR,
                 "start_job_run failed; raising so Lambda retries or dead-letters it",
                 **fields, error_code=_error_code(exc), error=str(exc), retryable=retryable,
                 attempts=attempt)
            raise
    run_id = response.get("JobRunId")
    _log(logging.INFO, "job run started", **fields, job_run_id=run_id, attempts=attempt)
    return {
        "status": "started",
        "event_id": decision.event_id,
        "job_name": config.job_name,
        "job_run_id": run_id,
        "data_carteira": decision.data_carteira,
        "arguments": arguments,
        "attempts": attempt,
    }


_glue_client: Any = None


def _default_glue_client() -> Any:
    """The boto3 Glue client, built once per container (cold start) and reused afterwards."""
    global _glue_client
    if _glue_client is None:
        import boto3
        from botocore.config import Config as BotoConfig

        # A few quick SDK retries absorb a throttling blip; past that the error reaches Lambda.
        _glue_client = boto3.client(
            "glue", config=BotoConfig(retries={"mode": "standard", "max_attempts": 3})
        )
    return _glue_client


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (``handler.handler``): configuration from the environment."""
    config = Config.from_env()
    request_id = getattr(context, "aws_request_id", None)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    return handle(
        event, _default_glue_client(), config,
        request_id=request_id if isinstance(request_id, str) else None,
        time_left_s=(lambda: remaining_ms() / 1000) if callable(remaining_ms) else None,
    )


# --------------------------------------------------------------------------- event builder


def object_created_event(
    bucket: str,
    key: str,
    *,
    size: int = 0,
    etag: str = "",
    version_id: str | None = None,
    region: str = "us-east-1",
    account: str = "000000000000",
    event_id: str | None = None,
    time: dt.datetime | None = None,
    reason: str = "PutObject",
    requester: str | None = None,
    source_ip: str = "127.0.0.1",
    sequencer: str | None = None,
    encode_key: bool = True,
) -> dict[str, Any]:
    """The EventBridge event S3 emits after a write of ``bucket``/``key``.

    The key is URL-encoded as in S3 notifications (``" "`` → ``+``, ``=`` → ``%3D``, ``/`` kept)
    unless ``encode_key`` is false, so callers exercise the decoding path the real events need.
    """
    when = (time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/") if encode_key else key,
        "size": size,
        "etag": etag,
    }
    if version_id is not None:
        obj["version-id"] = version_id
    obj["sequencer"] = sequencer or f"{int(when.timestamp() * 1_000_000):018X}"
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": requester or account,
            "source-ip-address": source_ip,
            "reason": reason,
        },
    }
