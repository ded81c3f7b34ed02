"""Day 2 in process: backlogs, unreadable run records, failed refines, checks after a failure."""

from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

import dagster as dg
import pytest

from b3_assets.cli import cmd_import_csv
from b3_assets.keys import LANDING, RAW, REFINED
from b3_assets.platform.catalog import QueryEngine, QueryResult
from b3_assets.platform.resources import CatalogResource
from b3_assets.portfolio.checks import LANDING_CHECKS
from b3_assets.portfolio.sensors import MAX_RUNS_PER_TICK, RANGE_START
from b3_assets.sessions import trading_days
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
from glue.layout import landing_key

DAY = DEFAULT_DATE.isoformat()


class SlowAthena(QueryEngine):
    """An engine that takes 2 s per query and counts them: a tick must never wait on it."""

    name = "slow"
    queries = 0

    def query(self, sql, params=()):
        SlowAthena.queries += 1
        time.sleep(2)
        return QueryResult([], [])


class SlowCatalog(CatalogResource):
    def engine(self) -> QueryEngine:
        return SlowAthena()


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_backlog_of_500_runs_drains_in_bounded_ticks(tmp_path):
    platform = local_platform(tmp_path)
    platform.resources["catalog"] = SlowCatalog()
    runner = platform.glue
    first = date(2024, 1, 2)
    for i in range(500):  # no landing for these dates: fast FAILED runs, each recorded
        day = (first + timedelta(days=i)).isoformat()
        runner.start_job_run(JobName=platform.settings.glue_job_name, Arguments={
            "--data_carteira": day})
    instance = dg.DagsterInstance.ephemeral()
    cursor, seen, ticks, slowest = None, [], 0, 0.0
    while True:
        t0 = time.perf_counter()
        tick = sensor_tick(platform, instance, cursor)
        slowest = max(slowest, time.perf_counter() - t0)
        if tick.skip_message:
            break
        ticks += 1
        requested = [(r.tags["dagster/asset_partition_range_start"],
                      r.tags["dagster/asset_partition_range_end"]) for r in tick.run_requests]
        seen.extend(requested)
        cursor = tick.cursor
    assert ticks == 500 // MAX_RUNS_PER_TICK
    assert SlowAthena.queries == 0  # a tick only lists Glue runs
    assert slowest < 20, slowest  # Dagster's sensor timeout is 60 s
    covered = set()
    for start, end in seen:
        covered |= {start, end}
    assert len(json.loads(cursor)["reported"]) == 500


def test_an_unreadable_run_record_is_skipped_and_named(tmp_path, b3_replica, caplog):
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(platform, DAY, instance=instance).success
    runs = tmp_path / "_glue_job_runs"
    (runs / "20990101T000000000000-truncated.json").write_text('{"Id": "jr_x", "JobNa')
    (runs / "20990101T000000000001-foreign.json").write_text('{"hello": "world"}')
    with caplog.at_level(logging.WARNING):
        tick = sensor_tick(platform, instance)
    # The readable run was handled (the daily run recorded it already), the others named.
    assert not tick.run_requests and "1 Glue run(s) finished" in tick.skip_message
    assert "truncated.json" in caplog.text and "foreign.json" in caplog.text


def test_a_failed_local_refine_fails_the_landing_run_naming_the_glue_run(tmp_path, b3_replica):
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(platform, DAY).success
    # The previous date's landing file is corrupt: refining the next date must read it.
    previous = tmp_path / "landing/ibov/dt=2025-03-05/ibov.parquet"
    nxt = (DEFAULT_DATE + timedelta(days=1)).isoformat()
    b3_replica.set_portfolio(DEFAULT_DATE + timedelta(days=1))
    previous.write_bytes(b"PAR1 not parquet")
    result = materialize(platform, nxt)
    assert not result.success
    message = failure_message(result)
    assert "Glue job run jr_" in message and nxt in message and "FAILED" in message


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_bad_date_in_a_batch_refine_fails_alone_and_the_others_are_published(tmp_path):
    """As the Glue job does: the run goes on past a date that fails, then fails naming each
    failed date and every published one; the sensor records the published ones as refined
    and their glue_job_run_succeeded passes, while the failed ones show Glue's error."""
    days = trading_days(date(2025, 3, 17), date(2025, 3, 20))
    platform = local_platform(tmp_path / "lake")
    assert cmd_import_csv(platform.lake, write_csvs(tmp_path / "csv", days)) == 0
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range(platform, instance, days[0], days[0]).success
    # days[0]'s landing file breaks: it fails, and so does days[1] (its previous portfolio).
    (tmp_path / "lake" / landing_key(days[0])).write_bytes(b"PAR1 not parquet")
    result = materialize_range(platform, instance, days[1], days[-1])
    assert not result.success
    message = failure_message(result)
    label = f"{days[0].isoformat()}…{days[-1].isoformat()}, {len(days)} dates"
    assert "Glue job run jr_" in message and label in message and "FAILED" in message, message
    assert "2 of 4 date(s) failed" in message
    assert f'failed dates: ["{days[0].isoformat()}", "{days[1].isoformat()}"]' in message
    rows = platform.catalog.query("SELECT DISTINCT DataCarteira FROM b3_etl_soma_acao").rows
    assert sorted(str(r[0]) for r in rows) == [days[0].isoformat(), *map(str, days[2:])]
    tick = sensor_tick(platform, instance)
    assert sorted(r.job_name for r in tick.run_requests) == ["refined_checks", "refined_followup"]
    results = {r.dagster_run.job_name: r for r in run_followups(platform, instance, tick)}
    recorded = [
        e.event_specific_data.materialization
        for e in results["refined_followup"].get_asset_materialization_events()
        if e.asset_key == REFINED
    ]
    assert sorted(m.partition for m in recorded) == [d.isoformat() for d in days[2:]]
    assert {m.metadata["run_outcome"].value for m in recorded} == {
        "these dates were published; others of the run failed"
    }
    outcome = {
        d.isoformat(): check_results(instance, REFINED, ["glue_job_run_succeeded"], d.isoformat())
        for d in days[1:]
    }
    assert outcome == {
        days[1].isoformat(): {"glue_job_run_succeeded": "FAILED"},
        days[2].isoformat(): {"glue_job_run_succeeded": "SUCCEEDED"},
        days[3].isoformat(): {"glue_job_run_succeeded": "SUCCEEDED"},
    }


def test_checks_pass_after_a_failed_attempt(tmp_path, b3_replica):
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize(local_platform(tmp_path, CLOSED_URL), DAY, instance=instance)
    assert not failed.success
    passed = materialize(local_platform(tmp_path, b3_replica.base_url), DAY, instance=instance)
    assert passed.success, failure_message(passed)
    statuses = check_results(instance, LANDING, list(LANDING_CHECKS), DAY)
    assert set(statuses.values()) == {"SUCCEEDED"}, statuses
    # The run that recorded the refined date evaluated its checks too.
    assert check_results(instance, REFINED, ["glue_job_run_succeeded"], DAY) == {
        "glue_job_run_succeeded": "SUCCEEDED"
    }


def test_a_corrupt_archive_fails_at_once_naming_the_manifest(tmp_path, b3_replica):
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(platform, DAY).success
    (manifest,) = (tmp_path / "raw/ibov").glob(f"dt={DAY}/*/manifest.json")
    manifest.write_text("{not json")
    t0 = time.perf_counter()
    result = materialize(local_platform(tmp_path, CLOSED_URL), DAY)
    assert not result.success
    assert time.perf_counter() - t0 < 30  # no step retries for what cannot heal
    message = failure_message(result)
    assert "is corrupt" in message and str(manifest) in message


def test_a_glue_run_is_recorded_only_after_the_landing_run_that_caused_it(tmp_path, b3_replica):
    """Locally the refine finishes inside the landing step: while that run is in progress the
    sensor waits, so refined is never recorded before the landing write it follows."""
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    # raw and landing only (as a backfill of them): the Glue run is left to the sensor.
    assert materialize(platform, DAY, instance=instance, asset_selection=[RAW, LANDING]).success
    in_flight = instance.create_run_for_job(
        platform.defs.resolve_job_def("daily_ibov_portfolio"),
        tags={"dagster/partition": DAY},
        status=dg.DagsterRunStatus.STARTED,
    )
    waiting = sensor_tick(platform, instance)
    assert waiting.skip_message and not waiting.run_requests
    instance.report_run_failed(instance.get_run_by_id(in_flight.run_id))
    recorded = sensor_tick(platform, instance, waiting.cursor)
    (request,) = recorded.run_requests
    assert request.job_name == "refined_followup" and request.tags[RANGE_START] == DAY
