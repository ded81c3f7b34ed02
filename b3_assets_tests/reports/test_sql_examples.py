"""The example queries (b3_assets/sql/*.sql) on the local DuckDB catalog, checked against the
landing data they come from, and parsed as Trino SQL (what Athena runs)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources

import pytest
import sqlglot
from sqlglot import exp

from b3_assets.reports.report import QUERIES, load_query, run_query, sql_text
from b3_assets.storage.landing import read_landing
from b3_assets_tests.support.chain import Platform, local_platform
from b3_assets_tests.support.two_dates import DAY1, DAY2, refine, start_replica

PARAMS = {"weights_on_date": 1, "issuer_history": 1, "biggest_changes": 1}


@dataclass
class Refined:
    platform: Platform
    #: issuer root -> summed landing participations, per date (what the refined rows sum)
    weights: dict[str, dict[str, Decimal]]


def issuer_weights(platform: Platform, day: str) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for row in read_landing(platform.lake, date.fromisoformat(day)).to_pylist():
        sums[row["codigo"][:4]] += row["participacao_pct"]
    return dict(sums)


@pytest.fixture(scope="module")
def refined(tmp_path_factory) -> Iterator[Refined]:
    replica = start_replica()
    try:
        platform = local_platform(tmp_path_factory.mktemp("lake"), replica.base_url)
        refine(platform, replica, [DAY1, DAY2])
        yield Refined(platform, {d: issuer_weights(platform, d) for d in (DAY1, DAY2)})
    finally:
        replica.stop()


def test_every_query_is_package_data_with_one_copy():
    files = sorted(
        p.name
        for p in resources.files("b3_assets").joinpath("sql").iterdir()
        if p.name.endswith(".sql")
    )
    assert files == sorted(f"{q}.sql" for q in QUERIES) and set(PARAMS) == set(QUERIES)
    for name in QUERIES:
        assert sql_text(name).startswith("-- ")  # documented where it lives
        assert "--" not in load_query(name) and not load_query(name).endswith(";")


@pytest.mark.parametrize("name", QUERIES)
def test_queries_parse_as_trino_with_placeholders(name):
    """Athena (engine v3) is Trino: each query parses as Trino, as one SELECT, with `?`
    parameters (bound as ExecutionParameters), and reads only the refined table: a date's
    rows from b3_etl_soma_acao (its partitions), a history from the yearly
    b3_etl_soma_acao_historico (one object a year, not every date's partitions)."""
    tree = sqlglot.parse_one(load_query(name), read="trino")
    assert isinstance(tree, exp.Select)
    assert len(list(tree.find_all(exp.Placeholder))) == PARAMS[name]
    table = "b3_etl_soma_acao_historico" if name == "issuer_history" else "b3_etl_soma_acao"
    assert {t.name for t in tree.find_all(exp.Table)} == {table}
    sqlglot.parse_one(sql_text(name), read="trino")  # comments and all
    # Output columns are lower-case aliases: Athena reports lower-case names, DuckDB keeps
    # the alias, so callers see the same keys on both.
    assert all(s.alias_or_name == s.alias_or_name.lower() for s in tree.selects)


def test_weights_on_date_is_the_landing_by_issuer(refined):
    rows = run_query(refined.platform.catalog, "weights_on_date", [DAY2])
    landing = refined.weights[DAY2]
    assert {r["acao"]: r["participacao_total_pct"] for r in rows} == landing
    assert sum(r["participacao_total_pct"] for r in rows) == sum(landing.values())
    weights = [r["participacao_total_pct"] for r in rows]
    assert weights == sorted(weights, reverse=True)
    assert all(isinstance(w, Decimal) for w in weights)
    assert {r["data_carteira"] for r in rows} == {DAY2}
    assert {r["data_carteira_anterior"] for r in rows} == {date.fromisoformat(DAY1)}
    if "PETR" in landing:  # the real samples: PETR = PETR3 + PETR4
        (petr,) = [r for r in rows if r["acao"] == "PETR"]
        assert petr["tickers"] == "PETR3,PETR4" and petr["qtd_classes"] == 2
    first_day = run_query(refined.platform.catalog, "weights_on_date", [DAY1])
    assert {r["data_carteira_anterior"] for r in first_day} == {None}
    assert run_query(refined.platform.catalog, "weights_on_date", ["2025-03-06"]) == []


def test_issuer_history_follows_one_issuer(refined):
    both = sorted(set(refined.weights[DAY1]) & set(refined.weights[DAY2]))
    issuer = "PETR" if "PETR" in both else both[0]
    rows = run_query(refined.platform.catalog, "issuer_history", [issuer])
    assert [(r["data_carteira"], r["acao"]) for r in rows] == [(DAY1, issuer), (DAY2, issuer)]
    assert [r["participacao_total_pct"] for r in rows] == [
        refined.weights[DAY1][issuer],
        refined.weights[DAY2][issuer],
    ]
    assert rows[0]["variacao_participacao_pp"] is None
    assert rows[1]["variacao_participacao_pp"] == (
        refined.weights[DAY2][issuer] - refined.weights[DAY1][issuer]
    )
    assert run_query(refined.platform.catalog, "issuer_history", ["ZZZZ"]) == []


def test_biggest_changes_are_the_landing_differences(refined):
    before, now = refined.weights[DAY1], refined.weights[DAY2]
    rows = run_query(refined.platform.catalog, "biggest_changes", [DAY2])
    expected = {a: now[a] - before[a] for a in now if a in before}
    assert {r["acao"]: r["variacao_participacao_pp"] for r in rows} == expected
    moves = [abs(r["variacao_participacao_pp"]) for r in rows]
    assert moves == sorted(moves, reverse=True)
    assert {r["data_carteira_anterior"] for r in rows} == {date.fromisoformat(DAY1)}
    # The first date has nothing to compare with.
    assert run_query(refined.platform.catalog, "biggest_changes", [DAY1]) == []
