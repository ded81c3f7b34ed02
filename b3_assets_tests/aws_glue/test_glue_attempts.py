"""No cost loops (issue #20): a permanently failing date starts a bounded number of Glue runs,
a date in flight is never started again, new landing bytes start the count again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from glue.attempts import RetryPolicy, plan_refines
from glue.storage import LandingObject

DAY = date(2025, 3, 5)
T0 = datetime(2025, 3, 5, 20, tzinfo=UTC)


def _run(n: int, state: str, started: datetime, day: date = DAY) -> dict[str, Any]:
    return {
        "Id": f"jr_{n}", "JobRunState": state, "StartedOn": started,
        "CompletedOn": started + timedelta(minutes=2) if state != "RUNNING" else None,
        "Arguments": {"--data_carteiras": day.isoformat()}, "ErrorMessage": "boom",
    }  # fmt: skip


def test_a_permanently_failing_date_starts_a_bounded_number_of_runs() -> None:
    """A week of hourly reconciliation ticks over a date whose every run fails."""
    landed = {DAY: LandingObject("etag-1", T0)}
    runs: list[dict[str, Any]] = []
    for hour in range(7 * 24):
        now = T0 + timedelta(hours=hour, minutes=5)
        plan = plan_refines([DAY], landed, runs, now)
        if DAY in plan.due:
            runs.append(_run(len(runs), "FAILED", now))
    assert len(runs) == RetryPolicy().max_attempts == 3  # was 168: one a tick
    gaps = [b["StartedOn"] - a["StartedOn"] for a, b in zip(runs, runs[1:], strict=False)]
    assert gaps == [timedelta(hours=2), timedelta(hours=3)]  # 1 h, then 2 h after each end
    plan = plan_refines([DAY], landed, runs, T0 + timedelta(days=8))
    assert DAY in plan.given_up and "3 Glue runs failed" in plan.given_up[DAY]
    assert "etag-1" in plan.given_up[DAY] and "boom" in plan.given_up[DAY]
    # New landing bytes start the count again.
    rewritten = {DAY: LandingObject("etag-2", T0 + timedelta(days=8))}
    assert plan_refines([DAY], rewritten, runs, T0 + timedelta(days=8, minutes=1)).due == [DAY]


def test_a_date_in_flight_is_not_started_again() -> None:
    landed = {DAY: LandingObject("e", T0)}
    for state in ("WAITING", "RUNNING", "STARTING", "STOPPING"):
        plan = plan_refines([DAY], landed, [_run(1, state, T0)], T0 + timedelta(minutes=1))
        assert (plan.due, plan.in_flight) == ([], [DAY]), state


def test_a_batch_run_counts_only_for_the_dates_it_failed() -> None:
    other = date(2025, 3, 6)
    batch = _run(1, "FAILED", T0)
    batch["Arguments"] = {"--data_carteiras": f"{DAY},{other}"}
    batch["ErrorMessage"] = (
        '1 of 2 date(s) failed, each left as it was (the others were published): '
        '["2025-03-06"]; errors: {}'
    )
    landed = {DAY: LandingObject("a", T0 - timedelta(hours=1)), other: LandingObject("b", T0)}
    plan = plan_refines([DAY, other], landed, [batch], T0 + timedelta(minutes=10))
    assert plan.due == [DAY] and other in plan.backing_off


def test_a_date_given_up_for_its_previous_dates_file_is_due_once_that_file_is_fixed() -> None:
    """A corrupt previous landing file fails the next date's refine too (it reads both): the
    next date is given up with it, and re-landing the previous date frees both."""
    before = date(2025, 2, 28)  # the session before Carnival (DAY is Ash Wednesday)
    landed = {before: LandingObject("bad", T0 - timedelta(hours=1)), DAY: LandingObject("good", T0)}
    runs = [_run(n, "FAILED", T0 + timedelta(hours=4 * n), d)
            for n in range(3) for d in (before, DAY)]  # fmt: skip
    later = T0 + timedelta(days=1)
    plan = plan_refines([before, DAY], landed, runs, later)
    assert set(plan.given_up) == {before, DAY}
    fixed = {**landed, before: LandingObject("fixed", later)}
    assert plan_refines([before, DAY], fixed, runs, later + timedelta(minutes=1)).due == [
        before, DAY]  # fmt: skip
    # A holiday's stray file is no previous date (the refine ignores it too).
    stray = {**landed, date(2025, 3, 3): LandingObject("x", later)}  # Carnival Monday
    assert DAY in plan_refines([DAY], stray, runs, later).given_up
