"""The Glue job: arguments through awsglue's real getResolvedOptions, the awsglue wrapper with
GlueContext/Job stubbed, the wait for overlapping runs (Glue job runs on moto, and a fake
GetJobRuns that counts its pages), and run_job on local Spark with S3 and the Glue catalog on
a moto server (127.0.0.1), each test in an account of its own where nothing exists yet. Local
Spark has no S3 filesystem: it reads and writes a local folder that :class:`Lake` keeps equal
to the moto bucket the job lists and deletes from (the ``io_base_uri`` seam)."""

from __future__ import annotations

import functools
import io
import secrets
import shutil
import sys
import types
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pyarrow.parquet as pq
import pytest

import glue.published as glue_published
from b3_assets_tests.support.aws import historico_rows
from b3_assets_tests.support.ci import skip_unless
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from b3_assets_tests.support.moto_server import unique_name
from b3_assets_tests.support.spark import local_spark
from glue import job as glue_job
from glue.layout import TABLE_NAME, refined_current_key, refined_date_prefix, refined_run_prefix
from glue.outcome import failed_in_batch
from glue.transform import REFINED_FILE_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BUCKET = "b3-lake"
D0227 = date(2025, 2, 27)
D0228 = date(2025, 2, 28)
D0304 = date(2025, 3, 4)
D0305 = date(2025, 3, 5)
D0306 = date(2025, 3, 6)
PROCESSADO_EM = datetime(2025, 3, 5, 22, 0, 1, tzinfo=UTC)
FRESH_REGION = "sa-east-1"


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
    assert args == {"data_carteira": "2025-03-05", "bucket": BUCKET, "database": "default",
                    "force": "false"}
    assert glue_job.job_dates(args) == [D0305]


def test_a_batch_of_dates_and_glue_injected_arguments(awsglue_utils: types.ModuleType) -> None:
    argv = [
        "job.py",
        "--JOB_ID", "j_1",
        "--JOB_RUN_ID", "jr_1",
        "--job-bookmark-option", "job-bookmark-disable",
        "--TempDir", "s3://tmp/x",
        "--data_carteiras", "2025-02-27,2025-02-28,2025-03-05",
        "--bucket", BUCKET,
        "--database=b3",
        "--table", "ignored",  # the layout is fixed: stale stack arguments do no harm
        "--JOB_NAME", "b3-refine",
    ]  # fmt: skip
    args = glue_job.resolve_args(argv)
    assert args == {
        "data_carteiras": "2025-02-27,2025-02-28,2025-03-05",
        "bucket": BUCKET,
        "database": "b3",
        "JOB_NAME": "b3-refine",
        "JOB_RUN_ID": "jr_1",  # the run folder, and what overlapping runs are ordered by
        "force": "false",
    }
    assert glue_job.job_dates(args) == [D0227, D0228, D0305]


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ([], "exactly one of --data_carteira"),
        (["--data_carteira", "2025-03-05", "--data_carteiras", "2025-03-06"], "exactly one"),
        (["--data_carteira", "05/03/2025"], "YYYY-MM-DD"),
        (["--data_carteira", "2025-03-05,2025-03-06"], "YYYY-MM-DD"),
        (["--data_carteira", "2025-02-30"], "impossible date"),
        (["--data_carteiras", "2025-03-05,2025-02-28"], "ascending order without repeats"),
        (["--data_carteiras", "2025-03-05,2025-03-05"], "ascending order without repeats"),
        (["--data_carteira", "2025-03-05", "--database", ""], "--database must not be empty"),
    ],
)
def test_bad_arguments_are_refused(
    awsglue_utils: types.ModuleType, dates: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        glue_job.resolve_args(["job.py", "--bucket", BUCKET, *dates])


def test_a_missing_bucket_is_refused(awsglue_utils: types.ModuleType) -> None:
    with pytest.raises(awsglue_utils.GlueArgumentError, match="bucket"):
        glue_job.resolve_args(["job.py", "--data_carteira", "2025-03-05"])


def test_main_wraps_run_job_in_glue_context_and_job(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, awsglue_utils: types.ModuleType
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,  # nothing main builds can reach AWS
    }.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[str, Any]] = []

    class FakeGlueContext:
        def __init__(self, sc: Any) -> None:
            calls.append(("GlueContext", sc))
            self.spark_session = "spark-session"

    class FakeJob:
        def __init__(self, glue_context: FakeGlueContext) -> None:
            assert isinstance(glue_context, FakeGlueContext)

        def init(self, name: str, args: dict[str, str]) -> None:
            calls.append(("init", (name, args["data_carteiras"])))

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
        return {"dates": []}

    stubs = {
        "awsglue.context": ("GlueContext", FakeGlueContext),
        "awsglue.job": ("Job", FakeJob),
        "pyspark.context": ("SparkContext", FakeSparkContext),
    }
    for module, (name, value) in stubs.items():
        stub = types.ModuleType(module)
        setattr(stub, name, value)
        monkeypatch.setitem(sys.modules, module, stub)
    monkeypatch.setattr(glue_job, "run_job", fake_run_job)

    argv = ["job.py", "--JOB_NAME", "b3-refine", "--data_carteiras", "2025-03-05,2025-03-06"]
    summary = glue_job.main([*argv, "--bucket", BUCKET, "--JOB_RUN_ID", "jr_7"])

    assert summary == {"dates": []}
    assert [c[0] for c in calls] == ["GlueContext", "init", "run_job", "commit"]
    assert calls[0][1] == "spark-context"
    assert calls[1][1] == ("b3-refine", "2025-03-05,2025-03-06")
    assert calls[2][1]["bucket"] == BUCKET


# --- run_job: local Spark, S3 and Glue on moto ---------------------------------------------


@pytest.fixture(scope="module")
def spark(request: pytest.FixtureRequest) -> SparkSession:
    return local_spark(request)


def _to_account(account: str, request: Any, **_: Any) -> None:
    request.headers["x-moto-account-id"] = account


class Lake:
    """A fresh account's bucket on moto, as the job's S3 client, plus the local folder local
    Spark reads and writes. Spark's new files are uploaded before every listing, and deleted
    keys leave the folder too (Hadoop's ``.crc`` side files are not objects)."""

    def __init__(self, endpoint: str, root: Path) -> None:
        self.account = f"{secrets.randbelow(10**12):012d}"  # nothing exists there yet
        self.bucket = unique_name("b3-lake")  # bucket names are global, even on moto
        self.root = root
        root.mkdir(parents=True)
        self.s3 = self.client(endpoint, "s3")
        self.glue = self.client(endpoint, "glue")
        self.s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": FRESH_REGION}
        )

    def client(self, endpoint: str, service: str) -> Any:
        client = boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=FRESH_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.meta.events.register("before-sign", functools.partial(_to_account, self.account))
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def get_paginator(self, name: str) -> Any:
        self.sync()
        return self.s3.get_paginator(name)

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> Any:
        for obj in Delete["Objects"]:
            path = self.root / obj["Key"]
            path.unlink(missing_ok=True)
            path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
        return self.s3.delete_objects(Bucket=Bucket, Delete=Delete)

    def sync(self) -> None:
        present = set(self.keys(""))
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and not path.name.endswith(".crc") and key not in present:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())

    def keys(self, prefix: str) -> list[str]:
        """The bucket's keys as they are (no sync)."""
        paginator = self.s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def put_landing(self, table: Any) -> None:
        path = write_landing(self.root, table)
        key = path.relative_to(self.root).as_posix()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())

    def run(self, spark: SparkSession, glue: Any = None, **args: str) -> dict[str, Any]:
        return glue_job.run_job(
            spark,
            self,
            glue or self.glue,
            {"bucket": self.bucket, **args},
            io_base_uri=f"file://{self.root}",
            processado_em=PROCESSADO_EM,
        )

    def partitions(self, day: date) -> dict[str, str]:
        """The date's partitions in the catalog: issuer -> location."""
        response = self.glue.get_partitions(
            DatabaseName="default", TableName=TABLE_NAME, Expression=f"datacarteira = '{day}'"
        )
        return {p["Values"][1]: p["StorageDescriptor"]["Location"] for p in response["Partitions"]}

    def published(self, day: date) -> dict[str, dict[str, Any]]:
        """What Athena reads for the date: the files at each partition's location, one row
        per issuer (a doubled issuer would fail here), with the refined file schema."""
        rows = {}
        files = self.keys(refined_date_prefix(day))
        for acao, location in self.partitions(day).items():
            folder = location.removeprefix(f"s3://{self.bucket}/")
            keys = [k for k in files if k.startswith(folder)]
            assert len(keys) == 1, (acao, keys)
            body = self.s3.get_object(Bucket=self.bucket, Key=keys[0])["Body"].read()
            table = pq.read_table(io.BytesIO(body))
            assert [(f.name, f.type) for f in table.schema] == [
                (f.name, f.type) for f in REFINED_FILE_SCHEMA
            ]
            (rows[acao],) = table.to_pylist()
        return rows

    def assert_published_by(self, day: date, run_id: str, issuers: list[str]) -> None:
        """The record and every partition of the date name ``run_id``'s folders."""
        record = glue_published.published_record(self.s3, self.bucket, day)
        assert record is not None and record["run_id"] == run_id
        assert record["issuers"] == sorted(issuers)
        assert self.partitions(day) == {
            a: f"s3://{self.bucket}/{refined_run_prefix(day, a, run_id)}" for a in issuers
        }

    def assert_only_run(self, day: date, run_id: str, issuers: list[str]) -> None:
        """The date's objects are one file per issuer under the run's folders and the record
        naming that run, nothing else."""
        keys = self.keys(refined_date_prefix(day))
        record = glue_published.published_record(self.s3, self.bucket, day)
        assert record is not None and record["run_id"] == run_id
        assert record["issuers"] == sorted(issuers)
        keys.remove(refined_current_key(day))
        assert len(keys) == len(issuers)
        prefixes = sorted(k.rsplit("/", 1)[0] + "/" for k in keys)
        assert prefixes == [refined_run_prefix(day, a, run_id) for a in sorted(issuers)]
        assert all(k.endswith(".snappy.parquet") for k in keys)
        assert self.partitions(day) == {
            a: f"s3://{self.bucket}/{refined_run_prefix(day, a, run_id)}" for a in issuers
        }


class KilledAfterTheWrite:
    """A Glue client that fails the first change to a partition: a run dying between its
    Spark write and the repoint."""

    def __init__(self, glue: Any) -> None:
        self.glue = glue

    def __getattr__(self, name: str) -> Any:
        if name.startswith("batch_") and name.endswith("_partition"):
            raise RuntimeError("the run was killed before the repoint")
        return getattr(self.glue, name)


@pytest.fixture
def lake(moto_endpoint: str, tmp_path: Path) -> Lake:
    return Lake(moto_endpoint, tmp_path / "bucket")


@pytest.mark.spark
def test_reruns_replace_the_date_and_a_killed_one_leaves_it_as_it_was(
    spark: SparkSession, lake: Lake
) -> None:
    lake.put_landing(landing_table(D0227, drop={"PETR"}))
    lake.put_landing(landing_table(D0228, drop={"AZUL"}))
    lake.put_landing(landing_table(D0305))
    lake.put_landing(landing_table(D0306))  # later dates do not count
    old_layout = f"{refined_date_prefix(D0305)}Acao=ZZZZ/part-00000.parquet"
    lake.s3.put_object(Bucket=lake.bucket, Key=old_layout)  # before run folders: goes too
    assert lake.glue.get_databases()["DatabaseList"] == []  # a fresh account: no `default`

    first = lake.run(spark, data_carteira="2025-03-05", JOB_RUN_ID="jr_first")

    assert (first["database_created"], first["table_created"]) == (True, True)
    assert first["table"] == "default.b3_etl_soma_acao" and first["failed"] == {}
    (day,) = first["dates"]
    assert day["data_carteira_anterior"] == "2025-02-28"
    assert day["rows"] == day["partitions_created"] == 84
    # The old layout's file is superseded, not deleted: a query may have planned it.
    assert (day["objects_removed"], day["objects_kept_for_readers"]) == (0, 1)
    rows = lake.published(D0305)
    lake.assert_published_by(D0305, "jr_first", sorted(rows))
    assert rows["AZUL"]["variacao_participacao_pp"] is None
    assert {r["dias_desde_carteira_anterior"] for r in rows.values()} == {5}
    assert {r["processado_em"] for r in rows.values()} == {PROCESSADO_EM}
    assert lake.keys(refined_date_prefix(D0306)) == []
    # Its record names the landing files it was built from: the other dates are stale.
    assert glue_published.stale_dates(lake, lake.bucket) == [D0227, D0228, D0306]
    # The run ends with the year's serving copy patched: one object, the date's rows.
    (served,) = first["serving"]
    assert (served["year"], served["patched"], served["rows"]) == (2025, ["2025-03-05"], 84)
    assert served_by_issuer(lake, 2025) == rows

    # B3 republished 05/03 without BBDC and PETR; the run dies between write and repoint.
    lake.put_landing(landing_table(D0305, drop={"BBDC", "PETR"}))
    with pytest.raises(RuntimeError, match="killed before the repoint"):
        lake.run(spark, KilledAfterTheWrite(lake.glue), data_carteira="2025-03-05")
    # Athena still reads the first run's files through its partitions, BBDC and PETR too,
    # beside the 82 files the killed run wrote into folders of its own.
    assert set(lake.partitions(D0305).values()) == {
        f"s3://{lake.bucket}/{refined_run_prefix(D0305, a, 'jr_first')}" for a in rows
    }
    assert lake.published(D0305) == rows
    assert len(lake.keys(refined_date_prefix(D0305))) == 84 + 82 + 1 + 1  # + _current.json, ZZZZ
    # The record still names the first run's landing file, so the date counts as stale: a
    # lost event or a killed run is found by the reconciliation.
    assert D0305 in glue_published.stale_dates(lake, lake.bucket)

    # The next run (a run id of its own) replaces the date and removes both older runs.
    second = lake.run(spark, data_carteira="2025-03-05")

    assert (second["database_created"], second["table_created"]) == (False, False)
    (day,) = second["dates"]
    assert (day["partitions_deleted"], day["partitions_created"]) == (["BBDC", "PETR"], 0)
    assert day["partitions_repointed"] == 82
    # Superseded folders stay readable (a query planned before the repoint reads them).
    assert (day["objects_removed"], day["objects_kept_for_readers"]) == (0, 84 + 82 + 1)
    assert sorted(lake.published(D0305)) == sorted(set(rows) - {"BBDC", "PETR"})
    lake.assert_published_by(D0305, second["run_id"], sorted(set(rows) - {"BBDC", "PETR"}))
    (served,) = second["serving"]
    assert (served["patched"], served["objects_removed"]) == (["2025-03-05"], 0)
    assert served_by_issuer(lake, 2025) == lake.published(D0305)
    assert D0305 not in glue_published.stale_dates(lake, lake.bucket)

    # A duplicate event: the date's record already names these inputs, nothing is refined.
    again = lake.run(spark, data_carteira="2025-03-05", JOB_RUN_ID="jr_dup")
    assert again["dates"][0]["skipped"] and again["serving"] == []
    lake.assert_published_by(D0305, second["run_id"], sorted(set(rows) - {"BBDC", "PETR"}))

    # Past RETIRE_AFTER the next run of the date deletes what it superseded.
    record = glue_published.published_record(lake, lake.bucket, D0305)
    assert record is not None and {"jr_first", "-"} <= set(record["retired"])
    old = (datetime.now(UTC) - glue_job.RETIRE_AFTER - timedelta(minutes=1)).isoformat()
    record["retired"] = {run_id: old for run_id in record["retired"]}
    glue_published.write_published_record(lake, lake.bucket, D0305, record)
    third = lake.run(spark, data_carteira="2025-03-05", JOB_RUN_ID="jr_third", force="true")
    (day,) = third["dates"]
    assert (day["objects_removed"], day["objects_kept_for_readers"]) == (84 + 82 + 1, 82)
    lake.assert_published_by(D0305, "jr_third", sorted(set(rows) - {"BBDC", "PETR"}))


def served_by_issuer(lake: Lake, year: int) -> dict[str, dict[str, Any]]:
    """The serving copy (b3_etl_soma_acao_historico, one object) as Lake.published reads
    refined: issuer -> row without the partition columns."""
    table = historico_rows(lake.s3, lake.glue, lake.bucket, "default", year)
    return {r.pop("Acao"): r for r in table.drop_columns(["DataCarteira"]).to_pylist()}


@pytest.mark.spark
def test_a_batch_refines_each_date_in_one_run(spark: SparkSession, lake: Lake) -> None:
    for day, dropped in ((D0227, {"PETR"}), (D0228, {"AZUL"}), (D0305, set()), (D0306, set())):
        lake.put_landing(landing_table(day, drop=dropped))
    dates = "2025-02-27,2025-02-28,2025-03-05"

    batch = lake.run(spark, data_carteiras=dates, JOB_RUN_ID="jr_b")

    assert [d["data_carteira"] for d in batch["dates"]] == dates.split(",")
    anteriores = [d["data_carteira_anterior"] for d in batch["dates"]]
    assert anteriores == [None, "2025-02-27", "2025-02-28"]
    assert [d["rows"] for d in batch["dates"]] == [83, 83, 84]
    for day in (D0227, D0228, D0305):
        lake.assert_only_run(day, "jr_b", sorted(lake.published(day)))
    assert lake.published(D0228)["PETR"]["variacao_participacao_pp"] is None  # back that day
    assert lake.keys(refined_date_prefix(D0306)) == []

    # A date that cannot be refined (its landing file holds another day's rows) is left as it
    # was and fails the run, naming it, without stopping the dates after it. A stray landing
    # file on a holiday (Carnival, 2025-03-04) is no date's previous portfolio.
    stray = write_landing(lake.root.parent / "stray", landing_table(D0228))
    for key in (
        "landing/ibov/dt=2025-02-26/ibov.parquet",
        "landing/ibov/dt=2025-03-04/ibov.parquet",
    ):
        (lake.root / key).parent.mkdir(parents=True)
        shutil.copy(stray, lake.root / key)
        lake.s3.put_object(Bucket=lake.bucket, Key=key, Body=stray.read_bytes())
    with pytest.raises(RuntimeError, match=r"1 of 2 date\(s\) failed.*2025-02-26.*no rows") as e:
        lake.run(spark, data_carteiras="2025-02-26,2025-03-05", JOB_RUN_ID="jr_c")
    assert failed_in_batch(str(e.value)) == {date(2025, 2, 26)}  # what the sensor reads back
    assert lake.keys(refined_date_prefix(date(2025, 2, 26))) == []
    assert lake.partitions(date(2025, 2, 26)) == {}
    # 03-05's inputs did not change (03-04 is a holiday): skipped, jr_b's version stays.
    lake.assert_only_run(D0305, "jr_b", sorted(lake.published(D0305)))
    assert {r["data_carteira_anterior"] for r in lake.published(D0305).values()} == {D0228}
    with pytest.raises(ValueError, match="2025-03-04 is not a B3 session.*delete s3://"):
        lake.run(spark, data_carteira="2025-03-04")


@pytest.mark.spark
def test_run_job_without_landing_file_touches_nothing(spark: SparkSession, lake: Lake) -> None:
    stale = "refined/DataCarteira=2025-03-05/Acao=PETR/x.parquet"
    lake.s3.put_object(Bucket=lake.bucket, Key=stale)

    with pytest.raises(FileNotFoundError, match="landing/ibov/dt=2025-03-05/ibov.parquet"):
        lake.run(spark, data_carteira="2025-03-05")

    assert lake.keys("") == [stale]
