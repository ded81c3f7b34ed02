"""Which runs hold the reconciliation (and the sensors' recording) back: only runs that may
write landing or refine, and only within run monitoring's limit (issue #19 item 7).

Before: every run but the refined follow-ups counted (the freshness check every 5 minutes,
marts, reports, the audit, indices, levels), and a killed run held everything for 6 hours while
run monitoring fails it after 45 minutes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

import b3_assets.portfolio.sensors as sensors
from b3_assets.keys import LANDING, RAW
from b3_assets.platform.instance import SECTIONS
from b3_assets.portfolio.sensors import BUSY_RUN_HORIZON, LANDING_WRITER_JOBS, busy_runs
from b3_assets_tests.support.chain import local_platform


@pytest.fixture
def platform(tmp_path):
    return local_platform(tmp_path)


#: Run config a job cannot start without.
CONFIG = {"reconcile_refined": {"ops": {"refine_stale_dates": {"config": {"dates": []}}}}}


def _started(instance, platform, job, **kwargs):
    return instance.create_run_for_job(
        platform.defs.resolve_job_def(job), status=dg.DagsterRunStatus.STARTED,
        run_config=CONFIG.get(job), **kwargs
    )


def test_only_runs_that_write_landing_or_refine_are_busy(platform):
    instance = dg.DagsterInstance.ephemeral()
    jobs = sorted(job.name for job in platform.defs.resolve_all_job_defs())
    assert set(jobs) >= LANDING_WRITER_JOBS  # the names are the definitions' jobs
    for job in jobs:
        _started(instance, platform, job)
    busy = sorted(run.job_name for run in busy_runs(instance))
    assert busy == sorted(LANDING_WRITER_JOBS)
    quiet = set(jobs) - LANDING_WRITER_JOBS
    assert {"landing_freshness", "marts_from_landing", "landing_gap_audit", "daily_b3_indices",
            "b3_index_levels", "refined_followup", "refined_checks"} <= quiet
    # A subset run counts by what it selects: raw alone never lands; landing (the CLI's or
    # the UI's backfill, here of the daily job) does.
    raw_only = _started(instance, platform, "daily_ibov_portfolio", asset_selection={RAW})
    landing = _started(instance, platform, "daily_ibov_portfolio",
                       asset_selection={RAW, LANDING})
    ids = {run.run_id for run in busy_runs(instance)}
    assert landing.run_id in ids and raw_only.run_id not in ids


def test_the_busy_horizon_is_run_monitorings_limit(platform, monkeypatch):
    """A run still STARTED past run monitoring's max runtime (a killed worker the monitor has
    not failed yet, or an instance without monitoring) no longer holds the repair back."""
    max_runtime = int(re.search(r"max_runtime_seconds: (\d+)", SECTIONS["run_monitoring"])[1])
    poll = int(re.search(r"poll_interval_seconds: (\d+)", SECTIONS["run_monitoring"])[1])
    assert BUSY_RUN_HORIZON == timedelta(seconds=max_runtime + poll) < timedelta(hours=1)
    instance = dg.DagsterInstance.ephemeral()
    stuck = _started(instance, platform, "daily_ibov_portfolio")
    assert [r.run_id for r in busy_runs(instance)] == [stuck.run_id]

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz or UTC) + BUSY_RUN_HORIZON + timedelta(minutes=1)

    monkeypatch.setattr(sensors, "datetime", Later)
    assert busy_runs(instance) == []
