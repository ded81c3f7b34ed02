"""The asset-check rules fail on bad data, naming the offending values, and pass on good data.

The rules are ``source.validate``'s (the same functions reject a B3 payload before it is written)
run on landing files, plus the refined table's one-row-per-issuer rule. Every case here would
fail if a rule were replaced by ``True``."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from b3_assets.portfolio.checks import LANDING_RULES as CHECKED_RULES
from b3_assets.portfolio.checks import landing_evaluation
from b3_assets.portfolio.quality import landing_checks, refined_checks
from b3_assets.source.payload import RawPayload
from b3_assets_tests.replica import generate_period, period_page
from b3_assets_tests.support.landing_factory import landing_portfolio, landing_table
from glue.layout import issuer_root

DAY = date(2025, 3, 5)
#: Rule names the ``valid_portfolio`` check reports (broken_rules): a rename breaks searches.
LANDING_RULES = {"at_least_50_constituents", "unique_codes", "quantities_add_up_to_header_total",
                 "participations_add_up_to_100"}


@pytest.fixture
def landing() -> pa.Table:
    return landing_table(DAY)


def _with(table: pa.Table, column: str, values: list[Any]) -> pa.Table:
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def _column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def _failed(outcomes: dict[str, tuple[bool, dict]]) -> set[str]:
    return {name for name, (ok, _) in outcomes.items() if not ok}


# --- landing ------------------------------------------------------------------------------

def test_good_landing_passes_every_rule(landing: pa.Table) -> None:
    outcomes = landing_checks(landing)
    assert set(outcomes) >= LANDING_RULES
    assert _failed(outcomes) == set()
    assert outcomes["quantities_add_up_to_header_total"][1]["sum_qtde_teorica"] == (
        _column(landing, "qtde_teorica_total")[0])


def test_a_missing_row(landing: pa.Table) -> None:
    parts = _column(landing, "participacao_pct")
    k = parts.index(max(parts))
    qty, total = _column(landing, "qtde_teorica")[k], _column(landing, "qtde_teorica_total")[0]
    outcomes = landing_checks(pa.concat_tables([landing.slice(0, k), landing.slice(k + 1)]))
    assert _failed(outcomes) == {"quantities_add_up_to_header_total",
                                 "participations_add_up_to_100"}
    assert outcomes["quantities_add_up_to_header_total"][1] == {
        "sum_qtde_teorica": total - qty, "qtde_teorica_total": total}
    assert outcomes["participations_add_up_to_100"][1]["sum_participacao_pct"] == str(
        Decimal("100.000") - parts[k])


def test_a_duplicated_code(landing: pa.Table) -> None:
    codes = _column(landing, "codigo")
    codes[1] = codes[0]
    ok, meta = landing_checks(_with(landing, "codigo", codes))["unique_codes"]
    assert not ok and meta["duplicated_codes"] == codes[0] and meta["count"] == 1


def test_quantities_off_by_one(landing: pa.Table) -> None:
    totals = _column(landing, "qtde_teorica_total")
    outcomes = landing_checks(_with(landing, "qtde_teorica_total", [t + 1 for t in totals]))
    assert _failed(outcomes) == {"quantities_add_up_to_header_total"}
    assert outcomes["quantities_add_up_to_header_total"][1] == {
        "sum_qtde_teorica": totals[0], "qtde_teorica_total": totals[0] + 1}


def test_rows_that_disagree_on_the_header_total(landing: pa.Table) -> None:
    totals = _column(landing, "qtde_teorica_total")
    totals[-1] += 1
    ok, meta = landing_checks(_with(landing, "qtde_teorica_total", totals))[
        "quantities_add_up_to_header_total"]
    assert not ok and meta["qtde_teorica_total"] == f"{totals[0]}, {totals[-1]}"


@pytest.mark.parametrize("delta,ok", [(Decimal("1.000"), False), (Decimal("-0.011"), False),
                                      (Decimal("0.010"), True)])
def test_participations_off(landing: pa.Table, delta: Decimal, ok: bool) -> None:
    parts = _column(landing, "participacao_pct")
    parts[0] += delta
    passed, meta = landing_checks(_with(landing, "participacao_pct", parts))[
        "participations_add_up_to_100"]
    assert passed is ok
    assert meta == {"sum_participacao_pct": str(Decimal("100.000") + delta), "tolerance": "0.01"}


def test_a_negative_participation_that_balances(landing: pa.Table) -> None:
    parts, codes = _column(landing, "participacao_pct"), _column(landing, "codigo")
    parts[1] += parts[0] + 1
    parts[0] = Decimal("-1.000")
    outcomes = landing_checks(_with(landing, "participacao_pct", parts))
    assert _failed(outcomes) == {"participations_non_negative"}
    assert outcomes["participations_non_negative"][1]["negative"] == f"{codes[0]}=-1.000"


def test_fewer_than_50_rows(landing: pa.Table) -> None:
    ok, meta = landing_checks(landing.slice(0, 40))["at_least_50_constituents"]
    assert not ok and meta == {"rows": 40, "minimum": 50}


def test_a_reductor_that_is_not_positive(landing: pa.Table) -> None:
    outcomes = landing_checks(_with(landing, "redutor", [Decimal(0)] * landing.num_rows))
    assert _failed(outcomes) == {"redutor_positive"}
    assert outcomes["redutor_positive"][1]["not_positive"] == "0.00000000"


def test_a_quantity_that_is_not_positive(landing: pa.Table) -> None:
    qty, codes = _column(landing, "qtde_teorica"), _column(landing, "codigo")
    total = _column(landing, "qtde_teorica_total")[0] - qty[3]
    qty[3] = 0
    table = _with(_with(landing, "qtde_teorica", qty), "qtde_teorica_total",
                  [total] * landing.num_rows)
    outcomes = landing_checks(table)
    assert _failed(outcomes) == {"quantities_positive"}
    assert outcomes["quantities_positive"][1]["not_positive"] == f"{codes[3]}=0"


def test_the_landing_rules_run_on_the_period_views() -> None:
    """landing/ibov_teorica and landing/ibov_previa carry the same columns the rules read."""
    page = period_page(generate_period("previa", DAY), page_number=1, page_size=120)
    payload = RawPayload("api", "http://b3.test/x", datetime(2025, 3, 5, tzinfo=UTC),
                         (("page-001.json", json.dumps(page).encode()),))
    table = payload.portfolio(DAY, view="previa").to_landing_table()
    assert _failed(landing_checks(table)) == set()
    assert _failed(landing_checks(table.slice(1))) == {"quantities_add_up_to_header_total",
                                                        "participations_add_up_to_100"}


def test_sector_columns_do_not_change_the_landing_rules(landing: pa.Table) -> None:
    labels = ["Criptoativos / Tokens"] * landing.num_rows  # unknown: null setor, still valid
    assert _failed(landing_checks(_with(landing, "setor_b3", labels))) == set()


def test_valid_portfolio_is_one_result_per_date_naming_each_broken_rule(
    landing: pa.Table,
) -> None:
    assert set(CHECKED_RULES) == set(landing_checks(landing))  # every rule is reported
    day = DAY.isoformat()
    good = landing_evaluation(day, landing)
    assert (good.passed, good.partition, good.check_name) == (True, day, "valid_portfolio")
    assert good.metadata["broken_rules"].value == "none"
    assert good.metadata["rules_checked"].value == len(CHECKED_RULES)

    unknown = _with(landing, "setor_b3", ["Criptoativos / Tokens"] * landing.num_rows)
    warned = landing_evaluation(day, unknown)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["unknown_sector_labels"].value == "Criptoativos / Tokens"
    assert warned.metadata["broken_rules"].value == "none"

    parts = _column(landing, "participacao_pct")
    k = parts.index(max(parts))
    broken = pa.concat_tables([unknown.slice(0, k), unknown.slice(k + 1)])  # a row lost
    failed = landing_evaluation(day, broken)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["broken_rules"].value == (
        "quantities_add_up_to_header_total, participations_add_up_to_100")
    assert failed.metadata["participations_add_up_to_100: sum_participacao_pct"].value == str(
        Decimal("100.000") - parts[k])
    assert failed.metadata["unknown_sector_labels"].value == "Criptoativos / Tokens"


# --- refined ------------------------------------------------------------------------------

def _refined(landing: pa.Table) -> list[dict[str, Any]]:
    """What the Glue job writes for the date: one row per issuer, participations summed."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for code, part in zip(_column(landing, "codigo"), _column(landing, "participacao_pct"),
                          strict=True):
        sums[issuer_root(code)] += part
    return [{"acao": a, "participacao_total_pct": p} for a, p in sorted(sums.items())]


def test_good_refined_passes(landing: pa.Table) -> None:
    refined = _refined(landing)
    assert len(refined) < landing.num_rows  # PETR3/PETR4, ELET3/ELET6, BBDC3/BBDC4
    outcomes = refined_checks(refined, landing)
    assert _failed(outcomes) == set()
    assert outcomes["one_row_per_issuer"][1]["issuers_in_landing"] == len(refined)


def test_an_issuer_missing(landing: pa.Table) -> None:
    refined = [r for r in _refined(landing) if r["acao"] != "PETR"]
    outcomes = refined_checks(refined, landing)
    assert _failed(outcomes) == {"one_row_per_issuer", "participations_add_up_to_100"}
    meta = outcomes["one_row_per_issuer"][1]
    assert (meta["missing"], meta["unexpected"], meta["duplicated"]) == ("PETR", "none", "none")


def test_an_extra_issuer(landing: pa.Table) -> None:
    refined = [*_refined(landing), {"acao": "GOLL", "participacao_total_pct": Decimal("0")}]
    outcomes = refined_checks(refined, landing)
    assert _failed(outcomes) == {"one_row_per_issuer"}
    assert outcomes["one_row_per_issuer"][1]["unexpected"] == "GOLL"


def test_a_duplicated_issuer_row(landing: pa.Table) -> None:
    """PETR split over two rows: the sum still holds, the one-row rule does not."""
    refined = _refined(landing)
    petr = next(r for r in refined if r["acao"] == "PETR")
    half = petr["participacao_total_pct"] / 2
    refined = [r for r in refined if r is not petr] + [
        {"acao": "PETR", "participacao_total_pct": half},
        {"acao": "PETR", "participacao_total_pct": petr["participacao_total_pct"] - half}]
    outcomes = refined_checks(refined, landing)
    assert _failed(outcomes) == {"one_row_per_issuer"}
    meta = outcomes["one_row_per_issuer"][1]
    assert meta["duplicated"] == "PETR" and meta["rows"] == meta["issuers_in_landing"] + 1


def test_refined_participations_off(landing: pa.Table) -> None:
    refined = _refined(landing)
    refined[0] = {**refined[0], "participacao_total_pct": refined[0]["participacao_total_pct"]
                  + Decimal("0.02")}
    ok, meta = refined_checks(refined, landing)["participations_add_up_to_100"]
    assert not ok and meta["sum_participacao_pct"] == "100.020"


def test_an_empty_refined_date(landing: pa.Table) -> None:
    outcomes = refined_checks([], landing)
    assert _failed(outcomes) == {"one_row_per_issuer", "participations_add_up_to_100"}
    assert outcomes["one_row_per_issuer"][1]["rows"] == 0


def test_the_issuer_rule_is_glue_layouts() -> None:
    for c in landing_portfolio(DAY).constituents:
        assert c.issuer == issuer_root(c.codigo)
