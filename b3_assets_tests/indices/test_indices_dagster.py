"""Every B3 index through Dagster: the schedules of a weekday morning (evaluated as the daemon
would, then their runs executed in process on a real instance) land every index as the
replica served it, b3_carteiras answers per index through the catalog, and one failing index
fails only its own run, naming it, while IBOV's job and the other indices land."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from b3_assets.keys import LANDING_CARTEIRAS
from b3_assets_tests.support.chain import check_results, failure_message, local_platform

DAY = date(2025, 3, 5)  # a Wednesday: the replica's default portfolio date
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@pytest.fixture
def instance():
    """A real instance on disk (schedules read it through its reference, as the daemon)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _tick(platform, instance: dg.DagsterInstance, name: str, at: datetime):
    schedule = platform.defs.resolve_schedule_def(name)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                   repository_def=platform.defs.get_repository_def()) as ctx:
        return schedule.evaluate_tick(ctx)


def _run(platform, instance: dg.DagsterInstance, request: dg.RunRequest):
    job = platform.defs.resolve_job_def("daily_b3_indices")
    return job.execute_in_process(partition_key=request.partition_key, instance=instance,
                                  tags=request.tags, raise_on_error=False)


def test_the_morning_schedule_lands_every_index_and_the_catalog_answers(
        b3_replica, tmp_path: Path, instance: dg.DagsterInstance):
    platform = local_platform(tmp_path, b3_replica.base_url)
    tick = _tick(platform, instance, "daily_b3_indices_0840",
                 datetime(2025, 3, 5, 8, 40, tzinfo=SAO_PAULO))
    (request,) = tick.run_requests
    assert request.partition_key == DAY.isoformat()
    result = _run(platform, instance, request)
    assert result.success, failure_message(result)
    event = instance.get_latest_materialization_event(LANDING_CARTEIRAS)
    assert event.asset_materialization.metadata["indices_collected"].value == 34
    assert check_results(instance, LANDING_CARTEIRAS, ["every_index_landed_and_valid"],
                         DAY.isoformat()) == {"every_index_landed_and_valid": "SUCCEEDED"}
    # b3_carteiras per index, through the catalog file any DuckDB client opens.
    with duckdb.connect(str(tmp_path / "catalog.duckdb"), read_only=True) as con:
        counts = dict(con.execute("SELECT indice, count(*) FROM b3_carteiras "
                                  "WHERE data_carteira = ? GROUP BY indice", [DAY]).fetchall())
        smll = con.execute("SELECT codigo, qtde_teorica, participacao_pct FROM b3_carteiras "
                           "WHERE indice = 'SMLL' ORDER BY codigo").fetchall()
        listed = con.execute("SELECT count(DISTINCT indice) FROM b3_composicao").fetchone()
    assert counts == {i: len(b3_replica.index_portfolio(i).rows) for i in b3_replica.indices()}
    assert smll == sorted((r.cod, r.qty, r.part) for r in b3_replica.index_portfolio("SMLL").rows)
    assert listed == (34,)
    # The second attempt has nothing to do once the date succeeded; weekends have no run.
    late = _tick(platform, instance, "daily_b3_indices_second_attempt_0950",
                 datetime(2025, 3, 5, 9, 50, tzinfo=SAO_PAULO))
    assert not late.run_requests and "already has every index" in late.skip_message
    saturday = _tick(platform, instance, "daily_b3_indices_0840",
                     datetime(2025, 3, 8, 8, 40, tzinfo=SAO_PAULO))
    assert not saturday.run_requests


@pytest.mark.slow
def test_one_failing_index_fails_only_its_run_and_the_second_attempt_fetches_it(
        b3_replica, tmp_path: Path, instance: dg.DagsterInstance):
    platform = local_platform(tmp_path, b3_replica.base_url)
    b3_replica.fault("5xx", index="SMLL")
    ibov = platform.defs.resolve_job_def("daily_ibov_portfolio").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, raise_on_error=False)
    assert ibov.success, failure_message(ibov)
    tick = _tick(platform, instance, "daily_b3_indices_0840",
                 datetime(2025, 3, 5, 8, 40, tzinfo=SAO_PAULO))
    result = _run(platform, instance, tick.run_requests[0])
    assert not result.success
    message = failure_message(result)
    assert "2025-03-05 SMLL" in message and "503" in message
    assert "IBOV:" not in message
    event = instance.get_latest_materialization_event(LANDING_CARTEIRAS)
    assert event is not None and event.asset_materialization.partition == DAY.isoformat()
    assert "SMLL | **missing**" in event.asset_materialization.metadata["rows_per_index"].value
    catalog = platform.catalog
    landed = {r[0] for r in catalog.query("SELECT DISTINCT indice FROM b3_carteiras").rows}
    assert "IBOV" in landed and "SMLL" not in landed and len(landed) == 33
    # 09:50: B3 is back; the second attempt asks B3 for SMLL only.
    b3_replica.reset()
    late = _tick(platform, instance, "daily_b3_indices_second_attempt_0950",
                 datetime(2025, 3, 5, 9, 50, tzinfo=SAO_PAULO))
    again = _run(platform, instance, late.run_requests[0])
    assert again.success, failure_message(again)
    assert {r.params["index"] for r in b3_replica.api_requests()} == {"SMLL"}
    landed = {r[0] for r in catalog.query("SELECT DISTINCT indice FROM b3_carteiras").rows}
    assert len(landed) == 34
    assert check_results(instance, LANDING_CARTEIRAS, ["every_index_landed_and_valid"],
                         DAY.isoformat()) == {"every_index_landed_and_valid": "SUCCEEDED"}


def test_any_index_csv_bootstraps_its_history_through_import_csv(
        b3_replica, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        instance: dg.DagsterInstance):
    from b3_assets.cli import main
    from b3_assets_tests.replica import csv_bytes
    from b3_assets_tests.replica.indices import generate_index_portfolio

    past = date(2025, 3, 6)  # the replica (B3) serves 2025-03-05: only the CSV has this date
    smll = generate_index_portfolio("SMLL", past, b3_replica.stock_index_rows())
    path = tmp_path / "SMLLDia_06-03-25.csv"
    path.write_bytes(csv_bytes(smll))
    lake_dir = tmp_path / "lake"
    monkeypatch.setenv("B3_DATA_DIR", str(lake_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["import-csv", str(path)]) == 0
    assert (lake_dir / "raw/indices/dt=2025-03-06/indice=SMLL").is_dir()
    assert not (lake_dir / "raw/ibov").exists()
    platform = local_platform(lake_dir, b3_replica.base_url)
    result = platform.defs.resolve_job_def("daily_b3_indices").execute_in_process(
        partition_key=past.isoformat(), instance=instance, raise_on_error=False)
    assert result.success, failure_message(result)
    rows = platform.catalog.query(
        "SELECT indice, codigo, qtde_teorica, participacao_pct, setor_b3 FROM b3_carteiras "
        "WHERE data_carteira = ? ORDER BY codigo", [past]).rows
    assert rows == sorted(("SMLL", r.cod, r.qty, r.part, None) for r in smll.rows)
