"""Dates given up after repeated failed Glue runs (glue/attempts.py) are named by the hourly
``refined_reconciliation`` sensor, with what to do, instead of being skipped in silence."""

from __future__ import annotations

from datetime import date

import dagster as dg

from b3_assets.platform.resources import GlueJobResource
from b3_assets.portfolio.reconcile import given_up_message, refined_reconciliation

BAD = date(2025, 3, 5)  # a Wednesday session
STALE = date(2025, 3, 6)
WHY = "3 failed Glue runs since the landing file was written; last: ValueError: bad codigo"


class GivenUpJob(GlueJobResource):
    """A Glue job whose lake has one given-up date and, optionally, one stale date due."""

    due: list[str] = []

    def pending_refines(self) -> list[date]:
        return [date.fromisoformat(d) for d in self.due]

    def given_up_refines(self) -> dict[date, str]:
        return {BAD: WHY}


def test_the_message_names_each_date_its_error_and_what_to_do() -> None:
    assert given_up_message({}) is None
    text = given_up_message({STALE: "x", BAD: WHY})
    assert text is not None
    assert text.index("2025-03-05") < text.index("2025-03-06")  # oldest first
    assert f"2025-03-05: {WHY}" in text
    assert "landing file" in text and "re-materialize" in text and "landing/ibov_portfolio" in text


def _tick(job: GivenUpJob) -> dg.SensorResult:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"glue_job": job})
        result = refined_reconciliation(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_tick_with_nothing_due_says_which_dates_are_given_up() -> None:
    result = _tick(GivenUpJob(job_name="b3-etl-soma-acao"))
    assert not result.run_requests
    assert result.skip_reason is not None
    assert "2025-03-05" in str(result.skip_reason) and "re-materialize" in str(result.skip_reason)


def test_given_up_dates_are_never_requested_but_the_due_ones_are() -> None:
    result = _tick(GivenUpJob(job_name="b3-etl-soma-acao", due=[STALE.isoformat()]))
    (request,) = result.run_requests or []
    dates = request.run_config["ops"]["refine_stale_dates"]["config"]["dates"]
    assert dates == [STALE.isoformat()]
