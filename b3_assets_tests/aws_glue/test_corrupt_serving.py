"""A corrupt year file of the serving copy is rebuilt from its sources (the published runs),
named, and never fails the landing runs, the reconciliation or the queries after it (before:
every landing step, tick and `query` failed with ArrowInvalid, and the Glue run record said
FAILED although the date was published)."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from b3_assets.platform.catalog import DuckDBCatalog
from b3_assets_tests.support.local_lake import land
from glue.layout import serving_year_key
from glue.local_job import serving_behind, sync_serving

DAYS = [date(2025, 3, 17), date(2025, 3, 18), date(2025, 3, 19)]


def _served_dates(lake) -> list[str]:
    rows = DuckDBCatalog(lake).query(
        "SELECT DISTINCT DataCarteira AS d FROM b3_etl_soma_acao ORDER BY 1").rows
    return [r[0] for r in rows]


def test_a_corrupt_year_file_is_rebuilt_by_the_next_landing_run(tmp_path, caplog):
    land(tmp_path, *DAYS[:2])
    year_file = tmp_path / serving_year_key(2025)
    year_file.write_bytes(b"PAR1" + b"\x00" * 50)  # torn by a crash or a bad disk
    with caplog.at_level(logging.WARNING):
        land(tmp_path, DAYS[2])  # the next day lands, refines and publishes
    assert str(year_file) in caplog.text and "rebuilt from the published runs" in caplog.text
    assert _served_dates(tmp_path) == [d.isoformat() for d in DAYS]
    runs = sorted((tmp_path / "_glue_job_runs").glob("*.json"))
    assert json.loads(runs[-1].read_text())["JobRunState"] == "SUCCEEDED"


def test_the_reconciliation_sees_a_corrupt_year_as_behind_and_repairs_it(tmp_path, caplog):
    land(tmp_path, *DAYS)
    year_file = tmp_path / serving_year_key(2025)
    year_file.write_bytes(b"not parquet at all")
    with caplog.at_level(logging.WARNING):
        assert serving_behind(tmp_path) == DAYS  # no ArrowInvalid: the dates are pending
        assert sync_serving(tmp_path) == DAYS
    assert str(year_file) in caplog.text
    assert serving_behind(tmp_path) == []
    assert _served_dates(tmp_path) == [d.isoformat() for d in DAYS]


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_corrupt_serving_object_on_s3_is_rebuilt_and_the_run_succeeds(
        moto, monkeypatch, caplog):
    """On S3 (moto), the Glue job's own run_job: a corrupt serving object of the year is named
    and rebuilt from the published partitions; the run that published returns (its Glue run
    record says SUCCEEDED). Before: ArrowInvalid, 'serving_failed', the run raised (FAILED)."""
    from b3_assets_tests.support.aws import historico_rows
    from b3_assets_tests.support.glue_without_spark import put_landing, run_glue_job
    from b3_assets_tests.support.landing_factory import landing_table
    from b3_assets_tests.support.moto_server import unique_name, use_moto
    from glue.catalog import ensure_database
    from glue.layout import SERVING_TABLE_NAME

    use_moto(monkeypatch, moto.endpoint)
    s3, glue = moto.client("s3"), moto.client("glue")
    bucket, database = unique_name("b3-corrupt"), unique_name("b3db").replace("-", "_")
    s3.create_bucket(Bucket=bucket)
    ensure_database(glue, database)
    for day in DAYS:
        put_landing(s3, bucket, landing_table(day))
    run_glue_job(monkeypatch, s3, glue, bucket, database, DAYS[:2], "jr_first")
    location = glue.get_partition(DatabaseName=database, TableName=SERVING_TABLE_NAME,
                                  PartitionValues=["2025"])["Partition"]["StorageDescriptor"]
    folder = location["Location"].removeprefix(f"s3://{bucket}/")
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"]]
    s3.put_object(Bucket=bucket, Key=key, Body=b"PAR1" + b"\x00" * 50)  # torn
    with caplog.at_level(logging.WARNING):
        summary = run_glue_job(monkeypatch, s3, glue, bucket, database, [DAYS[2]], "jr_next")
    assert "serving_failed" not in summary
    assert f"s3://{bucket}/{key} is corrupt" in caplog.text
    (patch,) = summary["serving"]
    assert patch["patched"] == [d.isoformat() for d in DAYS]  # every date of the year
    served = historico_rows(s3, glue, bucket, database, 2025)
    assert sorted(set(served.column("DataCarteira").to_pylist())) == [
        d.isoformat() for d in DAYS]
