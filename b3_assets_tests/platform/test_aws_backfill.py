"""A backfill on AWS starts O(1) Glue runs; the daily path stays one event, one run (moto)."""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg
import pytest

import glue.published as glue_published
from b3_assets.keys import REFINED
from b3_assets.platform.local_aws import object_created_event
from b3_assets.platform.resources import MAX_DATES_PER_RUN
from b3_assets.portfolio.collect import csv_payload
from b3_assets.portfolio.sensors import RANGE_END, RANGE_START
from b3_assets.sessions import trading_days
from b3_assets.storage.archive import RawArchive
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.aws import LambdaContext, aws_settings, create_stack_in
from b3_assets_tests.support.chain import (
    DAILY_WITHOUT_REPORTS,
    Platform,
    failure_message,
    materialize,
    materialize_range,
    sensor_tick,
)
from b3_assets_tests.support.moto_server import MotoServer
from glue.layout import LANDING_BATCH_TAG, landing_key
from glue.transform import publication_inputs
from lambda_handler import handler as lh

DAYS = trading_days(date(2025, 2, 3), date(2025, 3, 21))[:30]


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_30_date_backfill_starts_one_glue_run_and_the_sensor_reports_every_date(
    aws: MotoServer, tmp_path, monkeypatch
) -> None:
    assert len(DAYS) == 30 and MAX_DATES_PER_RUN >= 30
    settings = aws_settings(aws)
    stack = create_stack_in(aws, settings)
    platform = Platform(settings)
    archive = RawArchive(platform.lake)
    for path in write_csvs(tmp_path / "csv", DAYS):  # history imported, as users bootstrap it
        payload = csv_payload(path)
        archive.store(payload, payload.portfolio().data_carteira)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(platform, instance, DAYS[0], DAYS[-1], DAILY_WITHOUT_REPORTS)
    assert result.success, failure_message(result)
    s3, glue = aws.client("s3"), aws.client("glue")
    # Each landing file of the backfill carries the batch tag...
    tags = s3.get_object_tagging(Bucket=settings.bucket, Key=landing_key(DAYS[0]))["TagSet"]
    assert [t["Key"] for t in tags] == [LANDING_BATCH_TAG]
    # ...so the Lambda, given each file's event, starts nothing,
    env = stack.properties("LandingTriggerFunction")["Environment"]["Variables"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for day in DAYS:
        out = lh.handler(object_created_event(settings.bucket, landing_key(day)), LambdaContext())
        assert out["status"] == "ignored" and "backfill" in out["reason"]
    # ...and Dagster started one run for the whole batch.
    (run,) = glue.get_job_runs(JobName=settings.glue_job_name)["JobRuns"]
    assert run["Arguments"]["--data_carteiras"] == ",".join(d.isoformat() for d in DAYS)
    assert run["Arguments"]["--bucket"] == settings.bucket
    # Glue had not run when the backfill's refined step looked: it recorded nothing...
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == REFINED]
    # ...and the sensor asks for one follow-up run over every date of that one Glue run.
    tick = sensor_tick(platform, instance)
    assert not tick.asset_events
    (request,) = tick.run_requests
    assert request.job_name == "refined_followup"
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (
        DAYS[0].isoformat(),
        DAYS[-1].isoformat(),
    )


def test_the_daily_date_is_left_to_its_event(aws: MotoServer, tmp_path, monkeypatch) -> None:
    settings = aws_settings(aws)
    stack = create_stack_in(aws, settings)
    platform = Platform(settings)
    (path,) = write_csvs(tmp_path / "csv", [DAYS[0]])
    payload = csv_payload(path)
    RawArchive(platform.lake).store(payload, DAYS[0])
    assert materialize(platform, DAYS[0].isoformat(), asset_selection=DAILY_WITHOUT_REPORTS).success
    glue, s3 = aws.client("glue"), aws.client("s3")
    assert glue.get_job_runs(JobName=settings.glue_job_name)["JobRuns"] == []  # Dagster: none
    key = landing_key(DAYS[0])
    assert s3.get_object_tagging(Bucket=settings.bucket, Key=key)["TagSet"] == []
    for name, value in stack.properties("LandingTriggerFunction")["Environment"][
        "Variables"
    ].items():
        monkeypatch.setenv(name, value)
    out = lh.handler(object_created_event(settings.bucket, key), LambdaContext())
    assert out["status"] == "started" and out["data_carteira"] == DAYS[0].isoformat()


def test_a_gap_filled_on_aws_refines_the_next_date_again(aws: MotoServer, tmp_path) -> None:
    """03-18 and 03-20 landed, then 03-19: its event refines it, and Dagster starts a run
    for 03-20, whose previous portfolio is now 03-19."""
    days = [date(2025, 3, 18), date(2025, 3, 20), date(2025, 3, 19)]
    platform, settings = archived_platform(aws, tmp_path, days)
    glue = aws.client("glue")
    s3 = aws.client("s3")
    for day in days:
        assert materialize(platform, day.isoformat(), asset_selection=DAILY_WITHOUT_REPORTS).success
        event_run_publishes(s3, settings.bucket, day)
    runs = glue.get_job_runs(JobName=settings.glue_job_name)["JobRuns"]
    # Only the gap fill had a later landing date: one run, for 03-20 (the events refine the
    # written dates themselves).
    assert [r["Arguments"]["--data_carteiras"] for r in runs] == ["2025-03-20"]


def event_run_publishes(s3: Any, bucket: str, day: date) -> None:
    """What the Glue run a landing event starts leaves for reconciliation: the date's
    ``_current.json``, naming the landing files as they are now (the refined files
    themselves do not matter here)."""
    landing = glue_published.list_landing(s3, bucket)
    record = {"run_id": f"jr_event_{day:%Y%m%d}", **publication_inputs(landing, day, "etag")}
    glue_published.write_published_record(s3, bucket, day, record)


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_events_lost_to_the_dlq_are_found_and_refined(aws: MotoServer, tmp_path) -> None:
    """Three dates land; the events of the last two never reach Glue (the Lambda failed
    them into the dead-letter queue). The next landing run refines the one before it; the
    reconciliation sensor finds the last one, and its run starts one Glue run for it. Once
    that date is published the sensor has nothing left to do."""
    days = [date(2025, 3, 18), date(2025, 3, 19), date(2025, 3, 20)]
    platform, settings = archived_platform(aws, tmp_path, days)
    s3, glue = aws.client("s3"), aws.client("glue")

    def daily(day: date) -> bool:
        return materialize(platform, day.isoformat(), asset_selection=DAILY_WITHOUT_REPORTS).success

    assert daily(days[0])
    event_run_publishes(s3, settings.bucket, days[0])
    for day in days[1:]:  # their events are lost
        assert daily(day)
    assert glue_published.stale_dates(s3, settings.bucket) == days[1:]
    (run,) = glue.get_job_runs(JobName=settings.glue_job_name)["JobRuns"]
    assert run["Arguments"]["--data_carteiras"] == days[1].isoformat()  # by 03-20's run
    event_run_publishes(s3, settings.bucket, days[1])

    instance = dg.DagsterInstance.ephemeral()
    (request,) = sensor_tick(platform, instance, name="refined_reconciliation").run_requests
    reconcile = platform.defs.resolve_job_def("reconcile_refined")
    assert reconcile.execute_in_process(run_config=request.run_config, instance=instance).success
    runs = glue.get_job_runs(JobName=settings.glue_job_name)["JobRuns"]
    assert sorted(r["Arguments"]["--data_carteiras"] for r in runs) == [
        d.isoformat() for d in days[1:]
    ]
    event_run_publishes(s3, settings.bucket, days[2])
    tick = sensor_tick(platform, instance, name="refined_reconciliation")
    assert not tick.run_requests and "current" in tick.skip_message

    # A backfill over the same bytes (say, after a change to the transform) still refines
    # every date it wrote: nothing is stale, but the batch asked for them.
    result = materialize_range(platform, instance, days[0], days[-1], DAILY_WITHOUT_REPORTS)
    assert result.success, failure_message(result)
    newest = max(
        glue.get_job_runs(JobName=settings.glue_job_name)["JobRuns"], key=lambda r: r["StartedOn"]
    )
    assert newest["Arguments"]["--data_carteiras"] == ",".join(d.isoformat() for d in days)


def archived_platform(aws: MotoServer, tmp_path: Any, days: list[date]) -> tuple[Platform, Any]:
    """A stack on moto and a platform on it, with ``days`` in the raw archive (imported
    CSVs, as users bootstrap history): landing runs need no B3."""
    settings = aws_settings(aws)
    create_stack_in(aws, settings)
    platform = Platform(settings)
    archive = RawArchive(platform.lake)
    for path in write_csvs(tmp_path / "csv", days):
        payload = csv_payload(path)
        archive.store(payload, payload.portfolio().data_carteira)
    return platform, settings
