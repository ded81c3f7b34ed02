"""The landing-event Lambda: which events start a Glue run, with which arguments, and failures.

Glue is moto's server on 127.0.0.1 (a real HTTP round trip through boto3); throttling, which moto
cannot produce, comes from botocore's Stubber. Nothing here talks to AWS.
"""

from __future__ import annotations

import copy
import json
import random
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from lambda_handler import handler as lh

BUCKET = "b3-lake-test"
GOOD_KEY = "landing/ibov/dt=2025-03-05/ibov.parquet"
FAKE_CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, so no test can ever reach a real account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_GLUE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(lh, "_glue_client", None)


@pytest.fixture
def glue(moto_endpoint: str) -> Any:
    return boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1", **FAKE_CREDS)


def _create_job(glue: Any, max_concurrent_runs: int = 10) -> str:
    name = f"b3-etl-soma-acao-{uuid.uuid4().hex[:8]}"
    glue.create_job(
        Name=name,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://artifacts/job.py"},
        GlueVersion="5.0",
        WorkerType="G.1X",
        NumberOfWorkers=2,
        ExecutionProperty={"MaxConcurrentRuns": max_concurrent_runs},
        DefaultArguments={"--job-bookmark-option": "job-bookmark-disable"},
    )
    return name


def _config(job_name: str = "job", **kw: Any) -> lh.Config:
    return lh.Config(job_name=job_name, bucket=BUCKET, **kw)


class _ExplodingGlue:
    """A Glue client that must not be called: ignored events never start a run."""

    def start_job_run(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError(f"start_job_run called for an ignored event: {kwargs}")


class _RecordingGlue:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def start_job_run(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"JobRunId": f"jr_{len(self.calls)}"}


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- rejected keys

REJECTED_KEYS = {
    "other top folder": "raw/ibov/dt=2025-03-05/ibov.parquet",
    "refined output": "refined/DataCarteira=2025-03-05/Acao=PETR/x.parquet",
    "sibling prefix": "landing/ibovx/dt=2025-03-05/ibov.parquet",
    "prefix as file": "landing/ibov.parquet",
    "no partition folder": "landing/ibov/ibov.parquet",
    "not dt=": "landing/ibov/date=2025-03-05/ibov.parquet",
    "Feb 30": "landing/ibov/dt=2025-02-30/ibov.parquet",
    "month 13": "landing/ibov/dt=2025-13-01/ibov.parquet",
    "2-digit year": "landing/ibov/dt=25-03-05/ibov.parquet",
    "unpadded": "landing/ibov/dt=2025-3-5/ibov.parquet",
    "basic ISO": "landing/ibov/dt=20250305/ibov.parquet",
    "arabic digits": "landing/ibov/dt=\u0662\u0660\u0662\u0665-03-05/ibov.parquet",
    "date with time": "landing/ibov/dt=2025-03-05T00:00/ibov.parquet",
    "dotdot after date": "landing/ibov/dt=2025-03-05/../ibov.parquet",
    "dotdot before date": "landing/ibov/../ibov/dt=2025-03-05/ibov.parquet",
    "dot segment": "landing/ibov/./dt=2025-03-05/ibov.parquet",
    "double slash": "landing/ibov//dt=2025-03-05/ibov.parquet",
    "nested folder": "landing/ibov/dt=2025-03-05/sub/ibov.parquet",
    "folder marker": "landing/ibov/dt=2025-03-05/",
    "temp suffix": "landing/ibov/dt=2025-03-05/ibov.parquet.tmp",
    "json": "landing/ibov/dt=2025-03-05/manifest.json",
    "upper-case ext": "landing/ibov/dt=2025-03-05/ibov.PARQUET",
    "bare extension": "landing/ibov/dt=2025-03-05/.parquet",
    "hidden file": "landing/ibov/dt=2025-03-05/.ibov.parquet",
    "spark marker": "landing/ibov/dt=2025-03-05/_SUCCESS",
    "underscore temp": "landing/ibov/dt=2025-03-05/_tmp.parquet",
    "leading slash": "/landing/ibov/dt=2025-03-05/ibov.parquet",
}


@pytest.mark.parametrize("key", REJECTED_KEYS.values(), ids=REJECTED_KEYS.keys())
@pytest.mark.parametrize("encode_key", [True, False], ids=["encoded", "literal"])
def test_rejected_keys_start_nothing(key: str, encode_key: bool) -> None:
    event = lh.object_created_event(BUCKET, key, encode_key=encode_key)
    decision = lh.decide(event, BUCKET)
    assert decision.action == "ignore" and not decision.start
    assert decision.data_carteira is None
    result = lh.handle(event, _ExplodingGlue(), _config())
    assert result["status"] == "ignored"
    assert result["reason"] == decision.reason
    assert result["event_id"] == event["id"]


def test_other_bucket_is_ignored() -> None:
    event = lh.object_created_event("someone-elses-bucket", GOOD_KEY)
    decision = lh.decide(event, BUCKET)
    assert decision.action == "ignore"
    assert "someone-elses-bucket" in decision.reason
    assert lh.handle(event, _ExplodingGlue(), _config())["status"] == "ignored"


def test_custom_landing_prefix() -> None:
    event = lh.object_created_event(BUCKET, "lake/in/dt=2025-03-05/ibov.parquet")
    assert lh.decide(event, BUCKET, "lake/in").data_carteira == "2025-03-05"
    assert lh.decide(event, BUCKET, "lake/in/").data_carteira == "2025-03-05"
    assert lh.decide(event, BUCKET).action == "ignore"


def _good() -> dict[str, Any]:
    return lh.object_created_event(BUCKET, GOOD_KEY, event_id="e-1")


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    event = _good()
    node: Any = event
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return event


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = _good()
    node: Any = event
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return event


MALFORMED = {
    "None": None,
    "list": [_good()],
    "string": json.dumps(_good()),
    "empty dict": {},
    "no detail": _without(("detail",)),
    "detail null": _with(("detail",), None),
    "detail list": _with(("detail",), []),
    "no detail-type": _without(("detail-type",)),
    "Object Deleted": _with(("detail-type",), "Object Deleted"),
    "s3 notification shape": {"Records": [{"s3": {"bucket": {"name": BUCKET},
                                                  "object": {"key": GOOD_KEY}}}]},
    "other source": _with(("source",), "my.app"),
    "no bucket": _without(("detail", "bucket")),
    "bucket name null": _with(("detail", "bucket", "name"), None),
    "bucket is string": _with(("detail", "bucket"), BUCKET),
    "no object": _without(("detail", "object")),
    "no key": _without(("detail", "object", "key")),
    "key number": _with(("detail", "object", "key"), 20250305),
    "empty key": _with(("detail", "object", "key"), ""),
}


@pytest.mark.parametrize("event", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_events_are_ignored(event: Any, capsys: pytest.CaptureFixture[str]) -> None:
    decision = lh.decide(event, BUCKET)
    assert decision.action == "ignore" and decision.reason
    result = lh.handle(event, _ExplodingGlue(), _config())
    assert result["status"] == "ignored"
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["decision"] == "ignore" and line["reason"] == decision.reason


def test_the_good_event_is_accepted() -> None:
    assert lh.decide(_good(), BUCKET) == lh.Decision(
        action="start",
        reason="landing file for 2025-03-05",
        event_id="e-1",
        bucket=BUCKET,
        key=GOOD_KEY,
        data_carteira="2025-03-05",
    )


# --------------------------------------------------------------------------- URL-encoded keys


ENCODED = {
    "= as %3D": ("landing/ibov/dt%3D2025-03-05/ibov.parquet", GOOD_KEY),
    "lower-case %3d": ("landing/ibov/dt%3d2025-03-05/ibov.parquet", GOOD_KEY),
    "slashes too": ("landing%2Fibov%2Fdt%3D2025-03-05%2Fibov.parquet", GOOD_KEY),
    "+ is a space": ("landing/ibov/dt%3D2025-03-05/ibov+copy.parquet",
                     "landing/ibov/dt=2025-03-05/ibov copy.parquet"),
    "%2B is a plus": ("landing/ibov/dt%3D2025-03-05/a%2Bb.parquet",
                      "landing/ibov/dt=2025-03-05/a+b.parquet"),
}


@pytest.mark.parametrize(("raw", "decoded"), ENCODED.values(), ids=ENCODED.keys())
def test_url_encoded_keys_are_decoded(raw: str, decoded: str) -> None:
    event = lh.object_created_event(BUCKET, raw, encode_key=False)
    decision = lh.decide(event, BUCKET)
    assert decision.start, decision.reason
    assert decision.key == decoded
    assert decision.data_carteira == "2025-03-05"


@pytest.mark.parametrize("raw", [
    "landing/ibov/dt%253D2025-03-05/ibov.parquet",  # double-encoded: decoded once, still "%3D"
    "landing/ibov/dt%3D2025-03-05/%2E%2E/ibov.parquet",  # ".." hidden by encoding
    "landing/ibov/dt%3D2025-03-05%2Fsub/ibov.parquet",  # nesting hidden by encoding
    "landing/ibov/dt%3D2025-02-30/ibov.parquet",
])
def test_encoding_cannot_smuggle_bad_keys(raw: str) -> None:
    event = lh.object_created_event(BUCKET, raw, encode_key=False)
    assert lh.decide(event, BUCKET).action == "ignore"


def test_object_created_event_has_the_eventbridge_shape() -> None:
    event = lh.object_created_event(BUCKET, "landing/ibov/dt=2025-03-05/my file.parquet",
                                    size=1234, etag="abc", version_id="v1",
                                    region="sa-east-1", account="123456789012")
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time",
                          "region", "resources", "detail"}
    assert event["detail-type"] == "Object Created" and event["source"] == "aws.s3"
    assert event["resources"] == [f"arn:aws:s3:::{BUCKET}"]
    assert event["region"] == "sa-east-1" and event["account"] == "123456789012"
    detail = event["detail"]
    assert set(detail) == {"version", "bucket", "object", "request-id", "requester",
                           "source-ip-address", "reason"}
    assert detail["bucket"] == {"name": BUCKET}
    assert detail["object"]["key"] == "landing/ibov/dt%3D2025-03-05/my+file.parquet"
    assert detail["object"]["size"] == 1234 and detail["object"]["version-id"] == "v1"
    assert detail["reason"] == "PutObject"
    json.dumps(event)  # plain JSON, as EventBridge delivers it
    assert lh.decide(event, BUCKET).key == "landing/ibov/dt=2025-03-05/my file.parquet"


# --------------------------------------------------------------------------- purity, idempotency


def test_decide_is_pure_and_does_not_touch_the_event() -> None:
    event = _good()
    before = copy.deepcopy(event)
    first = lh.decide(event, BUCKET)
    assert event == before
    assert lh.decide(copy.deepcopy(event), BUCKET) == first


def test_duplicate_delivery_targets_the_same_date(glue: Any) -> None:
    """At-least-once delivery: the same event twice may start two runs, both for one date.

    That is safe because the Glue job replaces the whole DataCarteira=… partition on each run,
    so the second run rewrites the same rows; no run ever appends to a date.
    """
    job = _create_job(glue)
    event = _good()
    config = _config(job)
    assert lh.decide(event, BUCKET) == lh.decide(json.loads(json.dumps(event)), BUCKET)
    first = lh.handle(event, glue, config)
    second = lh.handle(event, glue, config)
    assert first["job_run_id"] != second["job_run_id"]
    runs = glue.get_job_runs(JobName=job)["JobRuns"]
    assert len(runs) == 2
    assert {r["Arguments"]["--data_carteira"] for r in runs} == {"2025-03-05"}
    assert first["arguments"] == second["arguments"]


# --------------------------------------------------------------------------- starting runs on moto


def test_accepted_key_starts_the_glue_job(glue: Any, capsys: pytest.CaptureFixture[str]) -> None:
    job = _create_job(glue)
    config = _config(job, refined_prefix="refined", database="default", table="b3_etl_soma_acao")
    event = lh.object_created_event(BUCKET, GOOD_KEY, event_id="evt-42")

    result = lh.handle(event, glue, config)

    assert result["status"] == "started" and result["data_carteira"] == "2025-03-05"
    expected = {
        "--data_carteira": "2025-03-05",
        "--bucket": BUCKET,
        "--landing_prefix": "landing/ibov",
        "--refined_prefix": "refined",
        "--database": "default",
        "--table": "b3_etl_soma_acao",
    }
    assert result["arguments"] == expected
    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert run["Id"] == result["job_run_id"]
    assert expected.items() <= run["Arguments"].items()
    assert run["Arguments"]["--job-bookmark-option"] == "job-bookmark-disable"  # job default

    (line,) = _json_lines(capsys.readouterr().out)
    assert line["level"] == "INFO" and line["message"] == "job run started"
    assert line["event_id"] == "evt-42" and line["bucket"] == BUCKET and line["key"] == GOOD_KEY
    assert line["decision"] == "start" and line["job_run_id"] == result["job_run_id"]
    assert line["job_name"] == job and line["data_carteira"] == "2025-03-05"


def test_optional_arguments_are_left_out_when_unset() -> None:
    glue = _RecordingGlue()
    result = lh.handle(_good(), glue, _config("j"))
    assert glue.calls == [{"JobName": "j", "Arguments": {
        "--data_carteira": "2025-03-05", "--bucket": BUCKET, "--landing_prefix": "landing/ibov"}}]
    assert result["job_run_id"] == "jr_1"
    with pytest.raises(ValueError):
        lh.job_arguments(lh.decide({}, BUCKET), _config())


def test_lambda_entry_point_reads_env_and_caches_the_client(
    moto_endpoint: str, glue: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = _create_job(glue)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # boto3 honours it; moto, not AWS
    monkeypatch.setenv("GLUE_JOB_NAME", job)
    monkeypatch.setenv("B3_BUCKET", BUCKET)
    monkeypatch.setenv("GLUE_TABLE", "b3_etl_soma_acao")

    class Context:
        aws_request_id = "req-1"

    out = lh.handler(_good(), Context())
    client = lh._glue_client
    assert client is not None
    assert lh.handler(lh.object_created_event(BUCKET, "raw/x.json"), Context())["status"] == (
        "ignored")
    assert lh._glue_client is client  # built once per container
    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert run["Id"] == out["job_run_id"]
    assert run["Arguments"]["--table"] == "b3_etl_soma_acao"
    assert "--database" not in run["Arguments"]
    lines = _json_lines(capsys.readouterr().out)
    assert [line["aws_request_id"] for line in lines] == ["req-1", "req-1"]


def test_missing_configuration_raises_instead_of_dropping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLUE_JOB_NAME", raising=False)
    monkeypatch.setenv("B3_BUCKET", BUCKET)
    with pytest.raises(lh.ConfigError, match="GLUE_JOB_NAME"):
        lh.handler(_good(), None)
    cfg = lh.Config.from_env({"GLUE_JOB_NAME": "j", "B3_BUCKET": "b", "LANDING_PREFIX": "/x/y/"})
    assert cfg == lh.Config(job_name="j", bucket="b", landing_prefix="x/y")


# --------------------------------------------------------------------------- failures raise


def _set_transition(endpoint: str, model: str, transition: dict[str, Any] | None) -> None:
    action = "set-transition" if transition else "unset-transition"
    body: dict[str, Any] = {"model_name": model}
    if transition:
        body["transition"] = transition
    request = urllib.request.Request(
        f"{endpoint}/moto-api/state-manager/{action}", data=json.dumps(body).encode(),
        method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


@pytest.fixture
def runs_stay_running(moto_endpoint: str) -> Iterator[None]:
    """Keep moto's job runs in STARTING (by default they finish instantly), so they count."""
    _set_transition(moto_endpoint, "glue::job_run", {"progression": "manual", "times": 10**9})
    try:
        yield
    finally:
        _set_transition(moto_endpoint, "glue::job_run", None)


def _one_slot_taken(glue: Any) -> tuple[str, lh.Config, str, dict[str, Any]]:
    """A job with one slot, taken by the run of 2025-03-05; the event of 2025-03-06 (``e-2``).
    Returns the job, the config, the first run's id and that second event."""
    job = _create_job(glue, max_concurrent_runs=1)
    config = _config(job)
    first = lh.handle(_good(), glue, config)["job_run_id"]
    second = lh.object_created_event(BUCKET, "landing/ibov/dt=2025-03-06/ibov.parquet",
                                     event_id="e-2")
    return job, config, first, second


def test_concurrent_runs_exceeded_is_raised(
    glue: Any, runs_stay_running: None, capsys: pytest.CaptureFixture[str]
) -> None:
    job, config, _first, second = _one_slot_taken(glue)
    with pytest.raises(ClientError) as info:
        lh.handle(second, glue, config)
    assert info.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"
    assert lh.is_retryable_error(info.value)
    assert len(glue.get_job_runs(JobName=job)["JobRuns"]) == 1
    error = _json_lines(capsys.readouterr().out)[-1]
    assert error["level"] == "ERROR" and error["event_id"] == "e-2"
    assert error["error_code"] == "ConcurrentRunsExceededException"
    assert error["retryable"] is True and error["data_carteira"] == "2025-03-06"


def test_a_backfill_waits_for_a_free_slot_within_the_invocation(
    moto_endpoint: str, glue: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """One slot, taken by a run that ends while the second date's event waits (moto moves a
    run on one state per two reads of it): that event starts, instead of going to the DLQ."""
    _set_transition(moto_endpoint, "glue::job_run", {"progression": "manual", "times": 2})
    try:
        job, config, first, second = _one_slot_taken(glue)
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # time passes: the first run moves on
            waits.append(seconds)
            glue.get_job_run(JobName=job, RunId=first)

        result = lh.handle(second, glue, config, time_left_s=lambda: 600.0, sleep=sleep)
    finally:
        _set_transition(moto_endpoint, "glue::job_run", None)
    assert result["status"] == "started" and result["attempts"] == len(waits) + 1 > 1
    assert all(0 < w <= lh.RETRY_MAX_WAIT_S for w in waits)
    runs = glue.get_job_runs(JobName=job)["JobRuns"]
    assert sorted(r["Arguments"]["--data_carteira"] for r in runs) == ["2025-03-05", "2025-03-06"]
    lines = [line for line in _json_lines(capsys.readouterr().out) if line.get("event_id") == "e-2"]
    assert [line["level"] for line in lines] == ["WARNING"] * len(waits) + ["INFO"]
    assert lines[0]["error_code"] == "ConcurrentRunsExceededException"


def test_waiting_stops_while_there_is_time_to_raise(
    glue: Any, runs_stay_running: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _job, config, _first, second = _one_slot_taken(glue)
    clock = {"left": 120.0}

    def sleep(seconds: float) -> None:
        clock["left"] -= seconds

    with pytest.raises(ClientError):
        lh.handle(second, glue, config, time_left_s=lambda: clock["left"], sleep=sleep)
    assert lh.RETRY_SAFETY_MARGIN_S < clock["left"] < 120.0  # waited, then left time to raise
    error = _json_lines(capsys.readouterr().out)[-1]
    assert error["level"] == "ERROR" and error["attempts"] > 1


def test_the_lambda_context_bounds_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("glue", region_name="us-east-1", **FAKE_CREDS)
    monkeypatch.setattr(lh, "_glue_client", client)
    monkeypatch.setenv("GLUE_JOB_NAME", "j")
    monkeypatch.setenv("B3_BUCKET", BUCKET)

    class Context:
        aws_request_id = "req-1"

        def get_remaining_time_in_millis(self) -> int:
            return 5_000  # less than the safety margin: no waiting

    with Stubber(client) as stub:
        stub.add_client_error("start_job_run", service_error_code="ThrottlingException")
        with pytest.raises(ClientError):
            lh.handler(_good(), Context())
        stub.assert_no_pending_responses()


def test_retry_waits_double_up_to_the_ceiling_with_jitter() -> None:
    rng = random.Random(7)
    waits = [lh.retry_wait_s(n, rng) for n in range(1, 10)]
    ceilings = [min(lh.RETRY_MAX_WAIT_S, lh.RETRY_FIRST_WAIT_S * 2 ** (n - 1))
                for n in range(1, 10)]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert ceilings[-1] == lh.RETRY_MAX_WAIT_S
    assert lh.retry_wait_s(10_000, rng) <= lh.RETRY_MAX_WAIT_S  # an hour of refusals: no overflow


@pytest.mark.parametrize("code", ["ThrottlingException", "TooManyRequestsException",
                                  "Throttling", "RequestLimitExceeded"])
def test_throttling_is_raised(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("glue", region_name="us-east-1", **FAKE_CREDS)
    with Stubber(client) as stub:
        stub.add_client_error("start_job_run", service_error_code=code, http_status_code=400,
                              expected_params={"JobName": "j", "Arguments": {
                                  "--data_carteira": "2025-03-05", "--bucket": BUCKET,
                                  "--landing_prefix": "landing/ibov"}})
        with pytest.raises(ClientError) as info:
            lh.handle(_good(), client, _config("j"))
        stub.assert_no_pending_responses()
    assert info.value.response["Error"]["Code"] == code
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["level"] == "ERROR" and line["retryable"] is True and line["error_code"] == code


def test_other_glue_errors_are_raised_too(capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("glue", region_name="us-east-1", **FAKE_CREDS)
    with Stubber(client) as stub:
        stub.add_client_error("start_job_run", service_error_code="EntityNotFoundException")
        with pytest.raises(ClientError):
            lh.handle(_good(), client, _config("missing-job"))
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["retryable"] is False and line["error_code"] == "EntityNotFoundException"


def test_handler_module_needs_only_boto3_and_the_stdlib() -> None:
    import ast
    import sys
    from pathlib import Path

    tree = ast.parse(Path(lh.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) <= {"boto3", "botocore"}
