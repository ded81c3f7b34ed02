"""A multi-date refine run's failure message (glue/outcome.py), directly: what a user reads in
Glue's ErrorMessage, and the failed dates the sensor and the attempt planner read back from it
(the others count as published)."""

from __future__ import annotations

from datetime import date

import pytest

from glue.outcome import batch_failure, failed_in_batch

ERRORS = {"2025-03-18": "ValueError: no rows", "2025-03-06": "KeyError: 'codigo'"}


def test_the_message_names_the_failed_dates_apart_from_the_published_ones() -> None:
    assert batch_failure(ERRORS, 5) == (
        "2 of 5 date(s) failed, each left as it was (the others were published); "
        'failed dates: ["2025-03-06", "2025-03-18"]; '
        'errors: {"2025-03-18": "ValueError: no rows", "2025-03-06": "KeyError: \'codigo\'"}'
    )


def test_the_failed_dates_are_read_back() -> None:
    assert failed_in_batch(batch_failure(ERRORS, 5)) == {date(2025, 3, 6), date(2025, 3, 18)}
    # Every date published, the run failed for another reason (the serving copy): none failed.
    assert failed_in_batch(batch_failure({}, 3) + "; the serving copy …") == frozenset()


def test_a_message_cut_after_the_list_still_names_the_dates() -> None:
    message = batch_failure({"2025-03-18": "ValueError: " + "x" * 5000}, 3)
    cut = message.index("; errors:")
    assert failed_in_batch(message[:cut]) == {date(2025, 3, 18)}
    assert failed_in_batch(message[: cut - 1]) is None  # the list itself cut: unknown


def test_the_wording_of_runs_before_2026_12_is_still_read() -> None:
    old = ('1 of 2 date(s) failed, each left as it was (the others were published): '
           '["2025-03-06"]; errors: {}')  # fmt: skip
    assert failed_in_batch(old) == {date(2025, 3, 6)}


@pytest.mark.parametrize(
    "message",
    [
        None,
        "",
        "ValueError: no rows for 2025-03-06",  # a one-date run's error
        "2 of 5 date(s) failed, each left as it was (the others were published); failed dates: "
        '["2025-13-45"]; errors: {}',  # not a date
        "2 of 5 date(s) failed, each left as it was (the others were published); failed dates: "
        "[2025-03-06]; errors: {}",  # not JSON
    ],
)
def test_anything_else_names_no_date(message: str | None) -> None:
    assert failed_in_batch(message) is None
