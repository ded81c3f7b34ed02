"""IAM proven offline (issue #9): every AWS call of each principal is allowed by its policy.

moto enforces no IAM, so the AWS-path tests pass whatever infra/template.yaml grants. Here the
same flows run under :class:`IamRecorder`, which turns each boto3 call into the IAM actions,
resource ARNs and condition keys AWS would authorize, attributed to the principal the code
runs as; each is then checked against that principal's statements resolved from the template
(``support.cfn``):

- ``LandingTriggerRole``: ``lambda_handler.handler`` on landing events (daily, backfill);
- ``GlueJobRole``: ``glue.job.run_job`` (boto3 S3 listing, conditional writes and
  deletes, the Glue catalog). Local Spark reads and writes a folder, so Spark's own S3 calls
  are not recorded; the objects it read and wrote are checked as s3:GetObject/s3:PutObject;
- ``DagsterPolicy``: the B3_ENV=aws resources (S3Lake, AwsGlueJob, AthenaCatalog) in the
  daily schedule, a backfill, the sensor, the refined checks, the report and ``b3-pipeline
  query``.

Calls outside the design (another bucket, job or workgroup, writes under refined/ by Dagster,
deletes of landing by the Glue role, …) are made against moto too, recorded, and must be
denied; the resolved policy documents are linted with parliament.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pytest
from botocore.exceptions import ClientError

import glue.published as glue_published
from b3_assets.keys import REFINED
from b3_assets.platform.catalog import AthenaCatalog, QueryError
from b3_assets.platform.local_aws import object_created_event
from b3_assets.platform.resources import resources_for
from b3_assets.portfolio.checks import REFINED_CHECKS
from b3_assets.portfolio.collect import csv_payload
from b3_assets.portfolio.sensors import RANGE_END, RANGE_START
from b3_assets.sessions import trading_days
from b3_assets.settings import Settings
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import LakeError, S3Lake
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.aws import LambdaContext, play_glue_worker
from b3_assets_tests.support.cfn import Stack
from b3_assets_tests.support.chain import (
    DAILY_WITHOUT_REPORTS,
    Platform,
    failure_message,
    materialize,
    materialize_range,
    run_followups,
    sensor_tick,
)
from b3_assets_tests.support.ci import skip_unless
from b3_assets_tests.support.iam_recorder import Call, IamRecorder, Need, denied_needs
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from b3_assets_tests.support.moto_server import MotoServer, athena_result
from glue import job as glue_job
from glue.layout import landing_key, refined_date_prefix
from lambda_handler import handler as lh

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAMBDA, GLUE, DAGSTER = "LandingTriggerRole", "GlueJobRole", "DagsterPolicy"
#: The artifact parameters as infra/deploy.sh passes them (content-hashed keys).
ARTIFACTS = {
    "ArtifactBucket": "b3-artifacts",
    "ArtifactPrefix": "b3-pipeline/b3-pipeline",
    "LambdaCodeS3Key": "b3-pipeline/b3-pipeline/lambda_handler-0a1b2c3d.zip",
    "GlueScriptS3Key": "b3-pipeline/b3-pipeline/job-0a1b2c3d.py",
    "GluePackageS3Key": "b3-pipeline/b3-pipeline/glue_package-0a1b2c3d.zip",
}
DAY = DEFAULT_DATE.isoformat()


# --------------------------------------------------------------------------- the deployment


@dataclass
class Deployment:
    """The template deployed with a unique NamePrefix: every name as the template makes it,
    created in moto."""

    stack: Stack
    settings: Settings
    #: Resources of someone else in the same account, for the out-of-design calls.
    other_bucket: str
    other_job: str
    other_workgroup: str

    def statements(self, principal: str) -> list[dict[str, Any]]:
        return self.stack.policy_statements(principal)

    @property
    def lambda_env(self) -> dict[str, str]:
        return self.stack.properties("LandingTriggerFunction")["Environment"]["Variables"]


def deploy(moto: MotoServer, rec: IamRecorder, base_url: str = "http://127.0.0.1:9") -> Deployment:
    """A stack of its own (moto's backends are shared by the module): bucket, job, workgroup,
    and another bucket and job that are not the stack's."""
    prefix = f"i{uuid.uuid4().hex[:8]}"
    names = {"NamePrefix": prefix, "GlueDatabaseName": f"{prefix}_db"}
    stack = Stack(parameters={**ARTIFACTS, **names})
    out = stack.outputs()
    job = stack.properties("GlueJob")
    s3, glue, athena = (rec.ignore(moto.client(s)) for s in ("s3", "glue", "athena"))
    other_bucket, other_job, other_workgroup = f"{prefix}-other", f"{prefix}-other-job", "primary"
    for bucket in (out["BucketName"], other_bucket):
        s3.create_bucket(Bucket=bucket)
    for name in (out["GlueJobName"], other_job):
        glue.create_job(
            Name=name,
            Role=stack.get_att("GlueJobRole", "Arn"),
            Command={k: job["Command"][k] for k in ("Name", "PythonVersion", "ScriptLocation")},
            GlueVersion=job["GlueVersion"],
            WorkerType=job["WorkerType"],
            NumberOfWorkers=job["NumberOfWorkers"],
            ExecutionProperty={"MaxConcurrentRuns": 300},
            DefaultArguments=job["DefaultArguments"],
        )
    athena.create_work_group(Name=out["AthenaWorkGroupName"])
    settings = Settings(
        env="aws",
        bucket=out["BucketName"],
        base_url=base_url,
        fetch="api",
        http_retries=1,
        http_timeout_s=5.0,
        glue_job_name=out["GlueJobName"],
        glue_database=out["GlueDatabaseName"],
        athena_workgroup=out["AthenaWorkGroupName"],
        aws_endpoint_url=moto.endpoint,
    )
    return Deployment(stack, settings, other_bucket, other_job, other_workgroup)


@pytest.fixture
def rec() -> Iterator[IamRecorder]:
    with IamRecorder() as recorder:
        yield recorder


@pytest.fixture
def dep(aws: MotoServer, rec: IamRecorder) -> Deployment:
    return deploy(aws, rec)


def assert_allowed(
    rec: IamRecorder, dep: Deployment, principal: str, operations: set[str]
) -> list[Call]:
    """Every call of ``principal`` allowed, and the flow made at least ``operations``."""
    calls = rec.of(principal)
    made = {f"{c.service}:{c.operation}" for c in calls}
    assert operations <= made, f"{principal} never called {sorted(operations - made)}"
    denied = rec.denied(principal, dep.statements(principal))
    needs = sum(len(c.needs or []) for c in calls)
    print(f"IAM {principal}: {len(calls)} calls, {needs} needs, {len(denied)} denied")
    assert not denied, (
        f"{len(denied)} need(s) of {principal}'s {len(calls)} calls are denied by "
        "infra/template.yaml:\n" + "\n".join(denied)
    )
    return calls


def needs_of(calls: list[Call], action: str) -> list[Need]:
    return [n for c in calls for n in c.needs or [] if n.action == action]


# --------------------------------------------------------------------------- Dagster and Lambda

CHECK_COLUMNS = [  # the refined checks' query, as Athena labels it (lower-case aliases)
    ("data_carteira", "varchar"),
    ("acao", "varchar"),
    ("participacao_total_pct", "decimal"),
    ("data_carteira_anterior", "date"),
]
WEIGHT_COLUMNS = [
    ("data_carteira", "varchar"),
    ("acao", "varchar"),
    ("empresa", "varchar"),
    ("tickers", "varchar"),
    ("qtd_classes", "integer"),
    ("participacao_total_pct", "decimal"),
    ("variacao_participacao_pp", "decimal"),
    ("data_carteira_anterior", "date"),
]


def test_the_daily_path_is_allowed(
    aws: MotoServer,
    rec: IamRecorder,
    b3_replica: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Schedule (raw, landing) -> Lambda -> Glue (played) -> sensor -> checks and report."""
    dep = deploy(aws, rec, b3_replica.base_url)
    bucket = dep.settings.bucket
    platform, instance = Platform(dep.settings), dg.DagsterInstance.ephemeral()
    key = landing_key(DEFAULT_DATE)

    with rec.as_principal(DAGSTER):
        for _ in range(2):  # fetched from B3, then read back from the raw archive
            # The daily job but for its reports (moto cannot answer the marts' charts).
            result = materialize(
                platform, DAY, instance=instance, asset_selection=DAILY_WITHOUT_REPORTS
            )
            assert result.success, failure_message(result)
    for name, value in dep.lambda_env.items():
        monkeypatch.setenv(name, value)
    with rec.as_principal(LAMBDA):
        assert lh.handler(object_created_event(bucket, key), LambdaContext())["status"] == "started"
    (glue_run,) = rec.ignore(aws.client("glue")).get_job_runs(JobName=dep.settings.glue_job_name)[
        "JobRuns"
    ]
    refined = play_glue_worker(
        rec.ignore(aws.client("s3")), bucket, DEFAULT_DATE, tmp_path, glue_run["Id"]
    )
    with rec.as_principal(DAGSTER):
        tick = sensor_tick(platform, instance, None)
        (request,) = tick.run_requests
        assert request.job_name == "refined_followup"
        # The follow-up's refined step: it records the date and runs the refined checks (one
        # Athena query; the reports' queries are the same calls on the same workgroup, and
        # moto cannot answer the marts' charts).
        check_rows = [(DAY, acao, pct, None) for acao, pct in refined]
        aws.queue_athena_results([athena_result(CHECK_COLUMNS, check_rows)])
        (followup,) = run_followups(platform, instance, tick, asset_selection=[REFINED])
        assert followup.success, failure_message(followup)
        recorded = [e.partition for e in followup.get_asset_materialization_events()]
        assert recorded == [DAY]
        outcomes = {e.check_name: e.passed for e in followup.get_asset_check_evaluations()}
        assert outcomes == dict.fromkeys(REFINED_CHECKS, True)

    assert rec.unmapped() == []
    dagster = assert_allowed(
        rec,
        dep,
        DAGSTER,
        {"s3:PutObject", "s3:GetObject", "s3:ListObjectsV2", "glue:GetJobRuns",
         "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"},
    )  # fmt: skip
    lake = f"arn:aws:s3:::{dep.settings.bucket}/"
    written = {n.resource.removeprefix(lake) for n in needs_of(dagster, "s3:PutObject")}
    assert {k.split("/", 1)[0] for k in written} == {"raw", "landing", "marts"}
    assert {"s3:prefix": "raw/ibov/dt=2025-03-05/"} in [
        n.context for n in needs_of(dagster, "s3:ListBucket")
    ]
    assert_allowed(rec, dep, LAMBDA, {"s3:GetObjectTagging", "glue:StartJobRun"})
    assert_athena_on_behalf_allowed(rec, dep)


def test_a_backfill_is_allowed(
    aws: MotoServer, rec: IamRecorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """History imported, one batch landing (tagged) -> one Glue run; the Lambda skips each."""
    days = trading_days(date(2025, 2, 3), date(2025, 3, 21))[:3]
    dep = deploy(aws, rec)
    platform, instance = Platform(dep.settings), dg.DagsterInstance.ephemeral()
    with rec.as_principal(DAGSTER):
        archive = RawArchive(platform.lake)
        for path in write_csvs(tmp_path / "csv", days):
            payload = csv_payload(path)
            archive.store(payload, payload.portfolio().data_carteira)
        result = materialize_range(platform, instance, days[0], days[-1], DAILY_WITHOUT_REPORTS)
        assert result.success, failure_message(result)
    for name, value in dep.lambda_env.items():
        monkeypatch.setenv(name, value)
    with rec.as_principal(LAMBDA):
        for day in days:
            event = object_created_event(dep.settings.bucket, landing_key(day))
            assert lh.handler(event, LambdaContext())["status"] == "ignored"
    with rec.as_principal(DAGSTER):
        tick = sensor_tick(platform, instance)
        (request,) = tick.run_requests  # one follow-up records the batch's dates
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (
            days[0].isoformat(),
            days[-1].isoformat(),
        )
        audit = platform.defs.resolve_job_def("landing_gap_audit")
        assert audit.execute_in_process(instance=instance).success

    assert rec.unmapped() == []
    dagster = assert_allowed(
        rec, dep, DAGSTER, {"s3:PutObject", "glue:StartJobRun", "glue:GetJobRuns"}
    )
    tagged = [n.resource for n in needs_of(dagster, "s3:PutObjectTagging")]
    bucket_arn = f"arn:aws:s3:::{dep.settings.bucket}"
    assert tagged == [f"{bucket_arn}/{landing_key(d)}" for d in days]
    lambda_calls = assert_allowed(rec, dep, LAMBDA, {"s3:GetObjectTagging"})
    assert {c.operation for c in lambda_calls} == {"GetObjectTagging"}  # no run per file
    # The check bites: without the statements for the batch tag, exactly those are denied.
    for principal, sid in ((DAGSTER, "TagBackfillLandingFiles"),
                           (LAMBDA, "ReadTheBackfillTagOfLandingFiles")):  # fmt: skip
        fewer = [st for st in dep.statements(principal) if st.get("Sid") != sid]
        assert len(rec.denied(principal, fewer)) == len(days), sid


def test_athena_queries_are_allowed(
    aws: MotoServer, dep: Deployment, rec: IamRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AthenaCatalog as B3_ENV=aws builds it (a result location of the lake), a query stopped
    at its timeout, and ``b3-pipeline query``."""
    from b3_assets.cli import main

    settings = replace(dep.settings, athena_output=f"s3://{dep.settings.bucket}/athena-results/")
    monkeypatch.setenv("B3_ENV", "aws")
    monkeypatch.setenv("B3_BUCKET", settings.bucket)
    monkeypatch.setenv("B3_GLUE_DATABASE", settings.glue_database)
    monkeypatch.setenv("B3_ATHENA_WORKGROUP", settings.athena_workgroup)
    with rec.as_principal(DAGSTER):
        catalog = resources_for(settings)["catalog"].engine()
        assert isinstance(catalog, AthenaCatalog)
        aws.queue_athena_results([athena_result([("n", "bigint")], [(84,)])])
        sql = "SELECT count(*) AS n FROM b3_etl_soma_acao WHERE DataCarteira = ?"
        assert catalog.query(sql, [DAY]).rows == [(84,)]
        slow = AthenaCatalog(catalog.client, settings.glue_database, settings.athena_workgroup,
                             timeout_s=0.3)  # fmt: skip
        stuck = aws.transition("athena::execution", progression="manual", times=10**9)
        with stuck, pytest.raises(QueryError, match="stopped"):
            slow.query("SELECT * FROM b3_etl_soma_acao")
        aws.queue_athena_results([athena_result([("n", "bigint")], [(84,)])])
        assert main(["query", "SELECT count(*) AS n FROM b3_etl_soma_acao"]) == 0

    assert rec.unmapped() == []
    assert_allowed(
        rec,
        dep,
        DAGSTER,
        {"athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
         "athena:StopQueryExecution"},
    )  # fmt: skip
    assert_athena_on_behalf_allowed(rec, dep)


def test_the_bucket_lake_is_allowed(dep: Deployment, rec: IamRecorder) -> None:
    """S3Lake's contract (test_s3_lake) on the keys Dagster uses; a missing key is NoSuchKey
    (so LakeError), which S3 answers only to a caller allowed to list the bucket."""
    day = "dt=2025-03-05"
    with rec.as_principal(DAGSTER):
        lake = resources_for(dep.settings)["lake"].get()
        assert isinstance(lake, S3Lake)
        lake.write_bytes(f"raw/ibov/{day}/abc/payload.json", b"{}")
        assert lake.read_bytes(f"raw/ibov/{day}/abc/payload.json") == b"{}"
        assert lake.list_keys("raw/ibov/") == [f"raw/ibov/{day}/abc/payload.json"]
        assert lake.list_folders("raw/ibov") == [day]
        assert lake.list_folders("landing/ibov") == []
        with pytest.raises(LakeError, match="does not exist"):
            lake.read_bytes(f"landing/ibov/{day}/ibov.parquet")
    assert rec.unmapped() == []
    calls = assert_allowed(rec, dep, DAGSTER, {"s3:PutObject", "s3:GetObject"})
    assert [n.why for n in needs_of(calls, "s3:ListBucket") if n.why] == [
        "404, not 403, when missing"
    ]


# --------------------------------------------------------------------------- Athena, on behalf


def assert_athena_on_behalf_allowed(rec: IamRecorder, dep: Deployment) -> None:
    """What Athena does with the caller's credentials for Dagster's queries: not botocore
    calls, so not recorded, but documented (Athena user guide, "Access to Amazon S3" and
    "Fine-grained access to databases and tables"): check the workgroup's result bucket,
    write and read the result, read the refined table from the catalog and from S3."""
    stack, settings = dep.stack, dep.settings
    output = stack.properties("AthenaWorkGroup")["WorkGroupConfiguration"]["ResultConfiguration"]
    results = output["OutputLocation"].removeprefix("s3://").rstrip("/")
    lake = f"arn:aws:s3:::{settings.bucket}"
    glue = f"arn:aws:glue:{stack.region}:{stack.account}"
    db, table = settings.glue_database, "b3_etl_soma_acao"
    catalog = [f"{glue}:catalog", f"{glue}:database/{db}", f"{glue}:table/{db}/{table}"]
    calls = []
    for call in rec.of(DAGSTER):
        if call.service != "athena" or call.operation not in (
            "StartQueryExecution",
            "GetQueryResults",
        ):
            continue
        qid = call.params.get("QueryExecutionId") or "<query id>"
        needs = [Need("s3:GetObject", f"arn:aws:s3:::{results}/{qid}.csv")]
        if call.operation == "StartQueryExecution":
            needs += [
                Need("s3:GetBucketLocation", lake),
                Need("s3:ListBucketMultipartUploads", lake),
                Need("s3:PutObject", f"arn:aws:s3:::{results}/{qid}.csv"),
                Need("s3:PutObject", f"arn:aws:s3:::{results}/{qid}.csv.metadata"),
                Need("s3:AbortMultipartUpload", f"arn:aws:s3:::{results}/{qid}.csv"),
                Need("s3:ListBucket", lake, {"s3:prefix": "refined/DataCarteira=2025-03-05/"}),
                Need("s3:GetObject", f"{lake}/refined/DataCarteira=2025-03-05/Acao=PETR/x"),
            ]
            needs += [Need(a, r) for a in ("glue:GetDatabase", "glue:GetTable",
                      "glue:GetPartitions", "glue:BatchGetPartition") for r in catalog]  # fmt: skip
        calls.append(replace(call, operation=f"{call.operation} (Athena, as the caller)",
                             needs=needs))  # fmt: skip
    assert calls, "no Athena query was recorded"
    denied = denied_needs(calls, dep.statements(DAGSTER))
    needs = sum(len(c.needs or []) for c in calls)
    print(f"IAM {DAGSTER} via Athena: {len(calls)} calls, {needs} needs")
    assert not denied, "Athena, acting for Dagster, is denied:\n" + "\n".join(denied)


#: Every index table of the catalog -> the lake folder Athena reads it from.
INDEX_TABLE_FOLDERS = {
    "b3_carteiras": "serving/b3_carteiras/",
    "b3_composicao": "serving/b3_composicao/",
    "b3_movimentos": "marts/b3_movimentos/",
    "b3_indices_fechamento": "landing/index_levels/",
}


@pytest.mark.slow  # ~25 s: 34 indices and a year of their closes through S3 and Glue on moto
def test_every_index_and_the_index_levels_are_allowed(
    aws: MotoServer, rec: IamRecorder, b3_replica: Any
) -> None:
    """daily_b3_indices (raw, landing, the year files of b3_carteiras/b3_composicao, the mart
    b3_movimentos, their Glue tables), b3_index_levels for a year, and a query on the new
    tables: every call of Dagster allowed; without the new statements, denied."""
    dep = deploy(aws, rec, b3_replica.base_url)
    platform, instance = Platform(dep.settings), dg.DagsterInstance.ephemeral()
    with rec.as_principal(DAGSTER):
        for job, partition in (("daily_b3_indices", DAY), ("b3_index_levels", "2022")):
            result = platform.defs.resolve_job_def(job).execute_in_process(
                partition_key=partition, instance=instance, raise_on_error=False)
            assert result.success, failure_message(result)
        aws.queue_athena_results([athena_result([("indice", "varchar"), ("n", "bigint")],
                                                [("SMLL", 130)])])
        sql = "SELECT indice, count(*) AS n FROM b3_carteiras WHERE indice = ? GROUP BY 1"
        assert platform.catalog.query(sql, ["SMLL"]).rows == [("SMLL", 130)]

    assert rec.unmapped() == []
    dagster = assert_allowed(rec, dep, DAGSTER, {"s3:PutObject", "s3:GetObject",
                                                 "glue:CreateTable", "athena:StartQueryExecution"})
    lake = f"arn:aws:s3:::{dep.settings.bucket}/"
    written = {"/".join(n.resource.removeprefix(lake).split("/")[:2])
               for n in needs_of(dagster, "s3:PutObject")}
    assert written == {"raw/indices", "landing/indices", "serving/b3_carteiras",
                       "serving/b3_composicao", "marts/b3_movimentos", "raw/index_levels",
                       "landing/index_levels"}
    glue = rec.ignore(aws.client("glue"))
    tables = glue.get_tables(DatabaseName=dep.settings.glue_database)["TableList"]
    locations = {t["Name"]: t["StorageDescriptor"]["Location"] for t in tables}
    assert locations == {name: f"s3://{dep.settings.bucket}/{folder}"
                         for name, folder in INDEX_TABLE_FOLDERS.items()}
    # Athena reads each new table with Dagster's credentials (not botocore calls: documented).
    arn = f"arn:aws:glue:{dep.stack.region}:{dep.stack.account}"
    db = dep.settings.glue_database
    needs = [Need("glue:GetDatabase", f"{arn}:database/{db}")]
    for name, folder in INDEX_TABLE_FOLDERS.items():
        needs += [Need("glue:GetTable", f"{arn}:table/{db}/{name}"),
                  Need("s3:ListBucket", lake.rstrip("/"), {"s3:prefix": folder}),
                  Need("s3:GetObject", f"{lake}{folder}ano=2025.parquet")]
    on_behalf = Call(DAGSTER, "athena", "StartQueryExecution (Athena, as the caller)", {},
                     dep.stack.region, needs=needs)
    assert not denied_needs([on_behalf], dep.statements(DAGSTER))
    # The check bites: without the new statement, exactly the index paths are denied.
    fewer = [st for st in dep.statements(DAGSTER) if st.get("Sid") != "ReadWriteEveryIndex"]
    denied = rec.denied(DAGSTER, fewer)
    assert denied and all("indices" in d or "index_levels" in d or "serving/b3_c" in d
                          for d in denied)


# --------------------------------------------------------------------------- the Glue job


class SparkFolderS3:
    """The Glue job's S3 client (recorded as the Glue role) with local Spark's folder behind
    it: before each listing, the files Spark wrote are uploaded by the harness's own client
    (as Spark would have PUT them), and deleted keys leave the folder too."""

    def __init__(self, job_s3: Any, harness_s3: Any, bucket: str, root: Path) -> None:
        self.job_s3, self.harness_s3, self.bucket, self.root = job_s3, harness_s3, bucket, root
        self.spark_wrote: list[str] = []
        root.mkdir(parents=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.job_s3, name)

    def get_paginator(self, name: str) -> Any:
        self.sync()
        return self.job_s3.get_paginator(name)

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> Any:
        for obj in Delete["Objects"]:
            path = self.root / obj["Key"]
            path.unlink(missing_ok=True)
            path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
        return self.job_s3.delete_objects(Bucket=Bucket, Delete=Delete)

    def sync(self) -> None:
        pages = self.harness_s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        present = {o["Key"] for page in pages for o in page.get("Contents", [])}
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and not path.name.endswith(".crc") and key not in present:
                self.harness_s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
                self.spark_wrote.append(key)

    def put_landing(self, table: Any) -> None:
        path = write_landing(self.root, table)
        body = path.read_bytes()
        key = path.relative_to(self.root).as_posix()
        self.harness_s3.put_object(Bucket=self.bucket, Key=key, Body=body)


@pytest.fixture(scope="module")
def spark(request: pytest.FixtureRequest) -> SparkSession:
    from b3_assets_tests.support.spark import local_spark

    return local_spark(request)


@pytest.mark.slow
@pytest.mark.spark
def test_the_glue_job_is_allowed(
    aws: MotoServer,
    rec: IamRecorder,
    spark: SparkSession,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A run as Glue starts it (its JOB_RUN_ID; the wait for earlier runs), into a database
    that does not exist yet; then a rerun of the date without two issuers (partitions
    repointed and deleted, the first run's files deleted)."""
    dep = deploy(aws, rec)
    database = dep.settings.glue_database
    harness_glue = rec.ignore(aws.client("glue"))
    s3 = SparkFolderS3(
        aws.client("s3"), rec.ignore(aws.client("s3")), dep.settings.bucket, tmp_path / "bucket"
    )
    glue = aws.client("glue")
    spark_read: list[str] = []
    refine = glue_job.refine_spark

    def recorded_refine(spark: Any, landing: str, anterior: str | None, *args: Any) -> Any:
        spark_read.extend(p for p in (landing, anterior) if p)
        return refine(spark, landing, anterior, *args)

    monkeypatch.setattr(glue_job, "refine_spark", recorded_refine)
    s3.put_landing(landing_table(date(2025, 2, 28)))
    s3.put_landing(landing_table(date(2025, 3, 5)))
    runs = []
    for _ in range(2):
        run_id = harness_glue.start_job_run(
            JobName=dep.settings.glue_job_name, Arguments={"--data_carteira": "2025-03-05"}
        )["JobRunId"]
        args = {"bucket": dep.settings.bucket, "database": database,
                "data_carteira": "2025-03-05", "JOB_RUN_ID": run_id}  # fmt: skip
        with rec.as_principal(GLUE):
            runs.append(
                glue_job.run_job(spark, s3, glue, args, io_base_uri=f"file://{s3.root}",
                                 processado_em=datetime(2025, 3, 5, 22, tzinfo=UTC))
            )  # fmt: skip
        s3.put_landing(landing_table(date(2025, 3, 5), drop={"BBDC", "PETR"}))
    assert runs[0]["database_created"] and runs[0]["table_created"]
    (second,) = runs[1]["dates"]
    # The first run's objects are kept for readers that planned before the repoint...
    assert second["partitions_deleted"] == ["BBDC", "PETR"] and second["objects_removed"] == 0
    # ... and deleted by the next run of the date once RETIRE_AFTER has passed.
    harness_s3 = rec.ignore(aws.client("s3"))
    day = date(2025, 3, 5)
    record = glue_published.published_record(harness_s3, dep.settings.bucket, day)
    assert record is not None and record["retired"]
    old = (datetime.now(UTC) - glue_job.RETIRE_AFTER - timedelta(minutes=1)).isoformat()
    record["retired"] = {run_id: old for run_id in record["retired"]}
    glue_published.write_published_record(harness_s3, dep.settings.bucket, day, record)
    run_id = harness_glue.start_job_run(
        JobName=dep.settings.glue_job_name, Arguments={"--data_carteira": "2025-03-05"}
    )["JobRunId"]
    with rec.as_principal(GLUE):
        third = glue_job.run_job(
            spark, s3, glue, {**args, "JOB_RUN_ID": run_id, "force": "true"},
            io_base_uri=f"file://{s3.root}", processado_em=datetime(2025, 3, 6, 22, tzinfo=UTC))
    assert third["dates"][0]["objects_removed"] >= 84

    assert rec.unmapped() == []
    assert_allowed(
        rec,
        dep,
        GLUE,
        {"s3:ListObjectsV2", "s3:DeleteObjects", "glue:GetDatabase",
         "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable", "glue:GetPartitions",
         "glue:BatchCreatePartition", "glue:BatchUpdatePartition", "glue:BatchDeletePartition"},
    )  # fmt: skip
    # Spark's own S3 traffic went to the folder: check the objects it read and wrote.
    arn = f"arn:aws:s3:::{dep.settings.bucket}"
    read = [p.removeprefix(f"file://{s3.root}/") for p in spark_read]
    assert read == ["landing/ibov/dt=2025-03-05/ibov.parquet",
                    "landing/ibov/dt=2025-02-28/ibov.parquet"] * 3  # fmt: skip
    spark_calls = [
        Call(GLUE, "s3", "Spark read", {"Key": k}, dep.stack.region,
             needs=[Need("s3:GetObject", f"{arn}/{k}")]) for k in read
    ] + [
        Call(GLUE, "s3", "Spark write", {"Key": k}, dep.stack.region,
             needs=[Need("s3:PutObject", f"{arn}/{k}")]) for k in s3.spark_wrote
    ]  # fmt: skip
    assert len(s3.spark_wrote) == 84 + 82 + 82
    denied = denied_needs(spark_calls, dep.statements(GLUE))
    print(f"IAM {GLUE} via Spark: {len(spark_calls)} objects read or written")
    assert not denied, "Spark, as the Glue role, is denied:\n" + "\n".join(denied)


def test_services_acting_as_the_roles_are_allowed() -> None:
    """What Lambda and Glue do with the roles besides the code's calls (not botocore calls,
    so modeled from the template): Glue loads the script and the package and writes the
    job's logs and metrics; Lambda writes the function's logs and its dead letters."""
    stack = Stack(parameters=ARTIFACTS)
    job = stack.properties("GlueJob")
    arguments = job["DefaultArguments"]
    logs = f"arn:aws:logs:{stack.region}:{stack.account}:log-group"
    glue_needs = [
        Need("s3:GetObject", "arn:aws:s3:::" + uri.removeprefix("s3://"))
        for uri in (job["Command"]["ScriptLocation"], arguments["--extra-py-files"])
    ]
    for group in ("error", "output"):
        name = f"{arguments['--custom-logGroup-prefix']}/{group}"
        assert stack.properties(f"GlueJob{group.title()}LogGroup")["LogGroupName"] == name
        glue_needs += [
            Need("logs:CreateLogGroup", f"{logs}:{name}"),
            Need("logs:CreateLogStream", f"{logs}:{name}:log-stream:jr_0"),
            Need("logs:PutLogEvents", f"{logs}:{name}:log-stream:jr_0"),
        ]
    glue_needs.append(Need("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Glue"}))
    function = stack.properties("LandingTriggerFunction")
    group = f"{logs}:{function['LoggingConfig']['LogGroup']}:log-stream:2025/03/05/[$LATEST]0"
    lambda_needs = [
        Need("logs:CreateLogStream", group),
        Need("logs:PutLogEvents", group),
        Need("sqs:SendMessage", function["DeadLetterConfig"]["TargetArn"]),
    ]
    region = stack.region
    denied = denied_needs(
        [Call(GLUE, "glue", "a job run", {}, region, needs=glue_needs)],
        stack.policy_statements(GLUE),
    ) + denied_needs(
        [Call(LAMBDA, "lambda", "an invocation", {}, region, needs=lambda_needs)],
        stack.policy_statements(LAMBDA),
    )
    assert not denied, "\n".join(denied)


# --------------------------------------------------------------------------- out of design


@dataclass
class Caller:
    """A principal's own clients (recorded), the test's (not), and the deployment."""

    s3: Any
    glue: Any
    athena: Any
    harness_athena: Any
    dep: Deployment

    @property
    def bucket(self) -> str:
        return self.dep.settings.bucket


LANDING = landing_key(date(2025, 3, 5))
RAW = "raw/ibov/dt=2025-03-05/abc/manifest.json"
REFINED_KEY = f"{refined_date_prefix(date(2025, 3, 5))}Acao=PETR/run=jr_x/part-0.parquet"


def _other_workgroups_results(c: Caller) -> None:
    qid = c.harness_athena.start_query_execution(
        QueryString="SELECT 1", WorkGroup=c.dep.other_workgroup
    )["QueryExecutionId"]
    c.athena.get_query_results(QueryExecutionId=qid)


def _table_input(name: str) -> dict[str, Any]:
    return {"Name": name, "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "int"}]}}


#: case -> (principal, the action that must be denied, the calls).
OUT_OF_DESIGN: dict[str, tuple[str, str, Callable[[Caller], object]]] = {
    "dagster writes under refined/": (
        DAGSTER, "s3:PutObject",
        lambda c: c.s3.put_object(Bucket=c.bucket, Key=REFINED_KEY, Body=b"x")),
    "dagster deletes a landing file": (
        DAGSTER, "s3:DeleteObject",
        lambda c: (c.s3.put_object(Bucket=c.bucket, Key=LANDING, Body=b"x"),
                   c.s3.delete_objects(Bucket=c.bucket, Delete={"Objects": [{"Key": LANDING}]}))),
    "dagster reads another bucket": (
        DAGSTER, "s3:GetObject",
        lambda c: c.s3.get_object(Bucket=c.dep.other_bucket, Key=LANDING)),
    "dagster lists outside the lake's prefixes": (
        DAGSTER, "s3:ListBucket",
        lambda c: c.s3.list_objects_v2(Bucket=c.bucket, Prefix="deploy/")),
    "dagster starts another job": (
        DAGSTER, "glue:StartJobRun",
        lambda c: c.glue.start_job_run(JobName=c.dep.other_job)),
    "dagster changes the refined table": (
        DAGSTER, "glue:UpdateTable",
        lambda c: c.glue.update_table(DatabaseName=c.dep.settings.glue_database,
                                      TableInput=_table_input("b3_etl_soma_acao"))),
    "dagster queries in another workgroup": (
        DAGSTER, "athena:StartQueryExecution",
        lambda c: c.athena.start_query_execution(QueryString="SELECT 1",
                                                 WorkGroup=c.dep.other_workgroup)),
    "dagster reads another workgroup's results": (
        DAGSTER, "athena:GetQueryResults", _other_workgroups_results),
    "glue role deletes a landing file": (
        GLUE, "s3:DeleteObject",
        lambda c: c.s3.delete_objects(Bucket=c.bucket, Delete={"Objects": [{"Key": LANDING}]})),
    "glue role overwrites a landing file": (
        GLUE, "s3:PutObject", lambda c: c.s3.put_object(Bucket=c.bucket, Key=LANDING, Body=b"")),
    "glue role reads raw": (
        GLUE, "s3:GetObject", lambda c: c.s3.get_object(Bucket=c.bucket, Key=RAW)),
    "glue role lists raw": (
        GLUE, "s3:ListBucket",
        lambda c: c.s3.list_objects_v2(Bucket=c.bucket, Prefix="raw/ibov/")),
    "glue role writes reports": (
        GLUE, "s3:PutObject",
        lambda c: c.s3.put_object(Bucket=c.bucket, Key="reports/dt=2025-03-05/x.png", Body=b"")),
    "glue role writes another bucket's refined/": (
        GLUE, "s3:PutObject",
        lambda c: c.s3.put_object(Bucket=c.dep.other_bucket, Key=REFINED_KEY, Body=b"")),
    "glue role starts its own job": (
        GLUE, "glue:StartJobRun",
        lambda c: c.glue.start_job_run(JobName=c.dep.settings.glue_job_name)),
    "glue role lists another job's runs": (
        GLUE, "glue:GetJobRuns", lambda c: c.glue.get_job_runs(JobName=c.dep.other_job)),
    "glue role creates a table in another database": (
        GLUE, "glue:CreateTable",
        lambda c: c.glue.create_table(DatabaseName="default",
                                      TableInput=_table_input("b3_etl_soma_acao"))),
    "glue role queries athena": (
        GLUE, "athena:StartQueryExecution",
        lambda c: c.athena.start_query_execution(QueryString="SELECT 1",
                                                 WorkGroup=c.dep.settings.athena_workgroup)),
    "lambda starts another job": (
        LAMBDA, "glue:StartJobRun", lambda c: c.glue.start_job_run(JobName=c.dep.other_job)),
    "lambda reads a raw object's tags": (
        LAMBDA, "s3:GetObjectTagging", lambda c: c.s3.get_object_tagging(Bucket=c.bucket, Key=RAW)),
    "lambda reads another bucket's tags": (
        LAMBDA, "s3:GetObjectTagging",
        lambda c: c.s3.get_object_tagging(Bucket=c.dep.other_bucket, Key=LANDING)),
    "lambda reads a landing file": (
        LAMBDA, "s3:GetObject", lambda c: c.s3.get_object(Bucket=c.bucket, Key=LANDING)),
    "lambda tags a landing file": (
        LAMBDA, "s3:PutObjectTagging",
        lambda c: c.s3.put_object_tagging(Bucket=c.bucket, Key=LANDING,
                                          Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})),
}  # fmt: skip


@pytest.mark.parametrize("case", OUT_OF_DESIGN)
def test_out_of_design_calls_are_denied(
    aws: MotoServer, dep: Deployment, rec: IamRecorder, case: str
) -> None:
    """moto carries each call out (or refuses it for its own reasons); IAM must refuse it."""
    principal, action, calls = OUT_OF_DESIGN[case]
    caller = Caller(
        aws.client("s3"), aws.client("glue"), aws.client("athena"),
        rec.ignore(aws.client("athena")), dep,
    )  # fmt: skip
    with rec.as_principal(principal), contextlib.suppress(ClientError):
        calls(caller)  # a refusal by moto is recorded all the same: the request was made
    assert rec.of(principal) and rec.unmapped() == []
    denied = rec.denied(principal, dep.statements(principal))
    assert any(f": {action} on " in d for d in denied), (
        f"{principal} is allowed {case!r}:\n" + "\n".join(map(str, rec.of(principal)))
    )


# --------------------------------------------------------------------------- lint


def policy_documents(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every policy document of the stack, resolved: roles' inline policies, managed
    policies and resource policies (trust policies are not parliament's kind of document)."""
    docs = {}
    for logical_id, resource in stack.resources().items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []):
            docs[f"{logical_id}/{policy['PolicyName']}"] = policy["PolicyDocument"]
        if "PolicyDocument" in props:
            docs[logical_id] = props["PolicyDocument"]
    return docs


LINTED = policy_documents(Stack(parameters=ARTIFACTS))


@pytest.fixture(scope="module")
def parliament() -> Any:
    """parliament (a dev dependency); it imports pkg_resources, hence setuptools<81."""
    skip_unless(importlib.util.find_spec("parliament") is not None, "parliament is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources' deprecation, unclosed files
        import parliament

    return parliament


def lint(parliament: Any, document: dict[str, Any]) -> list[str]:
    policy = parliament.analyze_policy_string(json.dumps(document), include_community_auditors=True)
    return [f"{f.issue} ({f.severity}): {f.detail}" for f in policy.findings]


@pytest.mark.parametrize("name", LINTED)
def test_policies_lint_clean(parliament: Any, name: str) -> None:
    assert lint(parliament, LINTED[name]) == []


def test_the_linter_finds_what_it_should(parliament: Any) -> None:
    """A control: a misspelt action and an object ARN for a bucket action are reported."""
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObjcet", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b/*"},
        ],
    }
    issues = {f.split(" ", 1)[0] for f in lint(parliament, bad)}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues
