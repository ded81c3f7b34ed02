"""The AWS production path end to end, on moto's server (127.0.0.1) and the B3 replica.

B3_ENV=aws resources (S3Lake, boto3 Glue, AthenaCatalog) → raw + landing in the bucket → the
EventBridge "Object Created" event S3 emits for the landing key, delivered to the Lambda entry
point (moto cannot run Lambdas) → a Glue job run of the stack's job, with its DefaultArguments →
the sensor reports the refined date once, with run id, duration, DPU-seconds and the console
link. moto does not run Glue scripts, so the test plays the Glue worker with the local runner
(same transform) and queues the Athena rows the sensor's checks read. Failed runs (moto's
runs always succeed) come from a Stubber. Nothing here talks to AWS.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from b3_assets.keys import REFINED
from b3_assets.platform.catalog import AthenaCatalog
from b3_assets.platform.glue_runs import GlueJobWatcher, WatchCursor, finished_run
from b3_assets.platform.local_aws import object_created_event
from b3_assets.portfolio.checks import REFINED_CHECKS, run_metadata
from b3_assets.portfolio.sensors import RANGE_START, followup_requests
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import S3Lake
from b3_assets.storage.landing import landing_key
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.support.aws import (
    LambdaContext,
    aws_settings,
    create_stack_in,
    play_glue_worker,
)
from b3_assets_tests.support.chain import (
    DAILY_WITHOUT_REPORTS,
    Platform,
    failure_message,
    materialize,
    run_followups,
    sensor_tick,
)
from b3_assets_tests.support.moto_server import MotoServer, athena_result
from glue.outcome import batch_failure
from lambda_handler import handler as lh

DAY = DEFAULT_DATE.isoformat()


# --------------------------------------------------------------------------- the whole path


def test_landing_in_the_bucket_starts_glue_and_the_sensor_reports_it(
    aws: MotoServer, b3_replica: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = aws_settings(aws, b3_replica.base_url)
    stack = create_stack_in(aws, settings)
    platform = Platform(settings)
    assert isinstance(platform.lake, S3Lake) and isinstance(platform.catalog, AthenaCatalog)
    s3, glue = aws.client("s3"), aws.client("glue")
    bucket, job = settings.bucket, settings.glue_job_name

    # 1. The daily job into the bucket, but for its reports (they query Athena, which moto
    # answers with queued results only; test_athena_catalog covers the reports' SQL there).
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(platform, DAY, instance=instance, asset_selection=DAILY_WITHOUT_REPORTS)
    assert result.success, failure_message(result)
    # Glue has not run yet: the refined step records nothing (the sensor's follow-up will).
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == REFINED]
    key = landing_key(DEFAULT_DATE)
    assert key == f"landing/ibov/dt={DAY}/ibov.parquet"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    landing = pq.read_table(io.BytesIO(body), use_threads=False)
    assert landing.schema.equals(LANDING_SCHEMA)
    codes = sorted(c.codigo for c in b3_replica.portfolio.constituents())
    assert landing.column("codigo").to_pylist() == codes
    raw_keys = platform.lake.list_keys(f"raw/ibov/dt={DAY}/")
    assert any(re.fullmatch(rf"raw/ibov/dt={DAY}/[^/]+/manifest\.json", k) for k in raw_keys)
    (entry,) = RawArchive(platform.lake).entries(DEFAULT_DATE)
    assert entry.manifest["source"] == "api"
    assert not (tmp_path / "data").exists()  # B3_ENV=aws writes nothing on the machine
    # Nothing starts Glue but the event: no run yet.
    assert glue.get_job_runs(JobName=job)["JobRuns"] == []

    # 2. The event S3 emits for that key, delivered to the Lambda entry point.
    lambda_env = stack.properties("LandingTriggerFunction")["Environment"]["Variables"]
    for name, value in lambda_env.items():
        monkeypatch.setenv(name, value)
    out = lh.handler(object_created_event(bucket, key), LambdaContext())
    assert out["status"] == "started" and out["data_carteira"] == DAY
    assert lh.glue_client().meta.endpoint_url == aws.endpoint  # moto, never AWS

    # 3. The job run in Glue, with the stack's job defaults and the date's arguments.
    (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
    assert run["Id"] == out["job_run_id"]
    args = run["Arguments"]
    assert {"--data_carteira": DAY, "--bucket": bucket, "--database": "default"}.items() <= (
        args.items()
    )
    assert args["--extra-py-files"] == "s3://b3-artifacts/b3/glue.zip"
    assert args["--job-bookmark-option"] == "job-bookmark-disable"
    assert run["WorkerType"] == "G.1X" and run["NumberOfWorkers"] == 2

    # 4. The worker's output, and the rows Athena gives the sensor's refined checks.
    refined_rows = play_glue_worker(s3, bucket, DEFAULT_DATE, tmp_path / "glue-worker", run["Id"])
    issuers = sorted({c[:4] for c in codes})
    assert [acao for acao, _ in refined_rows] == issuers

    # 5. The sensor requests the run that records the refined date once (the checks, on
    # Athena, in the same run), with what an operator needs to find the Glue run.
    first = sensor_tick(platform, instance, None)
    assert not first.asset_events  # recorded by a run, never by the tick
    (request,) = first.run_requests
    assert request.job_name == "refined_followup"
    columns = [("data_carteira", "varchar"), ("acao", "varchar"),
               ("participacao_total_pct", "decimal"), ("data_carteira_anterior", "date")]
    aws.queue_athena_results(
        [athena_result(columns, [(DAY, acao, pct, None) for acao, pct in refined_rows])]
    )
    (followup,) = run_followups(platform, instance, first, asset_selection=[REFINED])
    assert followup.success, failure_message(followup)
    (mat,) = [
        e.event_specific_data.materialization
        for e in followup.get_asset_materialization_events()
    ]
    assert (mat.asset_key, mat.partition) == (REFINED, DAY)
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["glue_job_run_id"] == run["Id"]
    assert meta["state"] == "SUCCEEDED"
    assert meta["duration_s"] == run["ExecutionTime"]  # seconds, from Glue
    # Standard G.1X job: 1 DPU per worker x 2 workers x execution time.
    assert meta["dpu_seconds"] == 1 * 2 * run["ExecutionTime"]
    assert meta["glue_console"] == (
        "https://us-east-1.console.aws.amazon.com/gluestudio/home?region=us-east-1"
        f"#/job/{job}/run/{run['Id']}"
    )
    assert meta["lake_uri"] == f"s3://{bucket}/refined/DataCarteira={DAY}/"
    outcomes = {e.check_name: e.passed for e in followup.get_asset_check_evaluations()}
    assert outcomes == dict.fromkeys(REFINED_CHECKS, True)
    athena = aws.client("athena")
    (qid,) = athena.list_query_executions(WorkGroup=settings.athena_workgroup)["QueryExecutionIds"]
    sent = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    assert sent["ExecutionParameters"] == [f"'{DAY}'", f"'{DAY}'"] and DAY not in sent["Query"]

    second = sensor_tick(platform, instance, first.cursor)
    assert not second.asset_events and not second.run_requests
    # Had the cursor been lost, the Glue run is recorded already: nothing requested either.
    assert not sensor_tick(platform, instance, None).run_requests


def test_failed_glue_run_is_recorded_and_its_check_fails_with_glues_error(
    aws: MotoServer,
) -> None:
    """moto's runs always succeed: GetJobRuns is stubbed with what Glue returns for a failure."""
    settings = aws_settings(aws)
    started = datetime(2025, 3, 6, 11, 0, 5, tzinfo=UTC)
    error = (
        "AnalysisException: [PATH_NOT_FOUND] Path does not exist: "
        f"s3://{settings.bucket}/landing/ibov/dt=2025-03-06/ibov.parquet."
    )
    failed_run = {
        "Id": "jr_" + "f" * 64,
        "Attempt": 0,
        "JobName": settings.glue_job_name,
        "StartedOn": started,
        "LastModifiedOn": started + timedelta(seconds=58),
        "CompletedOn": started + timedelta(seconds=58),
        "JobRunState": "FAILED",
        "ErrorMessage": error,
        "Arguments": {"--data_carteira": "2025-03-06", "--bucket": settings.bucket},
        "ExecutionTime": 41,
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
        "GlueVersion": "5.0",
    }
    glue = boto3.client("glue", region_name="us-east-1")
    watcher = GlueJobWatcher(glue, settings.glue_job_name)
    with Stubber(glue) as stub:
        stub.add_response("get_job_runs", {"JobRuns": [failed_run]})
        stub.add_response("get_job_runs", {"JobRuns": [failed_run]})
        runs, cursor = watcher.poll(WatchCursor(), 50)
        again, _ = watcher.poll(cursor, 50)
        stub.assert_no_pending_responses()
    (run,) = runs
    assert again == []
    assert not run.succeeded and run.error_message == error
    assert run.dates == (date(2025, 3, 6),)
    (request,) = followup_requests(runs)
    assert request.job_name == "refined_checks"  # no report for a date Glue did not refine
    assert run_metadata(run)["error_message"] == error


def test_a_failed_batch_run_still_counts_the_dates_it_published() -> None:
    """The Glue job's batch failure names the dates it left; the sensor counts the others as
    refined (a one-date failure, or a message cut before the list, counts none)."""
    days = ["2025-03-17", "2025-03-18", "2025-03-19"]
    started = datetime(2025, 3, 20, tzinfo=UTC)

    def record(error: str) -> dict[str, Any]:
        return {"Id": "jr_1", "JobRunState": "FAILED", "StartedOn": started,
                "Arguments": {"--data_carteiras": ",".join(days)}, "ErrorMessage": error}

    message = batch_failure({days[1]: "ValueError: no rows " + "x" * 5000}, 3)
    run = finished_run(record(message))
    assert run.refined_dates == (date(2025, 3, 17), date(2025, 3, 19))
    requests = [
        (r.job_name, r.tags[RANGE_START]) for r in followup_requests([run])
    ]
    assert requests == [
        ("refined_followup", days[0]),
        ("refined_followup", days[2]),
        ("refined_checks", days[1]),
    ]
    # Glue truncates long messages: the list of failed dates comes before the errors, so a cut
    # message keeps it (glue/outcome.py).
    assert finished_run(record(message[:200])).refined_dates == run.refined_dates
    assert finished_run(record(message[:60])).refined_dates == ()  # the list cut: none
    assert finished_run(record("ValueError: no rows")).refined_dates == ()


def test_watcher_pages_through_get_job_runs(aws: MotoServer) -> None:
    """More runs than one GetJobRuns page (200): every one is reported, once."""
    settings = aws_settings(aws)
    create_stack_in(aws, settings)
    glue = aws.client("glue")
    days = [date(2025, 1, 2) + timedelta(days=i) for i in range(205)]
    for day in days:
        glue.start_job_run(
            JobName=settings.glue_job_name, Arguments={"--data_carteira": day.isoformat()}
        )
    calls: list[dict[str, Any]] = []
    glue.meta.events.register(
        "provide-client-params.glue.GetJobRuns", lambda params, **_: calls.append(dict(params))
    )
    watcher = GlueJobWatcher(glue, settings.glue_job_name)
    fresh, cursor = watcher.poll(WatchCursor(), 1000)
    assert len(calls) == 2
    assert calls[0] == {"JobName": settings.glue_job_name, "MaxResults": 200}
    assert calls[1]["NextToken"] and calls[1]["MaxResults"] == 200
    assert sorted(d for r in fresh for d in r.dates) == days
    assert len({r.run_id for r in fresh}) == 205 and all(r.succeeded for r in fresh)
    again, _ = watcher.poll(WatchCursor.from_json(cursor.to_json()), 1000)
    assert again == []
