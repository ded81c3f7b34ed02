"""The AWS production path end to end, on moto's server (127.0.0.1) and the B3 replica.

B3_ENV=aws resources (S3Lake, boto3 Glue, AthenaCatalog) → raw + landing in the bucket → the
EventBridge "Object Created" event S3 emits for the landing key, delivered to the Lambda entry
point (moto cannot run Lambdas) → a Glue job run of the stack's job, with its DefaultArguments →
the sensor reports the refined date once, with run id, duration, DPU-seconds and the console
link. moto does not run Glue scripts, so the test plays the Glue worker with the local runner
(same transform) and queues the Athena rows the sensor's checks read. Failed runs (moto's
runs always succeed) come from a Stubber. Nothing here talks to AWS.
"""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml
from botocore.stub import Stubber

from b3_assets.archive import RawArchive
from b3_assets.assets import REFINED
from b3_assets.b3.model import LANDING_SCHEMA
from b3_assets.catalog import AthenaCatalog
from b3_assets.glue_runs import GlueJobWatcher, WatchCursor
from b3_assets.lake import S3Lake
from b3_assets.landing import landing_key
from b3_assets.resources import build_platform
from b3_assets.settings import Settings
from b3_assets_tests.chain import check_outcomes, failure_message, materialize, sensor_tick
from b3_assets_tests.moto_server import MotoServer, athena_result, unique_name, use_moto
from b3_assets_tests.replica import DEFAULT_DATE
from glue.local_job import run_local_refine
from lambda_handler import handler as lh

DAY = DEFAULT_DATE.isoformat()
TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "template.yaml"


# --------------------------------------------------------------------------- the stack, in moto


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref x`` → ``{"Ref": "x"}``)."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


class Stack:
    """What the template would create, named as the deployment would name it."""

    def __init__(self, settings: Settings) -> None:
        self.template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
        self.settings = settings
        self.refs: dict[str, str] = {
            name: str(p["Default"])
            for name, p in self.template["Parameters"].items()
            if "Default" in p
        }
        self.refs.update(
            {
                "ArtifactBucket": "b3-artifacts",
                "LambdaCodeS3Key": "b3/lambda.zip",
                "GlueScriptS3Key": "b3/job.py",
                "GluePackageS3Key": "b3/glue.zip",
                "LakeBucket": settings.bucket,
                "GlueJob": settings.glue_job_name,
                "AthenaWorkGroup": settings.athena_workgroup,
                "AWS::Region": settings.aws_region,
                "AWS::AccountId": "123456789012",
            }
        )

    def resolve(self, value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return self.refs[value["Ref"]]
        if isinstance(value, dict) and "Fn::Sub" in value:
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.refs[m.group(1)], value["Fn::Sub"])
        if isinstance(value, str | int | float):
            return str(value)
        raise ValueError(f"no resolver for {value!r}")

    def properties(self, resource: str) -> dict[str, Any]:
        return self.template["Resources"][resource]["Properties"]

    @property
    def job_default_arguments(self) -> dict[str, str]:
        return {
            k: self.resolve(v) for k, v in self.properties("GlueJob")["DefaultArguments"].items()
        }

    @property
    def lambda_environment(self) -> dict[str, str]:
        env = self.properties("LandingTriggerFunction")["Environment"]["Variables"]
        return {k: self.resolve(v) for k, v in env.items()}

    def create_in(self, moto: MotoServer) -> None:
        job = self.properties("GlueJob")
        moto.client("s3").create_bucket(Bucket=self.settings.bucket)
        moto.client("glue").create_job(
            Name=self.settings.glue_job_name,
            Role="arn:aws:iam::123456789012:role/b3-glue-job",
            Command={
                "Name": job["Command"]["Name"],
                "PythonVersion": job["Command"]["PythonVersion"],
                "ScriptLocation": self.resolve(job["Command"]["ScriptLocation"]),
            },
            GlueVersion=job["GlueVersion"],
            WorkerType=job["WorkerType"],
            NumberOfWorkers=job["NumberOfWorkers"],
            Timeout=job["Timeout"],
            MaxRetries=job["MaxRetries"],
            ExecutionProperty={"MaxConcurrentRuns": 300},
            DefaultArguments=self.job_default_arguments,
        )
        moto.client("athena").create_work_group(Name=self.settings.athena_workgroup)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    use_moto(monkeypatch, moto.endpoint)
    monkeypatch.setattr(lh, "_glue_client", None)  # the Lambda's cached client: built anew
    monkeypatch.chdir(tmp_path)  # so a stray local write (./data) would be seen
    return moto


def aws_settings(moto: MotoServer, base_url: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        env="aws",
        bucket=unique_name("b3-lake"),
        base_url=base_url,
        fetch="api",
        http_retries=1,
        http_timeout_s=5.0,
        glue_job_name=unique_name("b3-etl-soma-acao"),
        athena_workgroup=unique_name("b3-pipeline"),
        aws_endpoint_url=moto.endpoint,
    )


class LambdaContext:
    aws_request_id = "req-e2e-1"
    function_name = "b3-landing-trigger"


def play_glue_worker(s3: Any, bucket: str, day: date, workdir: Path) -> list[tuple[str, str]]:
    """What the Glue job writes for ``day`` (same transform, local runner), put in the bucket.

    Returns the refined (Acao, participacao_total_pct) rows, as Athena would read them."""
    key = landing_key(day)
    (workdir / key).parent.mkdir(parents=True)
    (workdir / key).write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    run_local_refine(workdir, day, datetime.now(UTC))
    rows = []
    for path in sorted((workdir / "refined").rglob("*.parquet")):
        rel = path.relative_to(workdir).as_posix()
        s3.put_object(Bucket=bucket, Key=rel, Body=path.read_bytes())
        (value,) = pq.read_table(path, columns=["participacao_total_pct"], use_threads=False)[
            0
        ].to_pylist()
        rows.append((rel.split("Acao=", 1)[1].split("/", 1)[0], str(value)))
    return rows


# --------------------------------------------------------------------------- the whole path


def test_landing_in_the_bucket_starts_glue_and_the_sensor_reports_it(
    aws: MotoServer, b3_replica: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = aws_settings(aws, b3_replica.base_url)
    stack = Stack(settings)
    stack.create_in(aws)
    platform = build_platform(settings)
    assert isinstance(platform.lake, S3Lake) and isinstance(platform.catalog, AthenaCatalog)
    s3, glue = aws.client("s3"), aws.client("glue")
    bucket, job = settings.bucket, settings.glue_job_name

    # 1. raw + landing, exactly as the daily schedule runs them, into the bucket.
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(platform, DAY, instance=instance)
    assert result.success, failure_message(result)
    key = landing_key(DEFAULT_DATE)
    assert key == f"landing/ibov/dt={DAY}/ibov.parquet"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    landing = pq.read_table(io.BytesIO(body), use_threads=False)
    assert landing.schema.equals(LANDING_SCHEMA)
    codes = sorted(c.codigo for c in b3_replica.portfolio.constituents())
    assert landing.column("codigo").to_pylist() == codes
    raw_keys = platform.lake.list_keys(f"raw/ibov/dt={DAY}/")
    assert any(re.fullmatch(rf"raw/ibov/dt={DAY}/[^/]+/manifest\.json", k) for k in raw_keys)
    (entry,) = RawArchive(platform.lake).entries(DEFAULT_DATE)
    assert entry.manifest["source"] == "api"
    assert not (tmp_path / "data").exists()  # B3_ENV=aws writes nothing on the machine
    # Nothing starts Glue but the event: no run yet.
    assert glue.get_job_runs(JobName=job)["JobRuns"] == []

    # 2. The event S3 emits for that key, delivered to the Lambda entry point.
    for name, value in stack.lambda_environment.items():
        monkeypatch.setenv(name, value)
    head = s3.head_object(Bucket=bucket, Key=key)
    event = lh.object_created_event(
        bucket,
        key,
        size=head["ContentLength"],
        etag=head["ETag"].strip('"'),
        region=settings.aws_region,
    )
    out = lh.handler(event, LambdaContext())
    assert out["status"] == "started" and out["data_carteira"] == DAY
    assert lh._glue_client.meta.endpoint_url == aws.endpoint  # moto, never AWS

    # 3. The job run in Glue, with the stack's job defaults and the date's arguments.
    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert run["Id"] == out["job_run_id"]
    args = run["Arguments"]
    assert {
        "--data_carteira": DAY,
        "--bucket": bucket,
        "--landing_prefix": "landing/ibov",
        "--refined_prefix": "refined",
        "--database": "default",
        "--table": "b3_etl_soma_acao",
    }.items() <= args.items()
    assert args["--extra-py-files"] == "s3://b3-artifacts/b3/glue.zip"
    assert args["--job-bookmark-option"] == "job-bookmark-disable"
    assert run["WorkerType"] == "G.1X" and run["NumberOfWorkers"] == 2

    # 4. The worker's output, and the rows Athena gives the sensor's refined checks.
    refined_rows = play_glue_worker(s3, bucket, DEFAULT_DATE, tmp_path / "glue-worker")
    issuers = sorted({c[:4] for c in codes})
    assert [acao for acao, _ in refined_rows] == issuers
    aws.queue_athena_results(
        [athena_result([("Acao", "varchar"), ("participacao_total_pct", "decimal")], refined_rows)]
    )

    # 5. The sensor: the refined date once, with what an operator needs to find the run.
    first = sensor_tick(platform, instance, None)
    mats = [e for e in first.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert [(m.asset_key, m.partition) for m in mats] == [(REFINED, DAY)]
    meta = {k: v.value for k, v in mats[0].metadata.items()}
    assert meta["glue_job_run_id"] == run["Id"]
    assert meta["state"] == "SUCCEEDED"
    assert meta["duration_s"] == run["ExecutionTime"]  # seconds, from Glue
    # Standard G.1X job: 1 DPU per worker x 2 workers x execution time.
    assert meta["dpu_seconds"] == 1 * 2 * run["ExecutionTime"]
    assert meta["glue_console"] == (
        "https://us-east-1.console.aws.amazon.com/gluestudio/home?region=us-east-1"
        f"#/job/{job}/run/{run['Id']}"
    )
    assert meta["issuers"] == len(issuers) and meta["dagster/row_count"] == len(issuers)
    assert meta["lake_uri"] == f"s3://{bucket}/refined/DataCarteira={DAY}/"
    assert check_outcomes(first) == {
        "glue_job_run_succeeded": True,
        "one_row_per_issuer": True,
        "participations_add_up_to_100": True,
    }
    athena = aws.client("athena")
    (qid,) = athena.list_query_executions(WorkGroup=settings.athena_workgroup)["QueryExecutionIds"]
    sent = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    assert sent["ExecutionParameters"] == [f"'{DAY}'"] and DAY not in sent["Query"]

    second = sensor_tick(platform, instance, first.cursor)
    assert not second.asset_events and not second.run_requests


def test_failed_glue_run_is_a_failed_check_with_glues_error(aws: MotoServer) -> None:
    """moto's runs always succeed: GetJobRuns is stubbed with what Glue returns for a failure."""
    import boto3

    settings = aws_settings(aws)
    platform = build_platform(settings)
    glue = boto3.client("glue", region_name="us-east-1")
    started = datetime(2025, 3, 6, 11, 0, 5, tzinfo=UTC)
    error = (
        "AnalysisException: [PATH_NOT_FOUND] Path does not exist: "
        f"s3://{settings.bucket}/landing/ibov/dt=2025-03-06/ibov.parquet."
    )
    failed_run = {
        "Id": "jr_" + "f" * 64,
        "Attempt": 0,
        "JobName": settings.glue_job_name,
        "StartedOn": started,
        "LastModifiedOn": started + timedelta(seconds=58),
        "CompletedOn": started + timedelta(seconds=58),
        "JobRunState": "FAILED",
        "ErrorMessage": error,
        "Arguments": {"--data_carteira": "2025-03-06", "--bucket": settings.bucket},
        "ExecutionTime": 41,
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
        "GlueVersion": "5.0",
    }
    expected = {"JobName": settings.glue_job_name, "MaxResults": 200}
    instance = dg.DagsterInstance.ephemeral()
    with Stubber(glue) as stub:
        stub.add_response("get_job_runs", {"JobRuns": [failed_run]}, expected)
        stub.add_response("get_job_runs", {"JobRuns": [failed_run]}, expected)
        stubbed = dataclasses.replace(platform, glue=glue)
        first = sensor_tick(stubbed, instance, None)
        second = sensor_tick(stubbed, instance, first.cursor)
        stub.assert_no_pending_responses()
    (failed,) = first.asset_events
    assert isinstance(failed, dg.AssetCheckEvaluation)
    assert failed.asset_key == REFINED and failed.check_name == "glue_job_run_succeeded"
    assert not failed.passed and failed.partition == "2025-03-06"
    meta = {k: v.value for k, v in failed.metadata.items()}
    assert meta["error_message"] == error
    assert meta["glue_job_run_id"] == failed_run["Id"] and meta["state"] == "FAILED"
    assert not first.run_requests  # nothing downstream of a failed date
    assert not second.asset_events


def test_watcher_pages_through_get_job_runs(aws: MotoServer) -> None:
    """More runs than one GetJobRuns page (200): every one is reported, once."""
    settings = aws_settings(aws)
    Stack(settings).create_in(aws)
    glue = aws.client("glue")
    days = [date(2025, 1, 2) + timedelta(days=i) for i in range(205)]
    for day in days:
        glue.start_job_run(
            JobName=settings.glue_job_name, Arguments={"--data_carteira": day.isoformat()}
        )
    calls: list[dict[str, Any]] = []
    glue.meta.events.register(
        "provide-client-params.glue.GetJobRuns", lambda params, **_: calls.append(dict(params))
    )
    watcher = GlueJobWatcher(glue, settings.glue_job_name)
    fresh, cursor = watcher.poll(WatchCursor())
    assert len(calls) == 2
    assert calls[0] == {"JobName": settings.glue_job_name, "MaxResults": 200}
    assert calls[1]["NextToken"] and calls[1]["MaxResults"] == 200
    assert sorted(r.data_carteira for r in fresh) == days
    assert len({r.run_id for r in fresh}) == 205 and all(r.succeeded for r in fresh)
    again, _ = watcher.poll(WatchCursor.from_json(cursor.to_json()))
    assert again == []
