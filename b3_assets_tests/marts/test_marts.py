"""The marts (b3_assets/marts/: queries, store, compute, assets, checks; sql/): the SQL is
Athena's dialect, DuckDB runs it exactly, the rows equal an independent computation in plain
Python (Decimal) on the real B3 samples and on generated portfolios, storage is one file per
year with each date replaced, the catalog answers, and every check fails on bad data."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from b3_assets.keys import MART_KEYS
from b3_assets.marts.assets import ibov_marts
from b3_assets.marts.checks import (
    MART_CHECKS,
    evaluate_mart_checks,
    giro_outcome,
    hhi_outcome,
    ibov_marts_checks,
    movimentos_outcome,
    setores_outcome,
)
from b3_assets.marts.compute import build_marts, compute_marts, plan_marts
from b3_assets.marts.errors import MartError
from b3_assets.marts.queries import duckdb_mart_sql, mart_sql, to_duckdb
from b3_assets.marts.store import MART_SCHEMAS, MartStore
from b3_assets.platform.catalog import AthenaCatalog, DuckDBCatalog, _view_source, mart_view_sql
from b3_assets.platform.resources import DuckDBCatalogResource, LocalLakeResource
from b3_assets.portfolio.collect import csv_payload
from b3_assets.sessions import trading_days
from b3_assets.source.model import Constituent, Portfolio
from b3_assets.storage.lake import LocalLake, S3Lake
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from b3_assets_tests.support.moto_server import MotoServer, unique_name, use_moto
from glue.catalog import ensure_mart_table
from glue.layout import MART_COLUMNS, MART_NAMES, landing_key, mart_year_key

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
MILESIMO = Decimal("0.001")

# --- the independent computation: plain Python, Decimal ------------------------------------


def weights(table: pa.Table, day: date) -> dict[str, Decimal]:
    return {
        r["codigo"]: r["participacao_pct"] for r in table.to_pylist() if r["data_carteira"] == day
    }


def expected_indicadores(
    atual: pa.Table, day: date, anterior: pa.Table | None, prev: date | None
) -> dict[str, Any]:
    w = weights(atual, day)
    with localcontext() as ctx:
        ctx.prec = 60
        hhi = sum(((x / 100) ** 2 for x in w.values()), Decimal(0))
        n_efetivo = 1 / hhi
        giro = None
        if anterior is not None:
            p = weights(anterior, prev)  # type: ignore[arg-type]
            total = sum(
                (abs(w.get(c, Decimal(0)) - p.get(c, Decimal(0))) for c in set(w) | set(p)),
                Decimal(0),
            )
            giro = (total / 2).quantize(MILESIMO, ROUND_HALF_UP)
    return {
        "data_carteira": day,
        "data_carteira_anterior": prev,
        "qtd_acoes": len(w),
        "qtd_emissores": len({c[:4] for c in w}),
        "hhi": hhi.quantize(Decimal("0.000001"), ROUND_HALF_UP),
        "n_efetivo": n_efetivo.quantize(MILESIMO, ROUND_HALF_UP),
        "top10_pct": sum(sorted(w.values(), reverse=True)[:10], Decimal(0)),
        "giro_pct": giro,
    }


def expected_movimentos(
    atual: pa.Table, day: date, anterior: pa.Table | None, prev: date | None
) -> list[dict[str, Any]]:
    if anterior is None:
        return []
    now = {r["codigo"]: r for r in atual.to_pylist() if r["data_carteira"] == day}
    before = {r["codigo"]: r for r in anterior.to_pylist() if r["data_carteira"] == prev}
    rows = [(c, now[c], "entrada") for c in set(now) - set(before)]
    rows += [(c, before[c], "saida") for c in set(before) - set(now)]
    return [
        {
            "data_carteira": day,
            "data_carteira_anterior": prev,
            "codigo": c,
            "acao": r["acao"],
            "movimento": kind,
            "participacao_pct": r["participacao_pct"],
        }
        for c, r, kind in sorted(rows, key=lambda x: (x[2], x[0]))
    ]


def expected_setores(atual: pa.Table, day: date) -> list[dict[str, Any]]:
    sums: dict[str | None, list[Any]] = {}
    for r in atual.to_pylist():
        if r["data_carteira"] == day:
            entry = sums.setdefault(r["setor"], [0, Decimal(0)])
            entry[0] += 1
            entry[1] += r["participacao_pct"]
    return sorted(
        (
            {"data_carteira": day, "setor": s, "qtd_acoes": n, "participacao_pct": w}
            for s, (n, w) in sums.items()
        ),
        key=lambda r: (-r["participacao_pct"], r["setor"] is None, r["setor"] or ""),
    )


def expected_all(tables: Mapping[date, pa.Table]) -> dict[str, list[dict[str, Any]]]:
    """Every mart's rows over consecutive landing dates, in the stored order."""
    days = sorted(tables)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in MART_NAMES}
    for i, day in enumerate(days):
        prev = days[i - 1] if i else None
        anterior = tables[prev] if prev else None
        out["ibov_movimentos"] += expected_movimentos(tables[day], day, anterior, prev)
        out["ibov_indicadores"].append(expected_indicadores(tables[day], day, anterior, prev))
        out["ibov_setores"] += expected_setores(tables[day], day)
    return out


def stored(lake_root: Path, name: str) -> list[dict[str, Any]]:
    store = MartStore(LocalLake(lake_root))
    return [row for year in store.years(name) for row in store.read(name, year).to_pylist()]


def with_sectors(table: pa.Table, sectors: Mapping[str, str | None]) -> pa.Table:
    """``table`` with ``setor`` set by hand per issuer root (absent root: null)."""
    values = [sectors.get(c[:4]) for c in table.column("codigo").to_pylist()]
    index = table.schema.get_field_index("setor")
    return table.set_column(index, table.schema.field("setor"), pa.array(values, pa.string()))


def land(root: Path, tables: Mapping[date, pa.Table]) -> None:
    lake = LocalLake(root)
    for day, table in tables.items():
        lake.write_bytes(landing_key(day), landing_parquet(table))


# --- the SQL: Athena's dialect, exact on DuckDB --------------------------------------------


@pytest.mark.parametrize("name", MART_NAMES)
def test_sql_is_athena_dialect_and_round_trips_unchanged(name: str) -> None:
    sql = mart_sql(name)
    for dialect in ("athena", "trino"):
        (tree,) = sqlglot.parse(sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        assert tree is not None
        assert not list(tree.find_all(exp.Anonymous)), "a function Athena may not have"
        again = sqlglot.parse_one(tree.sql(dialect=dialect), read=dialect)
        assert again == tree  # Athena's dialect round-trips: nothing lost or rewritten
    tables = {t.name for t in tree.find_all(exp.Table)}
    ctes = {c.alias for c in tree.find_all(exp.CTE)}
    assert tables - ctes <= {"carteira_atual", "carteira_anterior", "execucao"}
    assert "execucao" in tables
    out = [s.alias_or_name for s in tree.selects]
    assert out == [c.name for c in MART_COLUMNS[name]]  # docs/contracts.md's columns, in order
    duck = sqlglot.parse_one(duckdb_mart_sql(name), read="duckdb")
    assert not list(duck.find_all(exp.Div))  # no DOUBLE division reaches DuckDB


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT CAST(a AS DECIMAL(9, 3)) / CAST(b AS DECIMAL(9, 3)) FROM t", "in DOUBLE"),
        ("SELECT a / CAST(b AS BIGINT) FROM t", "in DOUBLE"),
        ("SELECT DECIMAL '0.0001' * a FROM t", "has no precision"),
        ("SELECT frobnicate(a) FROM t", "frobnicate"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
    ],
)
def test_transpiler_refuses_what_would_not_be_exact_on_duckdb(sql: str, message: str) -> None:
    with pytest.raises(MartError, match=message):
        to_duckdb(sql, "test.sql")


def test_integer_division_is_exact_on_duckdb() -> None:
    sql = to_duckdb(
        "SELECT CAST(CAST(20000000000000 + s AS BIGINT) / CAST(2 * s AS BIGINT) AS BIGINT) AS q "
        "FROM (VALUES CAST(180390000 AS BIGINT), CAST(7 AS BIGINT)) AS v(s)",
        "test.sql",
    )
    assert "//" in sql
    got = [r[0] for r in duckdb.sql(sql).fetchall()]
    assert got == [(2 * 10**13 + 180390000) // (2 * 180390000), (2 * 10**13 + 7) // 14]


# --- the real samples: 32 consecutive B3 dates ---------------------------------------------


@pytest.fixture(scope="module")
def samples(samples_dir: Path) -> dict[date, pa.Table]:
    tables = {}
    for path in sorted((samples_dir / "csv_utf8_no_title").glob("*.csv")):
        portfolio = csv_payload(path).portfolio()
        tables[portfolio.data_carteira] = portfolio.to_landing_table()
    assert len(tables) == 32
    return tables


@pytest.fixture(scope="module")
def sample_lake(samples: dict[date, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    land(root, samples)
    run = build_marts(LocalLake(root), sorted(samples))
    assert run.problems == {} and run.computed == sorted(samples)
    return root


@pytest.mark.parametrize("name", MART_NAMES)
def test_marts_equal_plain_python_on_the_real_samples(
    samples: dict[date, pa.Table], sample_lake: Path, name: str
) -> None:
    assert stored(sample_lake, name) == expected_all(samples)[name]
    assert pq.read_schema(sample_lake / mart_year_key(name, 2025)).equals(
        MART_SCHEMAS[name], check_metadata=False
    )


def test_every_mart_check_passes_on_the_real_samples(
    samples: dict[date, pa.Table], sample_lake: Path
) -> None:
    """The checks' own computations (hhi's in plain decimals) agree with the SQL on B3's data."""
    selected = {(n, c) for n, checks in MART_CHECKS.items() for c in checks}
    results = list(evaluate_mart_checks(LocalLake(sample_lake), sorted(samples), selected))
    assert len(results) == len(selected) * len(samples)
    assert [(c, d, o) for _, c, d, o in results if not o[0]] == []


def test_samples_have_no_composition_change_and_no_sectors(
    samples: dict[date, pa.Table], sample_lake: Path
) -> None:
    """The samples are one four-month period: no entries or exits, and no sectors (CSVs)."""
    rows = stored(sample_lake, "ibov_indicadores")
    assert rows[0]["giro_pct"] is None and rows[0]["data_carteira_anterior"] is None
    assert all(r["giro_pct"] is not None for r in rows[1:])
    assert stored(sample_lake, "ibov_movimentos") == []
    setores = stored(sample_lake, "ibov_setores")  # CSVs carry no sector: one null row a day
    assert {(r["setor"], r["participacao_pct"] == 100) for r in setores} == {(None, True)}


def test_catalog_answers_the_marts(sample_lake: Path, samples: dict[date, pa.Table]) -> None:
    catalog = DuckDBCatalog(sample_lake)
    result = catalog.query("SELECT * FROM ibov_indicadores ORDER BY data_carteira")
    assert result.columns == [c.name for c in MART_COLUMNS["ibov_indicadores"]]
    assert result.as_dicts() == expected_all(samples)["ibov_indicadores"]
    n = catalog.query(
        "SELECT count(*) FROM ibov_setores WHERE data_carteira >= ?", [date(2025, 3, 1)]
    )
    assert n.rows == [(len([d for d in samples if d >= date(2025, 3, 1)]),)]
    assert catalog.query("SELECT * FROM ibov_movimentos").rows == []
    # catalog.duckdb, for any DuckDB client: the refined view and the marts' views.
    catalog.refresh()
    with duckdb.connect(str(sample_lake / "catalog.duckdb"), read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert {"b3_etl_soma_acao", *MART_NAMES} <= views
        assert con.execute("SELECT count(*) FROM ibov_indicadores").fetchone() == (32,)


def test_refresh_rewrites_a_view_with_other_columns(sample_lake: Path) -> None:
    """A catalog.duckdb from an older version (a view with other columns) is brought current."""
    path = sample_lake / "catalog.duckdb"
    DuckDBCatalog(sample_lake).refresh()
    glob = (sample_lake.resolve() / "marts" / "ibov_setores" / "ano=*.parquet").as_posix()
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"CREATE OR REPLACE VIEW ibov_setores AS SELECT setor FROM read_parquet('{glob}')"
        )
        old = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'ibov_setores'")
        # The same files: only the columns tell this view is stale.
        assert _view_source(old.fetchone()[0]) == _view_source(
            mart_view_sql(sample_lake, "ibov_setores")
        )
    DuckDBCatalog(sample_lake).refresh()
    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute("DESCRIBE ibov_setores").fetchall()]
    assert names == [c.name for c in MART_COLUMNS["ibov_setores"]]


def test_catalog_of_an_empty_lake_has_typed_empty_marts(tmp_path: Path) -> None:
    catalog = DuckDBCatalog(tmp_path)
    for name in MART_NAMES:
        result = catalog.query(f"SELECT * FROM {name}")
        assert result.rows == [] and result.columns == [c.name for c in MART_COLUMNS[name]]
    typed = catalog.query("SELECT typeof(hhi), typeof(giro_pct) FROM ibov_indicadores")
    assert typed.rows == []
    with duckdb.connect() as con:  # the placeholder's types are the contract's
        con.execute(mart_view_sql(tmp_path, "ibov_indicadores"))
        types = dict(
            con.execute(
                "SELECT column_name, column_type FROM (DESCRIBE ibov_indicadores)"
            ).fetchall()
        )
        assert types["hhi"] == "DECIMAL(9,6)" and types["n_efetivo"] == "DECIMAL(9,3)"


# --- generated portfolios: entries, exits, gaps, sectors, years -----------------------------

SECTORS = {
    "PETR": "Petróleo, Gás e Biocombustíveis", "PRIO": "Petróleo, Gás e Biocombustíveis",
    "VALE": "Materiais Básicos", "GGBR": "Materiais Básicos", "SUZB": "Materiais Básicos",
    "ITUB": "Financeiro", "BBDC": "Financeiro", "BBAS": "Financeiro", "B3SA": "Financeiro",
    "BPAC": "Financeiro", "ELET": "Utilidade Pública", "SBSP": "Utilidade Pública",
    "WEGE": "Bens Industriais", "EMBR": "Bens Industriais", "ABEV": "Consumo não Cíclico",
    "VIVT": "Comunicações", "TIMS": "Comunicações", "TOTS": "Tecnologia da Informação",
    "RDOR": "Saúde", "LREN": "Consumo Cíclico", "MGLU": "Consumo Cíclico", "GOLL": "Outros",
}  # fmt: skip

#: Sessions around two year ends, with gaps (2024-12-30 and 2025-01-06 are left out) and a
#: stray landing file on a Saturday that must never become a previous date.
GENERATED: dict[date, dict[str, Any]] = {
    date(2024, 12, 23): {},
    date(2024, 12, 26): {"drop": {"AZUL"}},
    date(2024, 12, 27): {"drop": {"AZUL", "PETR3"}, "add": {"GOLL4"}},
    date(2025, 1, 2): {"add": {"GOLL4", "ITUB3", "EZTC3"}},
    date(2025, 1, 3): {"add": {"ITUB3"}, "drop": {"CVCB"}},
    date(2025, 1, 7): {"add": {"ITUB3", "SMFT3"}},
}
STRAY = date(2025, 1, 4)  # a Saturday


def generated_tables() -> dict[date, pa.Table]:
    return {
        day: with_sectors(landing_table(day, seed=7, **spec), SECTORS)
        for day, spec in GENERATED.items()
    }


@pytest.fixture
def generated_lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    land(root, generated_tables())
    land(root, {STRAY: landing_table(STRAY, seed=9, add={"CIEL3"})})
    return root


def test_generated_range_equals_plain_python_one_file_per_year(
    generated_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    real = LocalLake.write_if_unchanged

    def counted(self: LocalLake, key: str, data: bytes, version: str | None) -> bool:
        writes.append(key.rsplit("/", 1)[-1])
        return real(self, key, data, version)

    monkeypatch.setattr(LocalLake, "write_if_unchanged", counted)
    run = build_marts(LocalLake(generated_lake), sorted(GENERATED))
    assert run.problems == {} and run.plan.followers == []
    expected = expected_all(generated_tables())
    for name in MART_NAMES:
        assert stored(generated_lake, name) == expected[name], name
        files = sorted(p.name for p in (generated_lake / "marts" / name).glob("*.parquet"))
        assert files == ["ano=2024.parquet", "ano=2025.parquet"]
        for year in (2024, 2025):
            days = pq.read_table(generated_lake / mart_year_key(name, year)).column(0)
            assert {d.year for d in days.to_pylist()} == {year}
    # A range reads each year's file once and writes it once, per mart.
    assert sorted(writes) == sorted(["ano=2024.parquet", "ano=2025.parquet"] * 3)
    moves = {(r["data_carteira"], r["codigo"], r["movimento"]) for r in expected["ibov_movimentos"]}
    assert (date(2025, 1, 2), "PETR3", "entrada") in moves  # back after a gap…
    assert (date(2025, 1, 3), "EZTC3", "saida") in moves
    assert (date(2025, 1, 7), "CVCB3", "entrada") in moves  # compared with 01-03…
    assert not [m for m in moves if m[1] == "CIEL3"]  # …never with the Saturday's stray file
    indicadores = {r["data_carteira"]: r for r in expected["ibov_indicadores"]}
    assert indicadores[date(2025, 1, 7)]["data_carteira_anterior"] == date(2025, 1, 3)
    jan3 = indicadores[date(2025, 1, 3)]  # CVCB3 out, ITUB3 in: PETR, ELET, BBDC, ITUB x2
    assert (jan3["qtd_acoes"], jan3["qtd_emissores"]) == (87, 83)


def hand_table(day: date, weights_pct: Mapping[str, str]) -> pa.Table:
    """A landing table with exactly these weights (tickers like ``AAAA3``)."""
    constituents = tuple(
        Constituent(codigo, f"EMPRESA {codigo[:4]}", "ON NM", 1_000_000, Decimal(pct))
        for codigo, pct in weights_pct.items()
    )
    return Portfolio(
        data_carteira=day,
        constituents=constituents,
        qtde_teorica_total=1_000_000 * len(constituents),
        redutor=Decimal("1"),
        coletado_em=datetime(2025, 1, 1, tzinfo=UTC),
        where="test",
    ).to_landing_table()


def test_rounding_is_half_up_and_exact_at_every_half_way_case() -> None:
    """Half-way cases, where DOUBLE or half-even would differ: hhi 0.9960065 -> 0.996007,
    n_efetivo 1/0.64 = 1.5625 -> 1.563, giro 0.0005 -> 0.001."""
    d1, d2, d3 = date(2025, 1, 2), date(2025, 1, 3), date(2025, 1, 6)
    tables = {
        d1: hand_table(d1, {"AAAA3": "80.000"}),
        d2: hand_table(d2, {"AAAA3": "99.800", "BBBB3": "0.050", "CCCC3": "0.150"}),
        d3: hand_table(d3, {"AAAA3": "99.800", "BBBB3": "0.050", "CCCC3": "0.151"}),
    }
    got = compute_marts(tables, {d1: None, d2: d1, d3: d2}, ["ibov_indicadores"])
    rows = {r["data_carteira"]: r for r in got["ibov_indicadores"].to_pylist()}
    assert (rows[d1]["hhi"], rows[d1]["n_efetivo"]) == (Decimal("0.640000"), Decimal("1.563"))
    assert rows[d2]["hhi"] == Decimal("0.996007")
    assert rows[d3]["giro_pct"] == Decimal("0.001")
    assert list(rows.values()) == expected_all(tables)["ibov_indicadores"]


def test_sector_sums_by_hand() -> None:
    day = date(2025, 3, 5)
    table = with_sectors(landing_table(day, seed=3), SECTORS)
    (rows,) = [compute_marts({day: table}, {day: None}, ["ibov_setores"])["ibov_setores"]]
    got = {r["setor"]: (r["qtd_acoes"], r["participacao_pct"]) for r in rows.to_pylist()}
    w = weights(table, day)
    petroleo = [c for c in w if c[:4] in {"PETR", "PRIO"}]
    assert got["Petróleo, Gás e Biocombustíveis"] == (3, sum(w[c] for c in petroleo))
    unknown = [c for c in w if c[:4] not in SECTORS]
    assert got[None] == (len(unknown), sum(w[c] for c in unknown))
    assert "Outros" not in got  # null is not folded into B3's real sector "Outros"
    assert sum(p for _, p in got.values()) == sum(w.values())


def test_old_landing_files_without_sector_columns_read_as_null(tmp_path: Path) -> None:
    day = date(2025, 3, 5)
    table = landing_table(day).drop_columns(["setor_b3", "setor", "subsetor"])
    path = write_landing(tmp_path, table)
    assert "setor" not in pq.read_schema(path).names
    run = build_marts(LocalLake(tmp_path), [day])
    assert run.problems == {}
    (row,) = stored(tmp_path, "ibov_setores")
    assert row["setor"] is None and row["participacao_pct"] == 100


def test_rerun_replaces_the_dates_rows_and_never_duplicates(generated_lake: Path) -> None:
    lake = LocalLake(generated_lake)
    build_marts(lake, sorted(GENERATED))
    before = {name: stored(generated_lake, name) for name in MART_NAMES}
    build_marts(lake, [date(2025, 1, 2)])  # same landing: same rows, no duplicates
    assert {name: stored(generated_lake, name) for name in MART_NAMES} == before
    # The date landed again, different: its rows are replaced, other years untouched.
    day = date(2025, 1, 2)
    land(generated_lake, {day: with_sectors(landing_table(day, seed=8), SECTORS)})
    y2024 = (generated_lake / mart_year_key("ibov_indicadores", 2024)).read_bytes()
    run = build_marts(lake, [day])
    assert run.plan.followers == [date(2025, 1, 3)]  # compares with the new 01-02 rows
    tables = generated_tables() | {day: with_sectors(landing_table(day, seed=8), SECTORS)}
    expected = expected_all(tables)
    for name in MART_NAMES:
        assert stored(generated_lake, name) == expected[name], name
    assert (generated_lake / mart_year_key("ibov_indicadores", 2024)).read_bytes() == y2024


def test_a_gap_filled_later_recomputes_the_next_date(tmp_path: Path) -> None:
    tables = generated_tables()
    lake = LocalLake(tmp_path)
    first = {d: tables[d] for d in (date(2025, 1, 2), date(2025, 1, 7))}
    land(tmp_path, first)
    build_marts(lake, sorted(first))
    land(tmp_path, {date(2025, 1, 3): tables[date(2025, 1, 3)]})  # the gap, filled
    run = build_marts(lake, [date(2025, 1, 3)])
    assert run.plan.followers == [date(2025, 1, 7)]
    expected = expected_all(
        {d: tables[d] for d in (date(2025, 1, 2), date(2025, 1, 3), date(2025, 1, 7))}
    )
    for name in MART_NAMES:
        assert stored(tmp_path, name) == expected[name], name  # as a full backfill gives


def test_a_date_without_landing_is_reported_and_the_others_computed(tmp_path: Path) -> None:
    tables = generated_tables()
    land(tmp_path, {date(2025, 1, 2): tables[date(2025, 1, 2)]})
    run = build_marts(LocalLake(tmp_path), [date(2025, 1, 2), date(2025, 1, 3)])
    assert run.computed == [date(2025, 1, 2)]
    assert "no landing file for 2025-01-03" in run.problems[date(2025, 1, 3)]
    assert "materialize landing/ibov_portfolio" in run.problems[date(2025, 1, 3)]
    # A landing file holding another date's rows is refused, not filed under the wrong date.
    lake = LocalLake(tmp_path)
    lake.write_bytes(landing_key(date(2025, 1, 6)), landing_parquet(tables[date(2025, 1, 3)]))
    run = build_marts(lake, [date(2025, 1, 6)])
    assert "has no row dated 2025-01-06" in run.problems[date(2025, 1, 6)]
    assert run.computed == []
    # …nor used as the previous portfolio of the next date.
    lake.write_bytes(landing_key(date(2025, 1, 7)), landing_parquet(tables[date(2025, 1, 7)]))
    run = build_marts(lake, [date(2025, 1, 7)])
    assert "previous landing date 2025-01-06 has no row" in run.problems[date(2025, 1, 7)]
    assert run.computed == []


def test_plan_uses_sessions_only_and_follows_the_next_landing_date() -> None:
    sessions = [date(2025, 1, 2), date(2025, 1, 3), date(2025, 1, 7), date(2025, 1, 8)]
    plan = plan_marts(sessions, [date(2025, 1, 3), date(2025, 1, 6)])
    assert plan.previous == {date(2025, 1, 3): date(2025, 1, 2), date(2025, 1, 7): date(2025, 1, 3)}
    assert plan.missing == [date(2025, 1, 6)] and plan.followers == [date(2025, 1, 7)]
    assert plan_marts(sessions, sessions).followers == []


# --- the checks: each one fails on bad data ------------------------------------------------


def _ind(**values: Any) -> list[dict[str, Any]]:
    row = {"data_carteira_anterior": date(2025, 1, 2), "giro_pct": Decimal("2.000"),
           "hhi": Decimal("0.018039"), "n_efetivo": Decimal("55.436")}  # fmt: skip
    return [row | values]


def test_setores_check() -> None:
    rows = [{"setor": "Financeiro", "participacao_pct": Decimal("60.000")},
            {"setor": None, "participacao_pct": Decimal("40.005")}]  # fmt: skip
    assert setores_outcome(rows)[0]
    assert setores_outcome(rows)[1]["sem_setor_pct"] == "40.005"
    rows[1]["participacao_pct"] = Decimal("39.980")
    assert not setores_outcome(rows)[0]
    assert not setores_outcome([])[0]


@pytest.mark.parametrize(
    "off, passed",
    [("0.000", True), ("0.010", True), ("-0.010", True), ("0.011", False), ("-0.011", False)],
)
def test_setores_check_tolerates_0_01(off: str, passed: bool) -> None:
    rows = [{"setor": "Financeiro", "participacao_pct": Decimal("60.000")},
            {"setor": "Outros", "participacao_pct": Decimal("40.000") + Decimal(off)}]  # fmt: skip
    total = f"{Decimal(100) + Decimal(off):.3f}"
    assert setores_outcome(rows) == (passed, {"total_pct": total, "sectors": 2,
                                              "sem_setor_pct": "0"})  # fmt: skip


@pytest.mark.parametrize(
    "values, passed",
    [
        ({}, True),
        ({"giro_pct": Decimal("0.000")}, True),
        ({"giro_pct": Decimal("100.000")}, True),
        ({"giro_pct": Decimal("100.001")}, False),
        ({"giro_pct": Decimal("-0.001")}, False),
        ({"giro_pct": None}, False),  # a previous date but no turnover
        ({"giro_pct": None, "data_carteira_anterior": None}, True),
    ],
)
def test_giro_check(values: dict[str, Any], passed: bool) -> None:
    assert giro_outcome(_ind(**values))[0] is passed
    assert not giro_outcome(_ind() * 2)[0] and not giro_outcome([])[0]


#: Σ (w/100)² = 0.25 + 0.09 + 0.04 = 0.38; 1 / 0.38 = 2.6315…
THREE = [Decimal("50.000"), Decimal("30.000"), Decimal("20.000")]
#: Σ (w/100)² = 0.9990005 exactly: a tie at the 7th decimal (half up: 0.999001); 1/… = 1.000999…
TIE = [Decimal("99.950"), Decimal("0.050")]


@pytest.mark.parametrize(
    "weights, hhi, n_efetivo, passed",
    [
        (THREE, "0.380000", "2.632", True),
        (THREE, "0.380001", "2.632", False),  # hhi off by its last decimal
        (THREE, "0.380000", "2.631", False),  # n_efetivo off by its last decimal
        (THREE[:2], "0.380000", "2.632", False),  # the mart has a ticker landing lacks
        (THREE + [Decimal("1.000")], "0.380000", "2.632", False),  # a ticker the mart lacks
        (THREE + [Decimal("0.001")], "0.380000", "2.632", True),  # below both roundings
        (TIE, "0.999001", "1.001", True),
        (TIE, "0.999000", "1.001", False),  # rounded half even: not the SQL's CAST
        ([Decimal("100.000")], "1.000000", "1.000", True),
        (THREE, None, "2.632", False),
        (THREE, "0.380000", None, False),
    ],
)
def test_hhi_check_recomputes_both_from_landing(
    weights: list[Decimal], hhi: str | None, n_efetivo: str | None, passed: bool
) -> None:
    ok, meta = hhi_outcome(
        _ind(hhi=hhi and Decimal(hhi), n_efetivo=n_efetivo and Decimal(n_efetivo)), weights
    )
    assert ok is passed
    assert meta["hhi"] == str(hhi) and meta["n_efetivo"] == str(n_efetivo)
    assert meta["landing_rows"] == len(weights)
    if passed:
        assert (meta["hhi_from_landing"], meta["n_efetivo_from_landing"]) == (hhi, n_efetivo)


def test_hhi_check_without_its_rows() -> None:
    assert hhi_outcome(_ind() * 2, THREE) == (False, {
        "problem": "2 rows for the date, expected 1: materialize marts/ibov_indicadores"})
    assert hhi_outcome([], THREE)[0] is False
    assert hhi_outcome(_ind(), []) == (False, {
        "problem": "no landing rows for the date: materialize landing/ibov_portfolio, then the "
        "marts"})


def test_movimentos_check() -> None:
    prev = date(2025, 1, 2)

    def row(codigo: str, kind: str, anterior: date = prev) -> dict[str, Any]:
        return {"codigo": codigo, "movimento": kind, "data_carteira_anterior": anterior}

    atual, anterior = {"AAAA3", "BBBB3", "CCCC3"}, {"AAAA3", "DDDD3"}
    good = [row("BBBB3", "entrada"), row("CCCC3", "entrada"), row("DDDD3", "saida")]
    assert movimentos_outcome(good, atual, anterior, prev)[0]
    missing = movimentos_outcome(good[1:], atual, anterior, prev)
    assert not missing[0] and missing[1]["expected_entradas"] == "BBBB3, CCCC3"
    assert not movimentos_outcome([*good, row("AAAA3", "saida")], atual, anterior, prev)[0]
    assert not movimentos_outcome([*good[:2], row("DDDD3", "saída")], atual, anterior, prev)[0]
    wrong_date = [*good[:2], row("DDDD3", "saida", date(2024, 12, 30))]
    assert not movimentos_outcome(wrong_date, atual, anterior, prev)[0]
    assert movimentos_outcome([], atual, None, None)[0]  # the first date: nothing to compare
    assert not movimentos_outcome([row("AAAA3", "entrada")], atual, None, None)[0]


def _corrupt(root: Path, name: str, year: int, change: Any) -> None:
    path = root / mart_year_key(name, year)
    table = pq.read_table(path)
    buf = io.BytesIO()
    pq.write_table(change(table).cast(MART_SCHEMAS[name]), buf)
    path.write_bytes(buf.getvalue())


def test_checks_read_the_stored_marts_and_fail_on_bad_rows(generated_lake: Path) -> None:
    lake = LocalLake(generated_lake)
    build_marts(lake, sorted(GENERATED))
    selected = {(n, c) for n, checks in MART_CHECKS.items() for c in checks}
    results = list(evaluate_mart_checks(lake, sorted(GENERATED), selected))
    assert len(results) == len(selected) * len(GENERATED)  # one result per check and date
    assert all(outcome[0] for *_, outcome in results)
    bad = date(2025, 1, 3)

    def edit(column: str, value: Any) -> Any:
        def change(table: pa.Table) -> pa.Table:
            rows = table.to_pylist()
            first = next(r for r in rows if r["data_carteira"] == bad)
            first[column] = value
            return pa.Table.from_pylist(rows, schema=table.schema)

        return change

    _corrupt(generated_lake, "ibov_setores", 2025, edit("participacao_pct", Decimal("1.000")))
    _corrupt(generated_lake, "ibov_indicadores", 2025, edit("giro_pct", Decimal("150.000")))
    _corrupt(generated_lake, "ibov_movimentos", 2025, lambda t: t.filter(
        pc.invert(pc.equal(t.column("data_carteira"), bad))))  # fmt: skip
    failed = {
        (name, check, day)
        for name, check, day, outcome in evaluate_mart_checks(lake, sorted(GENERATED), selected)
        if not outcome[0]
    }
    assert failed == {
        ("ibov_setores", "weights_add_up_to_100", bad),
        ("ibov_indicadores", "giro_pct_between_0_and_100", bad),
        ("ibov_movimentos", "entries_and_exits_match_landing", bad),
    }
    _corrupt(generated_lake, "ibov_indicadores", 2025, edit("n_efetivo", Decimal("40.000")))
    failed = {
        (check, day)
        for _, check, day, outcome in evaluate_mart_checks(lake, [bad], selected)
        if not outcome[0]
    }
    assert ("hhi_and_n_efetivo_match_landing", bad) in failed

    # Landing rewritten after the marts (1 % moved from the biggest weight to the smallest:
    # same tickers, same total): the stored hhi is no longer that of landing, nothing else fails.
    first = date(2024, 12, 23)
    table = generated_tables()[first]
    parts = table.column("participacao_pct").to_pylist()
    parts[parts.index(max(parts))] -= 1
    parts[parts.index(min(parts))] += 1
    i = table.schema.get_field_index("participacao_pct")
    write_landing(generated_lake, table.set_column(
        i, table.schema.field(i), pa.array(parts, table.schema.field(i).type)))  # fmt: skip
    failed = {
        (check, day)
        for _, check, day, outcome in evaluate_mart_checks(lake, [first], selected)
        if not outcome[0]
    }
    assert failed == {("hhi_and_n_efetivo_match_landing", first)}


# --- Dagster: one range run, one result per date --------------------------------------------


def _resources(root: Path) -> dict[str, Any]:
    return {
        "lake": LocalLakeResource(data_dir=str(root), glue_job_name="b3-refine"),
        "catalog": DuckDBCatalogResource(data_dir=str(root)),
    }


def _statuses(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.check_name, str(e.partition)): e.passed for e in result.get_asset_check_evaluations()
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """In memory: a few hundred ms, where a test instance on disk takes seconds."""
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_range_run_materializes_each_date_and_checks_each_date(
    generated_lake: Path, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [ibov_marts, ibov_marts_checks],
        resources=_resources(generated_lake),
        instance=instance,
        tags={RANGE_START: "2024-12-23", RANGE_END: "2024-12-27"},
        raise_on_error=False,
    )
    assert result.success
    # Sessions 12-23, 12-26, 12-27 (Christmas Eve and Day closed), and 2025-01-02, the next
    # landing date (12-30 has none), recomputed with them and checked too.
    days = ["2024-12-23", "2024-12-26", "2024-12-27", "2025-01-02"]
    mats = [(e.asset_key, e.partition) for e in result.get_asset_materialization_events()]
    assert sorted(mats, key=str) == sorted(
        ((MART_KEYS[n], d) for n in MART_NAMES for d in days), key=str
    )
    statuses = _statuses(result)
    assert len(statuses) == 4 * len(days) and all(statuses.values())
    for name in MART_NAMES:
        assert instance.get_materialized_partitions(MART_KEYS[name]) == set(days)
    catalog = DuckDBCatalog(generated_lake)
    assert catalog.query("SELECT count(*) FROM ibov_indicadores").rows == [(len(days),)]

    # Bad stored rows (2024's sectors lost Financeiro): the checks alone fail those dates.
    _corrupt(generated_lake, "ibov_setores", 2024, lambda t: t.filter(
        pc.invert(pc.equal(t.column("setor"), "Financeiro"))))  # fmt: skip
    checks = dg.materialize(
        [ibov_marts, ibov_marts_checks],
        selection=dg.AssetSelection.checks_for_assets(*MART_KEYS.values()),
        resources=_resources(generated_lake),
        instance=instance,
        tags={RANGE_START: "2024-12-23", RANGE_END: "2024-12-27"},
        raise_on_error=False,
    )
    failed = {k for k, passed in _statuses(checks).items() if not passed}
    assert failed == {
        ("weights_add_up_to_100", d) for d in ("2024-12-23", "2024-12-26", "2024-12-27")
    }


def test_run_with_a_missing_landing_date_fails_naming_it(
    generated_lake: Path, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [ibov_marts],
        resources=_resources(generated_lake),
        instance=instance,
        tags={RANGE_START: "2025-01-02", RANGE_END: "2025-01-06"},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "2025-01-06: no landing file for 2025-01-06" in message
    assert "materialize landing/ibov_portfolio" in message
    # The dates it did compute (and the follower 01-07) are recorded and stored.
    recorded = instance.get_materialized_partitions(MART_KEYS["ibov_indicadores"])
    assert recorded == {"2025-01-02", "2025-01-03", "2025-01-07"}


@pytest.mark.slow  # matplotlib: 5-15 s on a busy machine
def test_report_charts_of_the_marts(generated_lake: Path, tmp_path: Path) -> None:
    from b3_assets.reports.report import ReportError
    from b3_assets.reports.report_marts import marts_report

    build_marts(LocalLake(generated_lake), sorted(GENERATED))
    catalog = DuckDBCatalog(generated_lake)
    report = marts_report(catalog, date(2025, 1, 2))
    assert report.previous == date(2024, 12, 27)
    assert report.entered == ("AZUL4", "EZTC3", "ITUB3", "PETR3") and report.left == ()
    assert report.sectors == len({*SECTORS.values()}) + 1  # and the unclassified
    for png in (report.sectors_png, report.movements_png, report.concentration_png):
        assert png.startswith(b"\x89PNG") and len(png) < 100_000
    assert marts_report(catalog, date(2025, 1, 2)) == report  # deterministic bytes
    first = marts_report(catalog, date(2024, 12, 23))
    assert first.previous is None and first.entered == first.left == ()
    with pytest.raises(ReportError, match="no row for 2024-12-30.*materialize marts/"):
        marts_report(catalog, date(2024, 12, 30))


# --- AWS: the bucket's year files, the Glue tables -----------------------------------------


@pytest.fixture
def s3_lake(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Lake:
    use_moto(monkeypatch, moto.endpoint)
    s3 = moto.client("s3")
    bucket = unique_name("b3-lake")
    s3.create_bucket(Bucket=bucket)
    return S3Lake(bucket, s3)


def test_s3_lake_same_rows_and_a_concurrent_write_is_never_lost(s3_lake: S3Lake) -> None:
    tables = generated_tables()
    for day, table in tables.items():
        s3_lake.write_bytes(landing_key(day), landing_parquet(table))
    run = build_marts(s3_lake, sorted(tables))
    assert run.problems == {}
    store = MartStore(s3_lake)
    expected = expected_all(tables)
    for name in MART_NAMES:
        assert store.years(name) == [2024, 2025]
        got = [r for y in (2024, 2025) for r in store.read(name, y).to_pylist()]
        assert got == expected[name], name

    # Another run writes 2025 between this run's read and its PUT: the PUT is refused
    # (If-Match) and the patch applied again on top of the other run's file.
    name, day = "ibov_indicadores", date(2025, 1, 7)
    other_rows = store.read(name, 2025).filter(
        pc.equal(store.read(name, 2025).column("data_carteira"), date(2025, 1, 2))
    )

    mine = store.read(name, 2025).filter(
        pc.equal(store.read(name, 2025).column("data_carteira"), day)
    )
    racing = _racing_lake(S3Lake, s3_lake.bucket, s3_lake.client, other=store, name=name,
                          rows=other_rows.slice(0, 0))
    MartStore(racing).replace(name, 2025, {day}, mine)
    days = set(store.read(name, 2025).column("data_carteira").to_pylist())
    assert racing.raced and date(2025, 1, 2) not in days and day in days


def _racing_lake(kind: type, *args: Any, other: MartStore, name: str, rows: pa.Table) -> Any:
    """A lake of ``kind`` where another run (``other``) replaces 2025-01-02's rows of ``name``
    right after this run's first read of the year file."""

    class Racing(kind):  # type: ignore[misc, valid-type]
        raced = False

        def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
            got = super().read_versioned(key)
            if not self.raced:
                self.raced = True
                other.replace(name, 2025, {date(2025, 1, 2)}, rows)
            return got

    return Racing(*args)


def test_local_lake_a_concurrent_write_is_never_lost(tmp_path: Path) -> None:
    lake_root = tmp_path
    """The folder lake's year files are written like S3's: only if unchanged since read."""
    tables = generated_tables()
    land(lake_root, tables)
    assert build_marts(LocalLake(lake_root), sorted(tables)).problems == {}
    store = MartStore(LocalLake(lake_root))
    name, day = "ibov_indicadores", date(2025, 1, 7)
    year = store.read(name, 2025)
    mine = year.filter(pc.equal(year.column("data_carteira"), day))
    racing = _racing_lake(LocalLake, lake_root, other=store, name=name, rows=mine.slice(0, 0))
    MartStore(racing).replace(name, 2025, {day}, mine)
    days = set(store.read(name, 2025).column("data_carteira").to_pylist())
    assert racing.raced and date(2025, 1, 2) not in days and day in days


def test_glue_tables_of_the_marts(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    use_moto(monkeypatch, moto.endpoint)
    glue = moto.client("glue")
    database = unique_name("b3db").replace("-", "_")
    location = f"s3://{unique_name('b3-lake')}/marts/ibov_setores/"
    assert ensure_mart_table(glue, database, "ibov_setores", location) == "created"
    assert ensure_mart_table(glue, database, "ibov_setores", location) == "unchanged"
    table = glue.get_table(DatabaseName=database, Name="ibov_setores")["Table"]
    sd = table["StorageDescriptor"]
    assert sd["Location"] == location and table.get("PartitionKeys", []) == []
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        (c.name, c.glue_type) for c in MART_COLUMNS["ibov_setores"]
    ]
    assert "ParquetHiveSerDe" in sd["SerdeInfo"]["SerializationLibrary"]
    moved = location.replace("b3-lake", "b3-other")
    assert ensure_mart_table(glue, database, "ibov_setores", moved) == "updated"
    # The Athena catalog publishes every mart through a Glue client at moto's endpoint.
    athena = AthenaCatalog(moto.client("athena"), database, "primary")
    assert athena.glue().meta.endpoint_url == moto.endpoint
    athena.publish_marts({n: f"s3://b/marts/{n}/" for n in MART_NAMES})
    names = {t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert names == set(MART_NAMES)


@pytest.mark.slow  # ~10 s: S3, Glue and Athena calls over HTTP to moto
def test_dagster_run_on_the_aws_resources(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same asset on the bucket and Athena's catalog: year files in S3, Glue tables."""
    from b3_assets.platform.resources import AthenaCatalogResource, S3LakeResource

    use_moto(monkeypatch, moto.endpoint)
    s3, glue = moto.client("s3"), moto.client("glue")
    bucket, database = unique_name("b3-lake"), unique_name("b3db").replace("-", "_")
    s3.create_bucket(Bucket=bucket)
    lake = S3Lake(bucket, s3)
    tables = generated_tables()
    for day in (date(2024, 12, 23), date(2024, 12, 26)):
        lake.write_bytes(landing_key(day), landing_parquet(tables[day]))
    aws = {"region": "us-east-1", "endpoint_url": moto.endpoint}
    resources = {
        "lake": S3LakeResource(bucket=bucket, **aws),
        "catalog": AthenaCatalogResource(database=database, workgroup="primary", **aws),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [ibov_marts, ibov_marts_checks],
            resources=resources,
            instance=instance,
            tags={RANGE_START: "2024-12-23", RANGE_END: "2024-12-26"},
            raise_on_error=False,
        )
    assert result.success
    assert all(_statuses(result).values()) and len(_statuses(result)) == 8
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="marts/")["Contents"]}
    assert keys == {mart_year_key(n, 2024) for n in MART_NAMES}
    for name in MART_NAMES:
        table = glue.get_table(DatabaseName=database, Name=name)["Table"]
        assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/marts/{name}/"


# --- a 3-year backfill: fast ----------------------------------------------------------------


@pytest.mark.slow
def test_a_750_date_backfill_is_one_query_per_mart_and_one_write_per_year(
    tmp_path: Path,
) -> None:
    days = trading_days(date(2023, 1, 2), date(2026, 1, 30))[:750]
    base = landing_table(days[0], seed=1)
    lake = LocalLake(tmp_path)
    for i, day in enumerate(days):  # the same rows re-dated, a class in and out now and then
        table = base.set_column(
            0, base.schema.field(0), pa.array([day] * base.num_rows, pa.date32())
        )
        if i % 50 == 25:
            table = table.slice(1)
        lake.write_bytes(landing_key(day), landing_parquet(table))
    start = time.perf_counter()
    run = build_marts(lake, days)
    elapsed = time.perf_counter() - start
    assert run.problems == {} and len(run.computed) == 750
    years = sorted({d.year for d in days})
    for name in MART_NAMES:
        assert MartStore(lake).years(name) == years
    assert len(stored(tmp_path, "ibov_indicadores")) == 750
    assert elapsed < 30, f"750 dates took {elapsed:.1f} s"


def test_plot_a_sectors_weight_history(tmp_path, monkeypatch, capsys):
    """`b3-pipeline plot --sector`: the sector's line from ibov_setores, or the known ones."""
    from datetime import date as _date

    from b3_assets.cli import main
    from b3_assets.marts.compute import build_marts
    from b3_assets.platform.resources import resources_for
    from b3_assets.settings import Settings
    from b3_assets_tests.support.landing_factory import landing_table, write_landing

    days = [_date(2025, 3, 18), _date(2025, 3, 19)]
    for day in days:
        table = landing_table(day)
        n = table.num_rows
        import pyarrow as pa

        for name in ("setor_b3", "setor", "subsetor"):
            if name in table.column_names:
                table = table.drop_columns([name])
        table = table.append_column("setor_b3", pa.array(["Financ e Outros"] * n))
        table = table.append_column("setor", pa.array(["Financeiro"] * n))
        table = table.append_column("subsetor", pa.array(["Bancos"] * n))
        write_landing(tmp_path, table)
    lake = resources_for(Settings(data_dir=tmp_path))["lake"].get()
    build_marts(lake, days)
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    out = tmp_path / "fin.png"
    assert main(["plot", "--sector", "Financeiro", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main(["plot", "--sector", "Financas"]) == 1
    assert "Financeiro" in capsys.readouterr().err
