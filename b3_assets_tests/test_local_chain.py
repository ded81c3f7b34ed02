"""The whole local chain on the B3 replica: raw -> landing -> (event, Lambda, Glue) -> refined."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b3_assets.cli import cmd_import_csv
from b3_assets.keys import LANDING, MART_KEYS, REFINED, REPORT
from b3_assets.partitions import trading_day_partitions
from b3_assets.platform.glue_runs import run_dates
from b3_assets.portfolio.checks import LANDING_CHECKS, REFINED_CHECKS
from b3_assets.portfolio.sensors import RANGE_END, RANGE_START
from b3_assets.sessions import trading_days
from b3_assets.source.browser import find_chromium
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.landing import landing_key, read_landing
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.chain import (
    CLOSED_URL,
    check_results,
    failure_message,
    local_platform,
    materialize,
    materialize_range,
    run_followups,
    sensor_tick,
)
from b3_assets_tests.support.ci import skip_unless

DAY = DEFAULT_DATE.isoformat()


def _lake_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _assert_chain(platform, expected_codes):
    lake = platform.lake
    table = read_landing(lake, DEFAULT_DATE)
    assert table.schema.equals(LANDING_SCHEMA)
    assert table.column("codigo").to_pylist() == sorted(expected_codes)
    assert set(table.column("data_carteira").to_pylist()) == {DEFAULT_DATE}
    # The landing write started the local Glue job synchronously: refined is on disk.
    issuers = sorted({c[:4] for c in expected_codes})
    refined = platform.catalog.query(
        "SELECT Acao, participacao_total_pct FROM b3_etl_soma_acao WHERE DataCarteira = ? "
        "ORDER BY Acao",
        [DAY],
    ).rows
    assert [r[0] for r in refined] == issuers
    assert abs(sum(r[1] for r in refined) - Decimal(100)) <= Decimal("0.01")
    runs = platform.glue.get_job_runs(JobName=platform.settings.glue_job_name)["JobRuns"]
    assert [(r["JobRunState"], r["Arguments"]["--data_carteira"]) for r in runs] == [
        ("SUCCEEDED", DAY)
    ]


def test_chain_via_api(tmp_path, b3_replica):
    platform = local_platform(tmp_path, b3_replica.base_url, fetch="api")
    result = materialize(platform, DAY)
    assert result.success, failure_message(result)
    _assert_chain(platform, [c.codigo for c in b3_replica.portfolio.constituents()])
    (entry,) = RawArchive(platform.lake).entries(DEFAULT_DATE)
    assert entry.manifest["source"] == "api"
    assert entry.manifest["url"].startswith(b3_replica.base_url)
    checks = result.get_asset_check_evaluations()
    landing = {c.check_name for c in checks if c.asset_key == LANDING}
    assert landing == set(LANDING_CHECKS)
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    assert (tmp_path / "catalog.duckdb").is_file()


def test_chain_via_browser(tmp_path, b3_replica):
    skip_unless(find_chromium(None) is not None, "no Chromium for the browser fetch")
    platform = local_platform(tmp_path, b3_replica.base_url, fetch="browser", http_timeout_s=30)
    result = materialize(platform, DAY)
    assert result.success, failure_message(result)
    _assert_chain(platform, [c.codigo for c in b3_replica.portfolio.constituents()])
    (entry,) = RawArchive(platform.lake).entries(DEFAULT_DATE)
    assert entry.manifest["source"] == "browser"


def test_archived_date_needs_no_network(tmp_path, b3_replica):
    result = materialize(local_platform(tmp_path, b3_replica.base_url), DAY)
    assert result.success
    landing_before = (tmp_path / landing_key(DEFAULT_DATE)).read_bytes()
    served = len(b3_replica.requests)
    # Same lake, B3 unreachable: the archive is enough, and landing is byte-identical.
    result = materialize(local_platform(tmp_path, CLOSED_URL), DAY)
    assert result.success, failure_message(result)
    assert len(b3_replica.requests) == served
    assert (tmp_path / landing_key(DEFAULT_DATE)).read_bytes() == landing_before


def test_refetch_keeps_a_different_payload_beside_the_archived_one(tmp_path, b3_replica):
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(platform, DAY).success
    assert materialize(platform, DAY, refetch=True).success  # same payload: nothing new
    assert len(RawArchive(platform.lake).entries(DEFAULT_DATE)) == 1
    p = b3_replica.portfolio
    rows = list(p.rows)
    a, b = rows[0], rows[1]
    step = Decimal("0.001")
    rows[0] = type(a)(a.cod, a.asset, a.type, a.qty, a.part + step, a.sector)
    rows[1] = type(b)(b.cod, b.asset, b.type, b.qty, b.part - step, b.sector)
    b3_replica.set_portfolio(p.with_rows(rows))
    result = materialize(platform, DAY, refetch=True)
    assert result.success, failure_message(result)
    entries = RawArchive(platform.lake).entries(DEFAULT_DATE)
    assert len(entries) == 2  # history kept, not replaced
    landing = read_landing(platform.lake, DEFAULT_DATE).to_pylist()
    by_code = {r["codigo"]: r["participacao_pct"] for r in landing}
    assert by_code[a.cod] == a.part + step  # landing follows the newest payload


@pytest.mark.parametrize("fault", ["other_date", "empty", "truncated", "renamed_keys"])
def test_bad_or_wrong_date_payload_writes_nothing(tmp_path, b3_replica, fault):
    b3_replica.fault(fault, target="all")
    platform = local_platform(tmp_path, b3_replica.base_url, fetch="api")
    result = materialize(platform, DAY)
    assert not result.success
    message = failure_message(result)
    assert DAY in message
    if fault == "other_date":
        assert "2025-03-06" in message and "not of 2025-03-05" in message
    assert [f for f in _lake_files(tmp_path) if not f.startswith("catalog.duckdb")] == []


def test_holidays_are_not_partitions(tmp_path):
    keys = set(trading_day_partitions.get_partition_keys())
    for holiday in ["2024-11-20", "2025-03-03", "2025-03-04", "2026-02-16", "2025-04-18"]:
        assert holiday not in keys
    assert {"2025-03-05", "2026-02-18", "2025-03-20"} <= keys  # Ash Wednesday is a session
    with pytest.raises(dg.DagsterUnknownPartitionError):
        materialize(local_platform(tmp_path), "2025-03-04")
    assert _lake_files(tmp_path) == []


def test_the_daily_run_records_refined_and_the_sensor_records_other_glue_runs(
    tmp_path, b3_replica
):
    """The daily run records its Glue run on refined (its partition shows that run and job),
    with the refined checks and the report, in the same run; the sensor requests a run only
    for Glue runs no run recorded, and the checks alone for a run that failed."""
    instance = dg.DagsterInstance.ephemeral()
    platform = local_platform(tmp_path, b3_replica.base_url)
    daily = materialize(platform, DAY, instance=instance)
    assert daily.success, failure_message(daily)
    (record,) = instance.fetch_materializations(REFINED, limit=1).records
    assert (record.partition_key, record.run_id) == (DAY, daily.run_id)
    assert record.asset_materialization.metadata["glue_job_run_id"].value.startswith("jr_")
    assert instance.get_run_by_id(daily.run_id).job_name == "daily_ibov_portfolio"
    evaluated = {(e.asset_key, e.check_name) for e in daily.get_asset_check_evaluations()}
    assert {(REFINED, name) for name in REFINED_CHECKS} <= evaluated
    assert set(check_results(instance, REFINED, list(REFINED_CHECKS), DAY).values()) == {
        "SUCCEEDED"
    }
    report = instance.get_latest_materialization_event(REPORT)
    assert report is not None and report.run_id == daily.run_id
    # That Glue run is recorded already: the tick requests nothing.
    first = sensor_tick(platform, instance, None)
    assert not first.run_requests and not first.asset_events
    assert "already recorded" in first.skip_message
    # A Glue run no Dagster run recorded (here: the date refined again by hand).
    (rerun,) = [platform.glue.refine(platform.settings.glue_job_name, [DEFAULT_DATE])]
    second = sensor_tick(platform, instance, first.cursor)
    assert not second.asset_events  # recorded by a run, never by the tick
    (request,) = second.run_requests
    assert request.job_name == "refined_followup"
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (DAY, DAY)
    (followup,) = run_followups(platform, instance, second)
    assert followup.success, failure_message(followup)
    (record,) = instance.fetch_materializations(REFINED, limit=1).records
    assert record.run_id == followup.run_id
    assert record.asset_materialization.metadata["glue_job_run_id"].value == rerun["Id"]
    evaluated = {(e.asset_key, e.check_name) for e in followup.get_asset_check_evaluations()}
    # The refined checks, and the marts' (the follow-up computes the marts of its dates).
    assert {name for key, name in evaluated if key == REFINED} == set(REFINED_CHECKS)
    assert {key for key, _ in evaluated} == {REFINED, *MART_KEYS.values()}
    assert instance.get_latest_materialization_event(REPORT).run_id == followup.run_id
    # Next tick, same runs: nothing requested again.
    third = sensor_tick(platform, instance, second.cursor)
    assert not third.run_requests
    # A failed run (no landing for that date) fails that date's run check, with Glue's error.
    platform.glue.start_job_run(
        JobName=platform.settings.glue_job_name, Arguments={"--data_carteira": "2025-03-06"}
    )
    fourth = sensor_tick(platform, instance, third.cursor)
    (request,) = fourth.run_requests
    assert request.job_name == "refined_checks"
    (checks_run,) = run_followups(platform, instance, fourth)
    evaluation = next(
        e
        for e in checks_run.get_asset_check_evaluations()
        if e.check_name == "glue_job_run_succeeded"
    )
    assert not evaluation.passed and evaluation.partition == "2025-03-06"
    assert "no landing file" in evaluation.metadata["error_message"].value
    assert not sensor_tick(platform, instance, fourth.cursor).run_requests


def test_schedule_runs_trading_days_and_skips_holidays(tmp_path):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    defs = local_platform(tmp_path).defs
    schedule = defs.get_schedule_def("daily_ibov_portfolio_0830")
    assert schedule.cron_schedule == "30 8 * * 1-5"
    assert schedule.execution_timezone == "America/Sao_Paulo"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sp = ZoneInfo("America/Sao_Paulo")
    for day, expected in [
        (date(2025, 3, 5), "2025-03-05"),
        (date(2025, 3, 4), None),
        (date(2024, 11, 20), None),
        (date(2026, 2, 18), "2026-02-18"),
    ]:
        when = datetime(day.year, day.month, day.day, 8, 30, tzinfo=sp)
        with dg.build_schedule_context(
            scheduled_execution_time=when, repository_def=defs.get_repository_def()
        ) as ctx:
            data = schedule.evaluate_tick(ctx)
        keys = [r.partition_key for r in data.run_requests or []]
        assert keys == ([expected] if expected else [])
        if not expected:
            assert "not a B3 session" in data.skip_message


def test_definitions_load_with_the_contract_keys(tmp_path):
    defs = local_platform(tmp_path).defs
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw/ibov_portfolio", "landing/ibov_portfolio", "refined/b3_etl_soma_acao"} <= keys
    assert defs.get_sensor_def("glue_job_runs").default_status == dg.DefaultSensorStatus.RUNNING


def test_local_glue_run_record_is_shaped_like_a_glue_jobrun(tmp_path, b3_replica):
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(platform, DAY).success
    (record,) = (tmp_path / "_glue_job_runs").glob("*.json")
    run = json.loads(record.read_text())
    assert {
        "Id",
        "JobName",
        "JobRunState",
        "StartedOn",
        "CompletedOn",
        "ExecutionTime",
        "Arguments",
    } <= set(run)
    files = list((tmp_path / "refined" / f"DataCarteira={DAY}").glob("Acao=*/run=*/*.parquet"))
    assert files and pq.read_table(files[0], use_threads=False).num_rows == 1


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_range_run_refines_its_dates_in_one_local_glue_run(tmp_path):
    """As on AWS: the backfill's landing files carry the batch tag, the Lambda starts nothing
    for them, and one Glue run refines the range; the range run records every date of it."""
    days = trading_days(date(2025, 3, 14), date(2025, 3, 20))
    platform = local_platform(tmp_path / "lake")
    assert cmd_import_csv(platform.lake, write_csvs(tmp_path / "csv", days)) == 0
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(platform, instance, days[0], days[-1])
    assert result.success, failure_message(result)
    (run,) = platform.glue.get_job_runs(JobName=platform.settings.glue_job_name)["JobRuns"]
    assert run["JobRunState"] == "SUCCEEDED"
    assert run_dates(run["Arguments"]) == tuple(days)
    rows = platform.catalog.query(
        "SELECT DISTINCT DataCarteira, data_carteira_anterior FROM b3_etl_soma_acao ORDER BY 1"
    ).rows
    previous = [None, *days[:-1]]
    assert [(str(a), str(b)) for a, b in rows] == [
        (d.isoformat(), str(p)) for d, p in zip(days, previous, strict=True)
    ]
    checks = result.get_asset_check_evaluations()
    assert sorted(c.partition for c in checks if c.asset_key == LANDING) == sorted(
        d.isoformat() for d in days for _ in LANDING_CHECKS
    )
    assert all(c.passed for c in checks)
    # The range run recorded every date of its Glue run on refined: the tick has nothing.
    recorded = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == REFINED
    ]
    assert sorted(m.partition for m in recorded) == [d.isoformat() for d in days]
    assert {m.metadata["glue_job_run_id"].value for m in recorded} == {run["Id"]}
    assert not sensor_tick(platform, instance).run_requests
    # A second range over the same dates plus one: one more run, the new date's neighbour
    # untouched unless stale (nothing is: the same bytes), all dates refined again.
    later = trading_days(days[0], date(2025, 3, 21))
    assert cmd_import_csv(platform.lake, write_csvs(tmp_path / "csv2", later[-1:])) == 0
    again = materialize_range(platform, instance, later[0], later[-1])
    assert again.success, failure_message(again)
    runs = platform.glue.get_job_runs(JobName=platform.settings.glue_job_name)["JobRuns"]
    assert [run_dates(r["Arguments"]) for r in runs] == [tuple(later), tuple(days)]
