"""Operation over time: a second attempt after a failed morning, landing's freshness, the gap
audit that lists every missed trading day with its fix."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from b3_assets.keys import AUDIT, LANDING
from b3_assets.partitions import trading_day_partitions
from b3_assets.portfolio.assets import B3_RETRY, retry_delay_s
from b3_assets.portfolio.audit import fix_for, missing_days
from b3_assets.portfolio.schedules import (
    FRESHNESS_DEADLINE,
    freshness_request,
    landing_freshness_checks,
    retry_request_for,
)
from b3_assets.sessions import session_due
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.support.chain import CLOSED_URL, local_platform, materialize

pytestmark = pytest.mark.any_day  # the freshness check, the audit and the retry read the clock

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
    assert "not a B3 session" in retry_request_for(instance, date(2025, 3, 4)).skip_message


@pytest.mark.parametrize(
    ("when", "due"),
    [
        # Carnival Tuesday 10:00 and Monday 10:00: the latest session is Friday 02-28.
        (datetime(2025, 3, 4, 10, 0, tzinfo=SP), date(2025, 2, 28)),
        (datetime(2025, 3, 3, 10, 0, tzinfo=SP), date(2025, 2, 28)),
        # Ash Wednesday: before 09:30 still Friday's, after it the day's own.
        (datetime(2025, 3, 5, 9, 29, tzinfo=SP), date(2025, 2, 28)),
        (datetime(2025, 3, 5, 9, 30, tzinfo=SP), date(2025, 3, 5)),
        # A Saturday and a Sunday: Friday's (Monday's partition exists early, it is not late).
        (datetime(2026, 12, 5, 10, 0, tzinfo=SP), date(2026, 12, 4)),
        (datetime(2026, 12, 6, 23, 0, tzinfo=SP), date(2026, 12, 4)),
        # Monday 08:29 São Paulo (11:29 UTC): still Friday's.
        (datetime(2026, 12, 7, 11, 29, tzinfo=ZoneInfo("UTC")), date(2026, 12, 4)),
        # Christmas Eve and Christmas (Thu, Fri holidays): Wednesday 12-23's.
        (datetime(2026, 12, 24, 10, 0, tzinfo=SP), date(2026, 12, 23)),
        (datetime(2026, 12, 25, 12, 0, tzinfo=SP), date(2026, 12, 23)),
    ],
)
def test_landing_freshness_expects_the_latest_session_by_0930(when, due):
    assert session_due(when, FRESHNESS_DEADLINE) == due


def test_the_freshness_check_reads_stored_landing_and_runs_once_per_state():
    instance = dg.DagsterInstance.ephemeral()
    (check,) = landing_freshness_checks
    landing = dg.AssetSpec(LANDING, partitions_def=trading_day_partitions)
    job = dg.define_asset_job("fresh", selection=dg.AssetSelection.all_asset_checks())
    defs = dg.Definitions(assets=[landing], asset_checks=[check], jobs=[job])

    def evaluate() -> dg.AssetCheckEvaluation:
        result = defs.resolve_job_def("fresh").execute_in_process(instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    # Whatever today is: the session due now has not landed, then it has.
    now = datetime.now(SP)
    due = session_due(now, FRESHNESS_DEADLINE).isoformat()
    missing = evaluate()
    assert not missing.passed and due in missing.description
    assert "materialize" in missing.description or "import" in missing.description
    assert freshness_request(instance, now).run_key == f"freshness-{due}-missing"
    instance.report_runless_asset_event(dg.AssetMaterialization(LANDING, partition=due))
    assert evaluate().passed
    assert freshness_request(instance, now).run_key == f"freshness-{due}-landed"


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
