"""The bucket lake (S3Lake) against moto's server, held to the folder lake's contract.

Every contract test runs on both lakes: the pipeline only ever sees ``Lake``, so what works
on the laptop's folder must work the same on the bucket. Nothing here talks to AWS.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from b3_assets.platform.resources import resources_for, write_landing
from b3_assets.settings import Settings
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.storage.lake import Lake, LakeError, LocalLake, S3Lake
from b3_assets.storage.landing import landing_key, read_landing
from b3_assets_tests.support.landing_factory import landing_table
from b3_assets_tests.support.moto_server import ACCOUNT, MotoServer, unique_name, use_moto

DAY = date(2025, 3, 5)


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_moto(monkeypatch, moto.endpoint)
    return moto.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique_name("b3-lake")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return S3Lake(request.getfixturevalue("bucket"), request.getfixturevalue("s3"))


# --------------------------------------------------------------------------- the contract


def test_write_read_overwrite(lake: Lake) -> None:
    key = "raw/ibov/dt=2025-03-05/abc/payload.json"
    assert lake.list_keys("raw/") == []
    lake.write_bytes(key, b'{"a": 1}')
    assert lake.list_keys("raw/") == [key]
    assert lake.read_bytes(key) == b'{"a": 1}'
    lake.write_bytes(key, b"")  # overwrite, and an empty object is still an object
    assert lake.list_keys("raw/") == [key] and lake.read_bytes(key) == b""
    # A folder or a key's prefix is not the object.
    for other in ("raw/ibov/dt=2025-03-05/abc", "raw/ibov/dt=2025-03-05/abc/payload.js"):
        with pytest.raises(LakeError):
            lake.read_bytes(other)


def test_missing_key_error_names_the_uri(lake: Lake) -> None:
    key = "landing/ibov/dt=2025-03-05/ibov.parquet"
    with pytest.raises(LakeError) as info:
        lake.read_bytes(key)
    assert lake.uri(key) in str(info.value)
    assert "does not exist" in str(info.value)


def test_s3_uri_and_missing_key_message(s3: Any, bucket: str) -> None:
    lake = S3Lake(bucket, s3)
    assert lake.uri() == f"s3://{bucket}/"
    assert lake.uri("landing/ibov/") == f"s3://{bucket}/landing/ibov/"
    with pytest.raises(LakeError, match=rf"s3://{bucket}/landing/x\.parquet does not exist"):
        lake.read_bytes("landing/x.parquet")


def _fill(lake: Lake) -> list[str]:
    keys = [
        "landing/ibov/dt=2025-03-06/ibov.parquet",
        "landing/ibov/dt=2025-03-05/ibov.parquet",
        "landing/ibov/dt=2025-03-05/extra/nested.bin",
        "landing/ibovx/dt=2025-03-05/ibov.parquet",  # a sibling prefix, not under landing/ibov/
        "landing/ibov/README",  # a file directly in the folder is not a sub-folder
        "raw/ibov/dt=2025-03-05/abc/manifest.json",
    ]
    for i, key in enumerate(keys):
        lake.write_bytes(key, str(i).encode())
    return keys


def test_list_keys_and_folders(lake: Lake) -> None:
    _fill(lake)
    assert lake.list_keys("landing/ibov/") == [
        "landing/ibov/README",
        "landing/ibov/dt=2025-03-05/extra/nested.bin",
        "landing/ibov/dt=2025-03-05/ibov.parquet",
        "landing/ibov/dt=2025-03-06/ibov.parquet",
    ]
    assert lake.list_keys("landing/ibov/dt=2025-03-05/") == [
        "landing/ibov/dt=2025-03-05/extra/nested.bin",
        "landing/ibov/dt=2025-03-05/ibov.parquet",
    ]
    assert lake.list_keys("refined/") == []
    assert lake.list_folders("landing/ibov") == ["dt=2025-03-05", "dt=2025-03-06"]
    assert lake.list_folders("landing/ibov/") == ["dt=2025-03-05", "dt=2025-03-06"]
    assert lake.list_folders("landing") == ["ibov", "ibovx"]
    assert lake.list_folders("nothing/here") == []


def test_many_keys_are_listed_across_pages(s3: Any, bucket: str) -> None:
    """ListObjectsV2 pages at 1000 keys."""
    from moto.s3.models import s3_backends

    lake = S3Lake(bucket, s3)
    keys = [f"refined/DataCarteira=2025-03-05/Acao=A{i:04d}/part-0.parquet" for i in range(1234)]
    # Filled straight into moto's in-process backend: 1234 PUTs over HTTP take ~15 s here.
    backend = s3_backends[ACCOUNT]["aws"]
    for key in keys:
        backend.put_object(bucket, key, b"x")
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    lake.write_bytes("refined/DataCarteira=2025-03-06/Acao=PETR/part-00000.parquet", b"y")
    assert lake.list_keys("refined/DataCarteira=2025-03-05/") == sorted(keys)
    assert len(lake.list_folders("refined/DataCarteira=2025-03-05")) == 1234
    assert calls.count("ListObjectsV2") >= 4
    assert lake.list_keys("refined/DataCarteira=2025-03-06") == [
        "refined/DataCarteira=2025-03-06/Acao=PETR/part-00000.parquet"
    ]


def test_aws_resources_build_an_s3_lake_on_the_endpoint(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    settings = Settings(env="aws", bucket=bucket, aws_endpoint_url=moto.endpoint)
    lake = resources_for(settings)["lake"].get()
    assert isinstance(lake, S3Lake) and lake.bucket == bucket
    lake.write_bytes("raw/x.json", b"{}")
    assert s3.get_object(Bucket=bucket, Key="raw/x.json")["Body"].read() == b"{}"


# --------------------------------------------------------------------------- landing writes


def _glue_job(lake: Lake) -> Any:
    """The Glue job resource of the environment the lake belongs to (same keys, same code)."""
    if isinstance(lake, LocalLake):
        settings = Settings(data_dir=lake.root)
    else:
        endpoint = lake.client.meta.endpoint_url
        settings = Settings(env="aws", bucket=lake.bucket, aws_endpoint_url=endpoint)
    return resources_for(settings)["glue_job"]


def _write_landing(lake: Lake, tables: dict[str, Any]) -> None:
    """What the landing step does with its tables: write each date, then the Glue catch-up."""
    assert write_landing(lake, _glue_job(lake), tables, None) == []


def test_landing_writes_the_same_bytes_on_s3_and_local(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    table = landing_table(DAY)
    s3_lake, local_lake = S3Lake(bucket, s3), LocalLake(tmp_path / "lake")
    for lake in (s3_lake, local_lake):
        _write_landing(lake, {DAY.isoformat(): table})
    key = landing_key(DAY)
    assert key == "landing/ibov/dt=2025-03-05/ibov.parquet"
    on_s3 = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert on_s3 == (tmp_path / "lake" / key).read_bytes()
    back = read_landing(s3_lake, DAY)
    assert back.schema.equals(LANDING_SCHEMA) and back.equals(table)
    assert pq.read_schema(local_lake.path(key)).names == LANDING_SCHEMA.names
    # Rewriting the same table gives the same object (deterministic, no run-dependent bytes).
    _write_landing(s3_lake, {DAY.isoformat(): table})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == on_s3


def test_a_glue_job_that_does_not_exist_is_named_with_the_setting_to_fix(
    s3: Any, bucket: str
) -> None:
    """A second date lands while the first was never refined (stale), so Dagster has a run to
    start, but B3_GLUE_JOB names no job: the error says which setting to fix."""
    lake = S3Lake(bucket, s3)
    _write_landing(lake, {"2025-03-05": landing_table(DAY)})
    with pytest.raises(
        RuntimeError, match=r"Glue job 'b3-etl-soma-acao' does not exist.*B3_GLUE_JOB"
    ):
        _write_landing(lake, {"2025-03-06": landing_table(date(2025, 3, 6))})


def test_landing_writes_nothing_for_a_date_that_is_not_a_session(s3: Any, bucket: str) -> None:
    lake = S3Lake(bucket, s3)
    with pytest.raises(ValueError, match="2025-03-04 is not a B3 session"):
        _write_landing(
            lake,
            {"2025-03-05": landing_table(DAY), "2025-03-04": landing_table(date(2025, 3, 4))},
        )
    assert lake.list_keys("") == []
