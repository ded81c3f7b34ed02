"""Derived data follows every landing write (issue #19): the marts and both reports of each
date landed — by a landing-only backfill after import-csv, a gap fill that changes the next
date's previous date, or a run that stopped after landing — are computed by Dagster runs the
sensors request, and no run fails for want of an upstream asset it could compute."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from b3_assets.cli import cmd_import_csv
from b3_assets.keys import LANDING, MART_KEYS, RAW, REFINED, REPORT, REPORT_MARTS
from b3_assets.marts.store import MartStore
from b3_assets.partitions import latest_by_partition
from b3_assets.portfolio.derived import DerivedDue, catchup_requests, derived_due
from b3_assets.sessions import trading_days
from b3_assets.storage.lake import LocalLake
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.chain import (
    failure_message,
    local_platform,
    materialize_range,
    run_followups,
    sensor_tick,
)

D1, D2, D3 = "2025-03-10", "2025-03-11", "2025-03-12"


def _marts(**ids: int) -> list[dict[str, int]]:
    """Each mart materialized at the same storage ids (partition key -> id)."""
    return [{k.replace("_", "-"): v for k, v in ids.items()} for _ in MART_KEYS]


def _d(key: str) -> date:
    return date.fromisoformat(key)


# --- The rule, on records given directly ---------------------------------------------------


def test_a_date_whose_refine_is_pending_is_left_to_its_follow_up():
    due = derived_due({D1: 10}, {}, _marts(), {}, {})
    assert not due  # the glue_job_runs follow-up computes the marts with refined


def test_refined_without_marts_or_reports_makes_all_three_due():
    due = derived_due({D1: 10}, {D1: 11}, _marts(), {}, {})
    assert due == DerivedDue(frozenset({_d(D1)}), frozenset(), frozenset({_d(D1)}))


def test_the_daily_runs_order_leaves_nothing_due():
    landing, refined = {D1: 10, D2: 20}, {D1: 11, D2: 21}
    marts = _marts(**{"2025_03_10": 12, "2025_03_11": 22})
    due = derived_due(landing, refined, marts, {D1: 13, D2: 23}, {D1: 14, D2: 24})
    assert not due


def test_a_gap_filled_before_a_date_makes_its_marts_due():
    """D2 landed after D3's marts were computed against D1: D3's previous date changed."""
    landing, refined = {D1: 10, D3: 20, D2: 40}, {D1: 11, D3: 21, D2: 41}
    marts = _marts(**{"2025_03_10": 12, "2025_03_12": 22})
    due = derived_due(landing, refined, marts, {D1: 13, D3: 23}, {D1: 14, D3: 24})
    assert due.marts == {_d(D2), _d(D3)}
    assert due.report == {_d(D2)}  # D3's refined is unchanged: its composition is current


def test_one_mart_older_than_its_inputs_is_enough():
    landing, refined = {D1: 10}, {D1: 11}
    marts = _marts(**{"2025_03_10": 12})
    marts[1][D1] = 5
    assert derived_due(landing, refined, marts, {D1: 13}, {D1: 14}).marts == {_d(D1)}


def test_a_report_older_than_a_recomputed_mart_is_redrawn_alone():
    """The next landing date's marts recomputed with a gap fill: only its report is behind."""
    landing, refined = {D1: 10}, {D1: 11}
    marts = _marts(**{"2025_03_10": 30})
    due = derived_due(landing, refined, marts, {D1: 13}, {D1: 14})
    assert due == DerivedDue(frozenset(), frozenset({_d(D1)}), frozenset())


def test_requests_are_one_per_range_and_selection_and_not_repeated():
    due = DerivedDue(
        marts=frozenset({_d(D1), _d(D2)}),
        report_marts=frozenset({_d("2025-03-20")}),
        report=frozenset({_d(D1), _d(D2)}),
    )
    requests = catchup_requests(due, newest=99)
    shapes = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"],
         len(r.asset_selection or []))
        for r in requests
    ]  # fmt: skip
    assert shapes == [(D1, D2, 5), ("2025-03-20", "2025-03-20", 1)]
    assert len({r.run_key for r in requests}) == 2
    assert all(r.run_key and r.run_key.endswith("-99") for r in requests)


# --- Real runs on a real (ephemeral) instance ----------------------------------------------


def _indicadores(lake_root, day: str) -> dict:
    store = MartStore(LocalLake(lake_root))
    rows = [r for r in store.read("ibov_indicadores", int(day[:4])).to_pylist()
            if r["data_carteira"].isoformat() == day]  # fmt: skip
    assert len(rows) == 1, rows
    return rows[0]


def _every_date_derived(instance: dg.DagsterInstance, days: list[str]) -> None:
    landing = latest_by_partition(instance, LANDING)
    for key in (REFINED, *MART_KEYS.values(), REPORT, REPORT_MARTS):
        latest = latest_by_partition(instance, key)
        for day in days:
            assert latest.get(day, -1) > landing[day], (key.to_user_string(), day)


def _follow(platform, instance) -> None:
    """The glue_job_runs sensor's tick and the runs it requests, as the daemon runs them."""
    tick = sensor_tick(platform, instance)
    assert tick.run_requests, tick.skip_message
    for result in run_followups(platform, instance, tick):
        assert result.success, failure_message(result)


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_import_then_landing_only_backfill_then_a_gap_fill(tmp_path):
    """The README's bootstrap on landing alone, then the missing date imported and landed:
    every run succeeds, every date gets its marts and both reports, and the date after the
    gap is recomputed against it (its previous date and turnover change)."""
    days = [d for d in trading_days(date(2025, 3, 10), date(2025, 3, 14))]
    gap = days[2]
    platform = local_platform(tmp_path / "lake")
    csvs = write_csvs(tmp_path / "csv", days)
    imported = [c for c, d in zip(csvs, days, strict=True) if d != gap]
    assert cmd_import_csv(platform.lake, imported) == 0
    instance = dg.DagsterInstance.ephemeral()
    for first, last in ((days[0], days[1]), (days[3], days[4])):
        result = materialize_range(platform, instance, first, last, [LANDING])
        assert result.success, failure_message(result)
    _follow(platform, instance)
    landed = [d.isoformat() for d in days if d != gap]
    _every_date_derived(instance, landed)
    after = days[3].isoformat()
    assert _indicadores(tmp_path / "lake", after)["data_carteira_anterior"] == days[1]

    assert cmd_import_csv(platform.lake, [csvs[2]]) == 0
    result = materialize_range(platform, instance, gap, gap, [LANDING])
    assert result.success, failure_message(result)
    _follow(platform, instance)
    _every_date_derived(instance, [d.isoformat() for d in days])
    assert _indicadores(tmp_path / "lake", after)["data_carteira_anterior"] == gap
    # Nothing is left for the catch-up: the follow-up covered every date.
    tick = sensor_tick(platform, instance, name="derived_catchup")
    assert not tick.run_requests, tick.run_requests
    assert "current" in (tick.skip_message or "")


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_marts_and_reports_a_run_never_computed_are_caught_up(tmp_path):
    """Landing and refined recorded, but the run stopped before the marts and reports (as a
    killed daily run leaves it): the catch-up requests them, once, and they are current."""
    days = trading_days(date(2025, 3, 17), date(2025, 3, 19))
    platform = local_platform(tmp_path / "lake")
    assert cmd_import_csv(platform.lake, write_csvs(tmp_path / "csv", days)) == 0
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(platform, instance, days[0], days[-1], [RAW, LANDING, REFINED])
    assert result.success, failure_message(result)
    assert not sensor_tick(platform, instance).run_requests  # refined recorded by the run
    tick = sensor_tick(platform, instance, name="derived_catchup")
    assert [(r.tags["dagster/asset_partition_range_start"],
             r.tags["dagster/asset_partition_range_end"]) for r in tick.run_requests] == [
        (days[0].isoformat(), days[-1].isoformat())]  # fmt: skip
    for result in run_followups(platform, instance, tick):
        assert result.success, failure_message(result)
    _every_date_derived(instance, [d.isoformat() for d in days])
    again = sensor_tick(platform, instance, name="derived_catchup")
    assert not again.run_requests and "current" in (again.skip_message or "")


@pytest.mark.parametrize("stop_after", [[REPORT], [REPORT_MARTS]])
def test_a_report_that_was_not_drawn_is_drawn_alone(tmp_path, stop_after):
    day = date(2025, 3, 17)
    platform = local_platform(tmp_path / "lake")
    assert cmd_import_csv(platform.lake, write_csvs(tmp_path / "csv", [day])) == 0
    instance = dg.DagsterInstance.ephemeral()
    every = [RAW, LANDING, REFINED, *MART_KEYS.values(), REPORT, REPORT_MARTS]
    selected = [k for k in every if k not in stop_after]
    assert materialize_range(platform, instance, day, day, selected).success
    tick = sensor_tick(platform, instance, name="derived_catchup")
    assert [set(r.asset_selection or []) for r in tick.run_requests] == [set(stop_after)]
    for result in run_followups(platform, instance, tick):
        assert result.success, failure_message(result)
    _every_date_derived(instance, [day.isoformat()])
