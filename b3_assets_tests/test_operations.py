"""Operation over time: a second attempt after a failed morning, landing's freshness, the gap
audit that lists every missed trading day with its fix."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.test_utils import freeze_time

from b3_assets.assets import B3_RETRY, LANDING, retry_delay_s
from b3_assets.audit import AUDIT, fix_for, missing_days
from b3_assets.partitions import trading_day_partitions
from b3_assets.schedules import landing_freshness_checks, retry_request_for
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.support.chain import CLOSED_URL, local_platform, materialize

SP = ZoneInfo("America/Sao_Paulo")
DAY = DEFAULT_DATE.isoformat()


def test_a_second_attempt_only_after_a_failed_first_one(tmp_path, b3_replica):
    instance = dg.DagsterInstance.ephemeral()
    # No run yet (the daemon was down): left to the gap audit, not retried blindly.
    assert isinstance(retry_request_for(instance, DEFAULT_DATE), dg.SkipReason)
    # The 08:30 run failed (B3 unreachable): the 09:45 schedule asks again.
    assert not materialize(local_platform(tmp_path, CLOSED_URL), DAY, instance=instance).success
    request = retry_request_for(instance, DEFAULT_DATE)
    assert isinstance(request, dg.RunRequest) and request.partition_key == DAY
    assert request.run_key == f"{DAY}-second-attempt"
    # Landed since: nothing more to do. And never on a holiday.
    replica = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(replica, DAY, instance=instance).success
    assert "already landed" in retry_request_for(instance, DEFAULT_DATE).skip_message
    assert "not a B3 trading session" in retry_request_for(instance, date(2025, 3, 4)).skip_message


def _freshness(tmp_path, instance, when: datetime) -> bool:
    (checks,) = landing_freshness_checks
    job = dg.define_asset_job("fresh", selection=dg.AssetSelection.all_asset_checks())
    landing = dg.AssetSpec(LANDING, partitions_def=trading_day_partitions)
    defs = dg.Definitions(assets=[landing], asset_checks=[checks], jobs=[job])
    with freeze_time(when):
        result = defs.resolve_job_def("fresh").execute_in_process(instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation.passed


def test_landing_freshness_expects_the_trading_day_by_0930_and_exempts_holidays(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    for key in ("2025-02-28", "2025-03-05"):  # 03-03 and 03-04 are Carnival
        instance.report_runless_asset_event(dg.AssetMaterialization(LANDING, partition=key))
    # Carnival Tuesday 10:00: the latest session (Friday 02-28) has landed: fresh.
    assert _freshness(tmp_path, instance, datetime(2025, 3, 4, 10, 0, tzinfo=SP))
    # Ash Wednesday 10:00 with 03-05 landed: fresh; Thursday 10:00 without 03-06: stale.
    assert _freshness(tmp_path, instance, datetime(2025, 3, 5, 10, 0, tzinfo=SP))
    assert not _freshness(tmp_path, instance, datetime(2025, 3, 6, 10, 0, tzinfo=SP))


def test_the_gap_audit_lists_each_missing_trading_day_with_its_fix(tmp_path, b3_replica):
    archived = [date(2025, 3, 5), date(2025, 3, 6), date(2025, 3, 7)]
    landed = [date(2025, 3, 5), date(2025, 3, 7)]
    assert missing_days(archived, landed, date(2025, 3, 10)) == [
        date(2025, 3, 6),
        date(2025, 3, 10),
    ]
    assert missing_days([], landed, date(2025, 3, 10)) == []
    assert "import-csv IBOVDia_06-03-25.csv" in fix_for(date(2025, 3, 6), date(2025, 3, 10))
    assert "materialize today" in fix_for(date(2025, 3, 10), date(2025, 3, 10))
    # The asset in the UI: a WARN check that fails, naming the days.
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(platform, DAY).success
    result = platform.defs.resolve_job_def("landing_gap_audit").execute_in_process()
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.step_materialization_data.materialization.metadata
    assert mat.asset_key == AUDIT and meta["missing_days"].value > 0  # every day since 03-05
    assert "2025-03-06" in meta["missing"].value and "import-csv" in meta["missing"].value
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_b3_retries_back_off_exponentially_with_jitter():
    """20, 40, 80 s on average before attempts 2, 3 and 4, each within ± 50 %."""
    assert [retry_delay_s(n, rng=lambda: 0.5) for n in (1, 2, 3)] == [20.0, 40.0, 80.0]
    assert retry_delay_s(1, rng=lambda: 0.0) == 10.0
    assert retry_delay_s(3, rng=lambda: 1.0) == 120.0
    assert B3_RETRY.max_retries == 3 and not B3_RETRY.delay  # the wait is the step's own
