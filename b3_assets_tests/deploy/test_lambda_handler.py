"""The landing-event Lambda: which events start a Glue run, with which arguments, and failures.

The accepted event is AWS's documented EventBridge "Object Created" example (S3 user guide,
"EventBridge event message structure") with our bucket and key, kept as a JSON fixture. Glue is
moto's server on 127.0.0.1: a real HTTP round trip through boto3, never AWS.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError

from b3_assets.platform.local_aws import object_created_event
from glue import layout
from lambda_handler import handler as lh

FIXTURE = Path(__file__).parents[1] / "fixtures" / "s3_object_created_event.json"
BUCKET = "b3-lake-test"  # the fixture's bucket
GOOD_KEY = "landing/ibov/dt=2025-03-05/ibov.parquet"  # the fixture's key, decoded
FAKE_CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, and a fresh cached client, so no test can reach AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_GLUE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    lh.glue_client.cache_clear()
    lh.s3_client.cache_clear()
    yield
    lh.glue_client.cache_clear()
    lh.s3_client.cache_clear()


@pytest.fixture
def glue(moto_endpoint: str) -> Any:
    return boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1", **FAKE_CREDS)


def _create_job(glue: Any) -> str:
    name = f"b3-etl-soma-acao-{uuid.uuid4().hex[:8]}"
    glue.create_job(
        Name=name,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://artifacts/job.py"},
    )
    return name


_STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed in ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_FIELDS}


def _real_event() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


class _ExplodingGlue:
    """A Glue client that must not be called: ignored events never start a run."""

    def start_job_run(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError(f"start_job_run called for an ignored event: {kwargs}")


def _set(value: Any, *path: str) -> Callable[[dict[str, Any]], Any]:
    def change(event: dict[str, Any]) -> dict[str, Any]:
        node = event
        for name in path[:-1]:
            node = node[name]
        node[path[-1]] = value
        return event

    return change


def _drop(*path: str) -> Callable[[dict[str, Any]], Any]:
    def change(event: dict[str, Any]) -> dict[str, Any]:
        node = event
        for name in path[:-1]:
            node = node[name]
        del node[path[-1]]
        return event

    return change


def _key(key: str) -> Callable[[dict[str, Any]], Any]:
    """The event for ``key``, encoded as S3 encodes it."""
    return _set(quote_plus(key, safe="/"), "detail", "object", "key")


def test_the_documented_event_starts_its_date() -> None:
    assert lh.decide(_real_event(), BUCKET) == lh.Decision(
        reason="landing file",
        data_carteira="2025-03-05",
        event_id="17793124-05d4-b198-2fde-7ededc63b103",
        key=GOOD_KEY,
    )


REJECTED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "other bucket": _set("someone-elses-bucket", "detail", "bucket", "name"),
    "Object Deleted": _set("Object Deleted", "detail-type"),
    "other source": _set("my.app", "source"),
    "raw, not landing": _key("raw/ibov/dt=2025-03-05/ibov.parquet"),
    "sibling prefix": _key("landing/ibovx/dt=2025-03-05/ibov.parquet"),
    "leading slash": _key("/" + GOOD_KEY),
    "nested folder": _key("landing/ibov/dt=2025-03-05/sub/ibov.parquet"),
    "other file name": _key("landing/ibov/dt=2025-03-05/part-0.parquet"),
    "temp suffix": _key(GOOD_KEY + ".tmp"),
    "dot-file": _key("landing/ibov/dt=2025-03-05/.ibov.parquet"),
    "Feb 30": _key("landing/ibov/dt=2025-02-30/ibov.parquet"),
    "month 13": _key("landing/ibov/dt=2025-13-01/ibov.parquet"),
    "non-ASCII digits": _key("landing/ibov/dt=\u0662\u0660\u0662\u0665-03-05/ibov.parquet"),
    "no detail": _drop("detail"),
    "detail not an object": _set([], "detail"),
    "no bucket name": _drop("detail", "bucket", "name"),
    "no object": _drop("detail", "object"),
    "no key": _drop("detail", "object", "key"),
    "key not a string": _set(20250305, "detail", "object", "key"),
    "no detail-type": _drop("detail-type"),
    "None": lambda event: None,
    "list": lambda event: [event],
    "JSON string": json.dumps,
}


@pytest.mark.parametrize("change", REJECTED.values(), ids=REJECTED.keys())
def test_rejected_events_start_nothing(change: Callable[[dict[str, Any]], Any]) -> None:
    event = change(_real_event())
    decision = lh.decide(event, BUCKET)
    assert not decision.start and decision.reason
    assert lh.handle(event, _ExplodingGlue(), lh.Config("job", BUCKET)) == {
        "status": "ignored", "reason": decision.reason}


@pytest.mark.parametrize("raw", [
    GOOD_KEY,  # not encoded (nothing to decode)
    "landing/ibov/dt%3d2025-03-05/ibov.parquet",  # lower-case escape
    "landing%2Fibov%2Fdt%3D2025-03-05%2Fibov%2Eparquet",  # every separator encoded
])
def test_url_encoded_keys_are_decoded(raw: str) -> None:
    decision = lh.decide(_set(raw, "detail", "object", "key")(_real_event()), BUCKET)
    assert (decision.data_carteira, decision.key) == ("2025-03-05", GOOD_KEY)


@pytest.mark.parametrize(("raw", "decoded"), [
    ("landing/ibov/dt%253D2025-03-05/ibov.parquet",  # decoded once only
     "landing/ibov/dt%3D2025-03-05/ibov.parquet"),
    ("landing/ibov/dt%3D2025-03-05/ibov+.parquet",  # "+" is a space
     "landing/ibov/dt=2025-03-05/ibov .parquet"),
])
def test_decoding_cannot_produce_a_landing_key(raw: str, decoded: str) -> None:
    decision = lh.decide(_set(raw, "detail", "object", "key")(_real_event()), BUCKET)
    assert (decision.start, decision.key) == (False, decoded)


def test_the_local_event_builder_agrees_with_the_handler() -> None:
    """The local lake's events (b3_assets.platform.local_aws) take the same path as AWS's."""
    for encode_key in (True, False):
        event = object_created_event(BUCKET, GOOD_KEY, event_id="e-1", encode_key=encode_key)
        assert lh.decide(event, BUCKET) == lh.Decision("landing file", "2025-03-05", "e-1",
                                                       GOOD_KEY)


def test_the_pattern_copy_equals_the_layout() -> None:
    assert lh.LANDING_KEY_PATTERN == layout.LANDING_KEY_PATTERN
    assert lh.LANDING_BATCH_TAG == layout.LANDING_BATCH_TAG


@pytest.mark.parametrize("database", [None, "b3_db"])
def test_a_landing_event_starts_one_glue_run(
    glue: Any, database: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=lh.__name__)
    job = _create_job(glue)
    result = lh.handle(_real_event(), glue, lh.Config(job, BUCKET, database))

    expected = {"--data_carteira": "2025-03-05", "--bucket": BUCKET}
    if database:
        expected["--database"] = database
    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert result == {"status": "started", "job_run_id": run["Id"],
                      "data_carteira": "2025-03-05", "arguments": expected}
    assert glue.get_job_run(JobName=job, RunId=run["Id"])["JobRun"]["Arguments"] == expected
    (record,) = [r for r in caplog.records if r.name == lh.__name__]
    assert record.getMessage() == "job run started"
    # Lambda's JSON log format adds these as top-level keys, with no default= for odd types.
    assert json.loads(json.dumps(_extra(record))) == {
        "event_id": "17793124-05d4-b198-2fde-7ededc63b103", "key": GOOD_KEY,
        "reason": "landing file", "job_name": job, "data_carteira": "2025-03-05",
        "job_run_id": run["Id"]}


def test_the_entry_point_reads_the_environment(
    moto_endpoint: str, glue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _create_job(glue)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # boto3 honours it: moto, not AWS
    monkeypatch.setenv("GLUE_JOB_NAME", job)
    monkeypatch.setenv("B3_BUCKET", BUCKET)
    monkeypatch.setenv("GLUE_DATABASE", "b3_db")
    _put_landing_object(moto_endpoint)

    out = lh.handler(_real_event(), None)

    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert run["Id"] == out["job_run_id"]
    assert run["Arguments"] == {"--data_carteira": "2025-03-05", "--bucket": BUCKET,
                                "--database": "b3_db"}
    assert lh.glue_client() is lh.glue_client()  # one client per container
    assert lh.glue_client().meta.config.retries["mode"] == "standard"


def _put_landing_object(endpoint: str, tags: str | None = None) -> Any:
    """The object the fixture's event announces, in moto's S3 (with ``tags``, URL-encoded)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **FAKE_CREDS)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    extra = {"Tagging": tags} if tags else {}
    s3.put_object(Bucket=BUCKET, Key=GOOD_KEY, Body=b"PAR1", **extra)
    return s3


def test_a_landing_file_of_a_backfill_starts_no_run(moto_endpoint: str, glue: Any) -> None:
    job = _create_job(glue)
    s3 = _put_landing_object(moto_endpoint, f"{lh.LANDING_BATCH_TAG}=run-42")
    out = lh.handle(_real_event(), glue, lh.Config(job, BUCKET), s3)
    assert out["status"] == "ignored" and "backfill run-42" in out["reason"]
    assert glue.get_job_runs(JobName=job)["JobRuns"] == []
    s3.delete_object_tagging(Bucket=BUCKET, Key=GOOD_KEY)
    assert lh.handle(_real_event(), glue, lh.Config(job, BUCKET), s3)["status"] == "started"


def test_a_glue_error_is_logged_and_raised(
    glue: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A job that does not exist: Lambda must see the error (retries, then the DLQ)."""
    with pytest.raises(ClientError) as info:
        lh.handle(_real_event(), glue, lh.Config("no-such-job", BUCKET))
    assert info.value.response["Error"]["Code"] == "EntityNotFoundException"
    (record,) = [r for r in caplog.records if r.name == lh.__name__]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert _extra(record)["data_carteira"] == "2025-03-05"


@pytest.mark.parametrize("missing", ["GLUE_JOB_NAME", "B3_BUCKET"])
def test_missing_configuration_is_named(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"GLUE_JOB_NAME": "job", "B3_BUCKET": BUCKET, missing: " "}
    with pytest.raises(lh.ConfigError, match=missing):
        lh.Config.from_env(environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(lh.ConfigError, match=missing):
        lh.handler(_real_event(), None)
    assert lh.Config.from_env({"GLUE_JOB_NAME": "j", "B3_BUCKET": "b"}).database is None


def test_the_zipped_file_imports_with_boto3_and_the_stdlib_only(tmp_path: Path) -> None:
    """Run handler.py alone, as in the Lambda zip: -I keeps the checkout off sys.path."""
    shutil.copy(lh.__file__, tmp_path / "handler.py")
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import handler; "
        "event = json.load(open(sys.argv[2])); "
        "ours = {'b3_assets', 'glue', 'dagster', 'lambda_handler'}; "
        "print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] in ours), "
        "handler.decide(event, sys.argv[3]).data_carteira]))"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(tmp_path), str(FIXTURE), BUCKET],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[], "2025-03-05"]


def test_decide_does_not_touch_the_event() -> None:
    event = _real_event()
    before = copy.deepcopy(event)
    lh.decide(event, BUCKET)
    assert event == before


def test_every_start_asks_for_queuing(glue: Any) -> None:
    """Glue queues a run past MaxConcurrentRuns only when the run asks for it (the API: a run
    whose JobRunQueuingEnabled is false or absent is not considered for queuing). moto ignores
    the field, so what botocore sends is recorded."""
    sent: list[dict[str, Any]] = []
    glue.meta.events.register(
        "provide-client-params.glue.StartJobRun", lambda params, **_: sent.append(dict(params))
    )
    job = _create_job(glue)
    lh.handle(_real_event(), glue, lh.Config(job, BUCKET))
    assert [p.get("JobRunQueuingEnabled") for p in sent] == [True]
    assert lh.QUEUING == layout.QUEUING
