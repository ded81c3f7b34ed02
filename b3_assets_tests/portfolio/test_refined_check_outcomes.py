"""The refined checks' verdicts (b3_assets/portfolio/checks.py), directly on their inputs: the
latest Glue run of a date (``glue_job_run_succeeded``) and the previous date the refined rows carry
(``previous_date_matches_landing``). The Dagster wiring around them is tested in
test_day2_inprocess.py and test_local_chain.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from b3_assets.platform.glue_runs import finished_run
from b3_assets.portfolio.checks import glue_run_outcome, previous_date_outcome
from glue.outcome import batch_failure

DAY, OTHER = date(2025, 3, 6), date(2025, 3, 7)


def _run(state: str, dates: list[date], error: str | None = None) -> Any:
    record = {"Id": "jr_1", "JobRunState": state, "StartedOn": datetime(2025, 3, 7, tzinfo=UTC),
              "ExecutionTime": 41, "Arguments": {"--data_carteiras": ",".join(map(str, dates))}}
    if error is not None:
        record["ErrorMessage"] = error
    return finished_run(record)


def test_no_finished_run_fails() -> None:
    assert glue_run_outcome(None, DAY) == (False, {"state": "no run"})


def test_a_run_that_succeeded_passes() -> None:
    assert glue_run_outcome(_run("SUCCEEDED", [DAY]), DAY) == (True, {
        "glue_job_run_id": "jr_1", "state": "SUCCEEDED", "duration_s": 41.0,
        "this_date": "published"})  # fmt: skip


def test_a_failed_run_fails_with_glues_error() -> None:
    passed, meta = glue_run_outcome(_run("FAILED", [DAY], "ValueError: no rows"), DAY)
    assert not passed
    assert meta["this_date"] == "failed" and meta["error_message"] == "ValueError: no rows"


def test_a_failed_run_of_many_dates_passes_the_dates_it_published() -> None:
    run = _run("FAILED", [DAY, OTHER], batch_failure({str(OTHER): "ValueError: no rows"}, 2))
    published, failed = glue_run_outcome(run, DAY), glue_run_outcome(run, OTHER)
    assert published[0] and published[1]["this_date"] == "published"
    assert not failed[0] and failed[1]["this_date"] == "failed"
    assert published[1]["error_message"] == failed[1]["error_message"] == run.error_message


def test_a_run_stopped_before_its_batch_message_passes_no_date() -> None:
    run = _run("STOPPED", [DAY, OTHER], "Job run stopped by user")
    assert [glue_run_outcome(run, d)[0] for d in (DAY, OTHER)] == [False, False]


def _rows(*anteriores: date | None) -> list[dict[str, Any]]:
    return [{"data_carteira": OTHER, "acao": f"AAA{i}", "data_carteira_anterior": a}
            for i, a in enumerate(anteriores)]  # fmt: skip


def test_every_row_names_the_previous_landing_date() -> None:
    assert previous_date_outcome(_rows(DAY, DAY), DAY) == (
        True, {"data_carteira_anterior": "2025-03-06", "expected": "2025-03-06"})


def test_the_first_date_has_no_previous_date() -> None:
    assert previous_date_outcome(_rows(None), None) == (
        True, {"data_carteira_anterior": "None", "expected": "None"})
    assert previous_date_outcome(_rows(DAY), None)[0] is False


def test_another_previous_date_fails() -> None:
    assert previous_date_outcome(_rows(date(2025, 3, 5)), DAY) == (
        False, {"data_carteira_anterior": "2025-03-05", "expected": "2025-03-06"})
    assert previous_date_outcome(_rows(None), DAY)[0] is False


def test_rows_that_disagree_fail_naming_each_date() -> None:
    assert previous_date_outcome(_rows(DAY, date(2025, 3, 5)), DAY) == (
        False, {"data_carteira_anterior": "2025-03-05, 2025-03-06", "expected": "2025-03-06"})


def test_no_refined_rows_fail() -> None:
    assert previous_date_outcome([], DAY) == (
        False, {"data_carteira_anterior": "no rows", "expected": "2025-03-06"})
    assert previous_date_outcome([], None)[0] is False
