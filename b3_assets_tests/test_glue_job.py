"""The Glue job: arguments through awsglue's real getResolvedOptions, the awsglue wrapper with
GlueContext/Job stubbed, and run_job on local Spark with S3 and the Glue catalog on a moto
server (127.0.0.1). Spark reads and writes a local folder mirroring the bucket (the
``io_base_uri`` seam): local Spark has no S3 filesystem."""

from __future__ import annotations

import json
import shutil
import sys
import time
import types
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pyarrow.parquet as pq
import pytest

from b3_assets_tests.conftest import skip_unless
from b3_assets_tests.landing_factory import landing_table, write_landing
from b3_assets_tests.moto_server import MotoServer, unique_name
from b3_assets_tests.test_refine_spark_parity import local_spark
from glue import job as glue_job
from glue.local_job import run_local_refine
from glue.transform import REFINED_FILE_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BUCKET = "b3-lake"
D0228 = date(2025, 2, 28)
D0305 = date(2025, 3, 5)
PROCESSADO_EM = datetime(2025, 3, 5, 22, 0, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def awsglue_utils() -> types.ModuleType:
    """awsglue.utils from AWSGlueDataplanePython: the real getResolvedOptions Glue runs."""
    try:
        import awsglue.utils
    except ImportError as exc:
        skip_unless(False, f"AWSGlueDataplanePython (awsglue) does not import: {exc}")
        raise
    return awsglue.utils


# --- arguments and the awsglue wrapper -----------------------------------------------------


def test_required_arguments_and_defaults(awsglue_utils: types.ModuleType) -> None:
    args = glue_job.resolve_args(["job.py", "--data_carteira", "2025-03-05", "--bucket", BUCKET])
    assert args == {
        "data_carteira": "2025-03-05",
        "bucket": BUCKET,
        "landing_prefix": "landing/ibov",
        "refined_prefix": "refined",
        "database": "default",
        "table": "b3_etl_soma_acao",
    }


def test_optional_arguments_and_glue_injected_ones(awsglue_utils: types.ModuleType) -> None:
    argv = [
        "job.py",
        "--JOB_ID", "j_1",
        "--JOB_RUN_ID", "jr_1",
        "--job-bookmark-option", "job-bookmark-disable",
        "--TempDir", "s3://tmp/x",
        "--data_carteira", "2025-03-05",
        "--bucket", BUCKET,
        "--database=b3",
        "--table", "soma",
        "--refined_prefix", "curated/refined",
        "--JOB_NAME", "b3-refine",
    ]  # fmt: skip
    args = glue_job.resolve_args(argv)
    assert args["database"] == "b3"
    assert args["table"] == "soma"
    assert args["refined_prefix"] == "curated/refined"
    assert args["landing_prefix"] == "landing/ibov"
    assert args["JOB_NAME"] == "b3-refine"
    assert args["JOB_RUN_ID"] == "jr_1"  # what the job waits on overlapping runs with
    assert "TempDir" not in args


def test_bad_arguments_are_refused(awsglue_utils: types.ModuleType) -> None:
    with pytest.raises(awsglue_utils.GlueArgumentError, match="bucket"):
        glue_job.resolve_args(["job.py", "--data_carteira", "2025-03-05"])
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        glue_job.resolve_args(["job.py", "--data_carteira", "05/03/2025", "--bucket", BUCKET])
    with pytest.raises(ValueError, match="--table must not be empty"):
        glue_job.resolve_args(
            ["job.py", "--data_carteira", "2025-03-05", "--bucket", BUCKET, "--table", ""]
        )


def test_main_wraps_run_job_in_glue_context_and_job(
    monkeypatch: pytest.MonkeyPatch, moto_env: str, awsglue_utils: types.ModuleType
) -> None:
    calls: list[tuple[str, Any]] = []

    class FakeGlueContext:
        def __init__(self, sc: Any) -> None:
            calls.append(("GlueContext", sc))
            self.spark_session = "spark-session"

    class FakeJob:
        def __init__(self, glue_context: FakeGlueContext) -> None:
            assert isinstance(glue_context, FakeGlueContext)

        def init(self, name: str, args: dict[str, str]) -> None:
            calls.append(("init", (name, args["data_carteira"])))

        def commit(self) -> None:
            calls.append(("commit", None))

    class FakeSparkContext:
        @staticmethod
        def getOrCreate() -> str:
            return "spark-context"

    def fake_run_job(spark: Any, s3: Any, glue: Any, args: dict[str, str]) -> dict[str, Any]:
        assert spark == "spark-session"
        assert s3.meta.service_model.service_name == "s3"
        assert glue.meta.service_model.service_name == "glue"
        calls.append(("run_job", args))
        return {"rows": 84}

    stub = types.ModuleType
    monkeypatch.setitem(sys.modules, "awsglue.context", stub("awsglue.context"))
    monkeypatch.setitem(sys.modules, "awsglue.job", stub("awsglue.job"))
    monkeypatch.setitem(sys.modules, "pyspark.context", stub("pyspark.context"))
    sys.modules["awsglue.context"].GlueContext = FakeGlueContext  # type: ignore[attr-defined]
    sys.modules["awsglue.job"].Job = FakeJob  # type: ignore[attr-defined]
    sys.modules["pyspark.context"].SparkContext = FakeSparkContext  # type: ignore[attr-defined]
    monkeypatch.setattr(glue_job, "run_job", fake_run_job)

    def fake_wait(glue: Any, job_name: str, run_id: str, data_carteira: str) -> list[str]:
        calls.append(("wait", (job_name, run_id, data_carteira)))
        return []

    monkeypatch.setattr(glue_job, "wait_for_earlier_runs", fake_wait)

    argv = ["job.py", "--JOB_NAME", "b3-refine", "--data_carteira", "2025-03-05"]
    summary = glue_job.main([*argv, "--bucket", BUCKET, "--JOB_RUN_ID", "jr_7"])

    assert summary == {"rows": 84}
    assert [c[0] for c in calls] == ["GlueContext", "init", "wait", "run_job", "commit"]
    assert calls[2][1] == ("b3-refine", "jr_7", "2025-03-05")
    assert calls[0][1] == "spark-context"
    assert calls[1][1] == ("b3-refine", "2025-03-05")
    assert calls[3][1]["bucket"] == BUCKET
    assert calls[3][1]["table"] == "b3_etl_soma_acao"


# --- one run per date at a time (Glue's job runs on moto) ------------------------------------


class Clock:
    """A fake clock whose sleeps move it forward (and are counted)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def glue_runs(moto: MotoServer) -> Iterator[tuple[Any, str]]:
    """A Glue job on moto whose runs stay in the state they start in until told otherwise."""
    glue = moto.client("glue")
    job = unique_name("b3-refine")
    glue.create_job(Name=job, Role="arn:aws:iam::123456789012:role/glue",
                    Command={"Name": "glueetl", "ScriptLocation": "s3://a/job.py"},
                    ExecutionProperty={"MaxConcurrentRuns": 10})
    yield glue, job


def _start(glue: Any, job: str, day: str) -> str:
    run_id = glue.start_job_run(JobName=job, Arguments={"--data_carteira": day})["JobRunId"]
    time.sleep(0.01)  # distinct StartedOn, as real runs started by separate events have
    return run_id


def test_an_overlapping_run_of_the_same_date_waits_for_the_earlier_one(
    moto: MotoServer, glue_runs: tuple[Any, str]
) -> None:
    glue, job = glue_runs
    # Every run advances one state (STARTING -> RUNNING -> SUCCEEDED) per 3 reads of it.
    with moto.transition("glue::job_run", progression="manual", times=3):
        first = _start(glue, job, "2025-03-05")
        other_date = _start(glue, job, "2025-03-06")
        duplicate = _start(glue, job, "2025-03-05")
        clock = Clock()

        waited = glue_job.wait_for_earlier_runs(
            glue, job, duplicate, "2025-03-05", poll_s=15, sleep=clock.sleep, clock=clock
        )
        states = {r["Id"]: r["JobRunState"] for r in glue.get_job_runs(JobName=job)["JobRuns"]}

    assert waited == [first]  # not the other date's run, not itself
    assert clock.sleeps and set(clock.sleeps) == {15}
    assert states[first] == "SUCCEEDED"
    # The earliest run of a date waits for nobody; a run Glue does not list neither.
    assert glue_job.earlier_active_runs(glue, job, first, "2025-03-05") == []
    assert glue_job.earlier_active_runs(glue, job, "jr_local", "2025-03-05") == []
    assert other_date not in waited


def test_a_run_that_waits_too_long_fails_having_written_nothing(
    moto: MotoServer, glue_runs: tuple[Any, str]
) -> None:
    glue, job = glue_runs
    with moto.transition("glue::job_run", progression="manual", times=10**9):
        first = _start(glue, job, "2025-03-05")
        duplicate = _start(glue, job, "2025-03-05")
        clock = Clock()
        with pytest.raises(TimeoutError) as info:
            glue_job.wait_for_earlier_runs(glue, job, duplicate, "2025-03-05", timeout_s=60,
                                           poll_s=15, sleep=clock.sleep, clock=clock)
    message = str(info.value)
    assert f"{first} (STARTING)" in message and "2025-03-05" in message
    assert "Nothing was written" in message
    assert clock.now == 60


# --- run_job: local Spark, S3 and Glue on moto -----------------------------------------------


@pytest.fixture
def moto_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake credentials, and every boto3 client pointed at moto: nothing can reach AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture(scope="module")
def spark(request: pytest.FixtureRequest) -> SparkSession:
    return local_spark(request)


class Lake:
    """A bucket on moto plus a local folder mirroring it (what Spark reads and writes)."""

    def __init__(self, root: Path, s3: Any) -> None:
        self.root = root
        self.s3 = s3

    def put_landing(self, table: Any) -> None:
        path = write_landing(self.root, table)
        key = path.relative_to(self.root).as_posix()
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())

    def keys(self, prefix: str) -> list[str]:
        response = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in response.get("Contents", [])]

    @property
    def io_base_uri(self) -> str:
        return f"file://{self.root}"


def refined_rows(folder: Path) -> dict[str, dict[str, Any]]:
    """One row per Acao folder; each folder holds exactly one Parquet file."""
    rows = {}
    for part in sorted(folder.glob("Acao=*")):
        files = sorted(part.glob("*.parquet"))
        assert len(files) == 1, files
        table = pq.ParquetFile(files[0]).read()
        assert [(f.name, f.type) for f in table.schema] == [
            (f.name, f.type) for f in REFINED_FILE_SCHEMA
        ]
        rows[part.name.removeprefix("Acao=")] = table.to_pylist()[0]
    return rows


@pytest.mark.spark
def test_run_job_refines_replaces_and_catalogs(
    spark: SparkSession, moto_env: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_env)
    glue = boto3.client("glue", endpoint_url=moto_env)
    s3.create_bucket(Bucket=BUCKET)
    glue.create_database(DatabaseInput={"Name": "default"})
    lake = Lake(tmp_path / "bucket", s3)
    lake.put_landing(landing_table(date(2025, 2, 27), drop={"PETR"}))
    lake.put_landing(landing_table(D0228, drop={"AZUL"}))
    lake.put_landing(landing_table(D0305))
    lake.put_landing(landing_table(date(2025, 3, 6)))  # later dates do not count
    s3.put_object(Bucket=BUCKET, Key="refined/DataCarteira=2025-03-05/Acao=ZZZZ/old.parquet")
    args = {"data_carteira": "2025-03-05", "bucket": BUCKET}

    first = glue_job.run_job(
        spark, s3, glue, args, io_base_uri=lake.io_base_uri, processado_em=PROCESSADO_EM
    )

    assert first["data_carteira_anterior"] == "2025-02-28"
    assert first["rows"] == 84
    assert first["table_created"] is True
    assert first["objects_replaced"] == 1
    assert len(first["partitions_created"]) == 84
    json.dumps(first)
    assert lake.keys("refined/") == []  # the stale object went; Spark wrote locally here
    out = lake.root / "refined" / "DataCarteira=2025-03-05"
    spark_rows = refined_rows(out)
    assert sorted(spark_rows) == first["issuers"]
    assert spark_rows["AZUL"]["variacao_participacao_pp"] is None
    assert {r["dias_desde_carteira_anterior"] for r in spark_rows.values()} == {5}
    # The Glue job and the local runner write the same rows in the same layout.
    local = tmp_path / "local"
    for d in (date(2025, 2, 27), D0228, D0305):
        shutil.copytree(lake.root / f"landing/ibov/dt={d}", local / f"landing/ibov/dt={d}")
    run_local_refine(local, D0305, PROCESSADO_EM)
    assert refined_rows(local / "refined" / "DataCarteira=2025-03-05") == spark_rows
    partitions = glue.get_partitions(DatabaseName="default", TableName="b3_etl_soma_acao")
    locations = {
        tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in partitions["Partitions"]
    }
    assert len(locations) == 84
    assert locations[("2025-03-05", "PETR")] == (
        f"s3://{BUCKET}/refined/DataCarteira=2025-03-05/Acao=PETR/"
    )

    # B3 republished 05/03 without BBDC: the rerun replaces the date everywhere.
    lake.put_landing(landing_table(D0305, drop={"BBDC"}))
    second = glue_job.run_job(spark, s3, glue, args, io_base_uri=lake.io_base_uri)

    assert second["table_created"] is False
    assert second["partitions_deleted"] == ["BBDC"]
    assert second["partitions_created"] == []
    assert not (out / "Acao=BBDC").exists()
    assert sorted(refined_rows(out)) == second["issuers"]
    partitions = glue.get_partitions(DatabaseName="default", TableName="b3_etl_soma_acao")
    assert len(partitions["Partitions"]) == 83
    assert ["2025-03-05", "BBDC"] not in [p["Values"] for p in partitions["Partitions"]]


@pytest.mark.spark
def test_run_job_without_landing_file_touches_nothing(
    spark: SparkSession, moto_env: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_env)
    glue = boto3.client("glue", endpoint_url=moto_env)
    s3.create_bucket(Bucket="empty-lake")
    s3.put_object(Bucket="empty-lake", Key="refined/DataCarteira=2025-03-05/Acao=PETR/x.parquet")
    args = {"data_carteira": "2025-03-05", "bucket": "empty-lake"}

    with pytest.raises(FileNotFoundError, match="landing/ibov/dt=2025-03-05/ibov.parquet"):
        glue_job.run_job(spark, s3, glue, args, io_base_uri=f"file://{tmp_path}")

    keys = s3.list_objects_v2(Bucket="empty-lake")["Contents"]
    assert [k["Key"] for k in keys] == ["refined/DataCarteira=2025-03-05/Acao=PETR/x.parquet"]
