"""The payload rules at their boundaries (b3_assets/source/validate.py): each limit is pinned by a
value just inside and one just outside it, so loosening a rule (a ticker's class number of
three digits, a tolerance of 0.015) fails a test instead of letting bad data through."""

from __future__ import annotations

from decimal import Decimal

import pytest

from b3_assets.source.validate import (
    Outcome,
    codes_are_b3_tickers,
    participations_add_up_to_100,
    sector_totals_match,
)


@pytest.mark.parametrize("code", ["PETR4", "VALE3", "SANB11", "BPAC11", "B3SA3", "TAEE11"])
def test_b3_tickers_pass(code: str) -> None:
    assert codes_are_b3_tickers(["VALE3", code]) == Outcome(
        True, {"not_tickers": "none", "count": 0}, ""
    )


@pytest.mark.parametrize(
    "code",
    [
        "PETR400",  # a three-digit class number: B3 uses one or two
        "PETR",  # no class number
        "PET4",  # a three-character root
        "PETRO4",  # a five-letter root
        "4ETR4",  # a root starting with a digit
        "petr4",  # lower case
        "PETR4F",  # the fractional market's code, not a portfolio ticker
        " PETR4",
    ],
)
def test_codes_that_are_not_b3_tickers_are_refused(code: str) -> None:
    outcome = codes_are_b3_tickers(["VALE3", code])
    assert not outcome.passed
    assert outcome.metadata == {"not_tickers": repr(code), "count": 1}
    assert outcome.problem == f"not B3 tickers: {code!r}"


def _parts(off: str) -> list[Decimal]:
    """Three participations adding up to 100 + ``off``."""
    return [Decimal("60.000"), Decimal("30.000"), Decimal("10.000") + Decimal(off)]


@pytest.mark.parametrize(
    "off, passed",
    [("0.000", True), ("0.010", True), ("-0.010", True), ("0.011", False), ("-0.011", False)],
)
def test_participations_add_up_to_100_within_0_01(off: str, passed: bool) -> None:
    outcome = participations_add_up_to_100(_parts(off))
    total = Decimal(100) + Decimal(off)
    assert outcome.passed is passed
    assert outcome.metadata == {"sum_participacao_pct": f"{total:.3f}", "tolerance": "0.01"}
    assert outcome.problem == f"participations add up to {total:.3f}, not to 100 ± 0.01"


@pytest.mark.parametrize(
    "acum, passed", [("40.000", True), ("40.010", True), ("39.990", True), ("40.011", False),
                     ("39.989", False)]  # fmt: skip
)
def test_a_subsector_total_matches_its_rows_within_0_01(acum: str, passed: bool) -> None:
    """B3's ``partAcum`` of a label against the sum of that label's rows (25 + 15 = 40)."""
    labels = ["Financ/Bancos", "Financ/Bancos", "Petróleo/Petróleo"]
    parts = [Decimal("25.000"), Decimal("15.000"), Decimal("60.000")]
    acums = [Decimal(acum), Decimal(acum), Decimal("60.000")]
    outcome = sector_totals_match(labels, parts, acums)
    assert outcome.passed is passed
    if passed:
        assert outcome.metadata == {"subsectors": "none", "count": 0}
    else:
        assert outcome.metadata["count"] == 1
        assert outcome.problem == (
            "subsector totals (partAcum) that do not match their rows: 'Financ/Bancos': "
            f"partAcum {acum} but its 2 rows' part add up to 40.000"
        )
