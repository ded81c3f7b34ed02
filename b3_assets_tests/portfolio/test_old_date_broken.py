"""Blast radius of one (issue #19 item 3): a broken old landing date never blocks a new day.

Before: a corrupt landing file of an old date made every later daily run fail ("the landing
files were written, but their refine failed … <old dates>"); the new date was refined, but
Dagster did not record its landing, its marts, reports and checks were skipped, and the 09:45
second attempt failed too."""

from __future__ import annotations

import logging
from datetime import date

import dagster as dg
import pytest

from b3_assets.keys import LANDING, MART_KEYS, RAW, REFINED, REPORT, REPORT_MARTS
from b3_assets.portfolio.checks import LANDING_CHECKS, REFINED_CHECKS
from b3_assets.portfolio.schedules import retry_request_for
from b3_assets_tests.support.chain import (
    CLOSED_URL,
    check_results,
    failure_message,
    local_platform,
    materialize,
    run_followups,
    sensor_tick,
)
from glue.layout import landing_key

#: The old date whose landing file breaks, the date after it, and a new day.
OLD, NEXT, NEW = date(2025, 3, 5), date(2025, 3, 6), date(2025, 3, 7)


def _warnings(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(
        e.user_message for e in instance.all_logs(run_id) if e.level >= logging.WARNING
    )


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_corrupt_old_landing_file_does_not_block_a_new_day(tmp_path, b3_replica):
    instance = dg.DagsterInstance.ephemeral()
    for day in (OLD, NEXT):
        b3_replica.set_portfolio(day)
        assert materialize(local_platform(tmp_path, b3_replica.base_url), day.isoformat(),
                           instance=instance).success
    platform = local_platform(tmp_path, b3_replica.base_url)
    before = sensor_tick(platform, instance)  # the sensor has seen those dates' Glue runs
    corrupt = tmp_path / landing_key(OLD)
    corrupt.write_bytes(b"PAR1 garbage, not parquet")

    # 08:30: B3 is down; the first attempt fails (as on any bad morning).
    key = NEW.isoformat()
    assert not materialize(local_platform(tmp_path, CLOSED_URL), key, instance=instance).success
    # 09:45: the second attempt lands, refines, records and checks the new day.
    request = retry_request_for(instance, NEW)
    assert isinstance(request, dg.RunRequest) and request.partition_key == key
    b3_replica.set_portfolio(NEW)
    result = materialize(platform, key, instance=instance)
    assert result.success, failure_message(result)
    for asset in (RAW, LANDING, REFINED, *MART_KEYS.values(), REPORT, REPORT_MARTS):
        assert key in instance.get_materialized_partitions(asset), asset
    assert set(check_results(instance, LANDING, list(LANDING_CHECKS), key).values()) == {
        "SUCCEEDED"}
    assert set(check_results(instance, REFINED, list(REFINED_CHECKS), key).values()) == {
        "SUCCEEDED"}
    served = platform.catalog.query(
        "SELECT DISTINCT DataCarteira FROM b3_etl_soma_acao ORDER BY 1").rows
    assert [str(r[0]) for r in served] == [OLD.isoformat(), NEXT.isoformat(), key]
    # The old dates are named in the run log as a warning, with the file and the fix.
    warned = _warnings(instance, result.run_id)
    assert f"{OLD.isoformat()}, {NEXT.isoformat()}" in warned, warned
    assert str(corrupt) in warned and "is unreadable" in warned
    assert f"re-materialize landing/ibov_portfolio for {OLD.isoformat()}" in warned
    assert f"{NEXT.isoformat()} was not refined" in warned and "its previous landing date" in warned
    assert "already landed" in retry_request_for(instance, NEW).skip_message

    # Their own check says so: the sensor's follow-up evaluates the failed dates' checks.
    tick = sensor_tick(platform, instance, before.cursor)
    assert [r.job_name for r in tick.run_requests] == ["refined_checks"]
    run_followups(platform, instance, tick)
    for day in (OLD, NEXT):
        assert check_results(instance, REFINED, ["glue_job_run_succeeded"], day.isoformat()) == {
            "glue_job_run_succeeded": "FAILED"}

    # The date after the corrupt one fails its own run, naming the file it needs and the fix
    # (it is never refined against an earlier date instead).
    b3_replica.set_portfolio(NEXT)
    again = materialize(platform, NEXT.isoformat(), instance=instance)
    assert not again.success
    message = failure_message(again)
    assert NEXT.isoformat() in message and str(corrupt) in message, message
    assert f"re-materialize landing/ibov_portfolio for {OLD.isoformat()}" in message

    # The fix: land the old date again (from its raw archive); the dates after it follow.
    b3_replica.set_portfolio(OLD)
    fixed = materialize(platform, OLD.isoformat(), instance=instance)
    assert fixed.success, failure_message(fixed)
    assert not _warnings(instance, fixed.run_id)
    assert platform.resources["glue_job"].pending_refines() == []
