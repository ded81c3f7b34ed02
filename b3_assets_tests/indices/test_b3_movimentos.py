"""marts/b3_movimentos: who entered and left every index. The SQL (Athena's dialect, run on
DuckDB) equals plain set differences per index, each index against its own previous landing
date (an index missing one day never "leaves"), one file per year, a rerun replaces; the
per-date check reads what is stored. Then through Dagster against the replica: two weekdays
with a membership change, the movements in catalog.duckdb, one check result per date; and a
partial run records a failed landing check naming the missing index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from b3_assets.indices.assets import CARTEIRAS_CHECK, MOVIMENTOS_CHECK
from b3_assets.indices.movimentos import (
    B3_MOVIMENTOS_TABLE,
    build_movimentos,
    movimentos_outcome,
    movimentos_store,
    stored_movimentos,
)
from b3_assets.keys import B3_MOVIMENTOS, LANDING_CARTEIRAS
from b3_assets.marts.queries import duckdb_mart_sql, mart_sql
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.storage.lake import LocalLake
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.support.chain import check_results, failure_message, local_platform
from glue.layout import INDEX_TABLE_COLUMNS, MART_B3_MOVIMENTOS, carteiras_key

WED, THU, FRI, MON = date(2025, 3, 5), date(2025, 3, 6), date(2025, 3, 7), date(2025, 3, 10)
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def carteira(day: date, indices: Mapping[str, Sequence[str]]) -> pa.Table:
    """A carteiras.parquet of ``day``: each index's codes with equal weights (exact)."""
    rows = []
    for index, codes in sorted(indices.items()):
        part = (Decimal(100) / len(codes)).quantize(Decimal("0.001"))
        for code in sorted(codes):
            rows.append({
                "data_carteira": day, "indice": index, "codigo": code, "acao": f"CIA {code}",
                "tipo": "ON NM", "qtde_teorica": 1_000, "participacao_pct": part,
                "qtde_teorica_total": 1_000 * len(codes), "redutor": Decimal("1.00000000"),
                "coletado_em": datetime(2025, 3, 5, 11, 0, tzinfo=UTC), "setor_b3": None,
                "setor": None, "subsetor": None})
    return pa.Table.from_pylist(rows, schema=LANDING_SCHEMA)


def land(lake: LocalLake, day: date, indices: Mapping[str, Sequence[str]]) -> None:
    lake.write_bytes(carteiras_key(day), landing_parquet(carteira(day, indices)))


def moves(lake: LocalLake, day: date) -> set[tuple[str, str, str, date | None]]:
    return {(r["indice"], r["movimento"], r["codigo"], r["data_carteira_anterior"])
            for r in stored_movimentos(lake, [day])[day]}


def test_sql_is_athena_dialect_with_the_contract_columns() -> None:
    sql = mart_sql(MART_B3_MOVIMENTOS)
    for dialect in ("athena", "trino"):
        (tree,) = sqlglot.parse(sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        assert not list(tree.find_all(exp.Anonymous)), "a function Athena may not have"
        assert sqlglot.parse_one(tree.sql(dialect=dialect), read=dialect) == tree
    tables = {t.name for t in tree.find_all(exp.Table)} - {c.alias for c in tree.find_all(exp.CTE)}
    assert tables == {"carteira_atual", "carteira_anterior", "execucao"}
    out = [s.alias_or_name for s in tree.selects]
    assert out == [c.name for c in INDEX_TABLE_COLUMNS[MART_B3_MOVIMENTOS]]
    assert out == ["data_carteira", "data_carteira_anterior", "indice", "codigo", "acao",
                   "movimento", "participacao_pct"]
    assert not list(sqlglot.parse_one(duckdb_mart_sql(MART_B3_MOVIMENTOS), read="duckdb")
                    .find_all(exp.Div))


def test_each_index_against_its_own_previous_date(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    land(lake, WED, {"IBOV": ["A3", "B3", "C3"], "SMLL": ["S1", "S2", "S3"]})
    land(lake, THU, {"IBOV": ["A3", "B3", "D3"]})  # SMLL's collection failed on Thursday
    land(lake, FRI, {"IBOV": ["A3", "B3", "D3"], "SMLL": ["S1", "S2", "S4"], "NOVO": ["N1"]})
    run = build_movimentos(lake, [WED, THU, FRI])
    assert run.computed == [WED, THU, FRI]
    assert moves(lake, WED) == set()  # the first date: nothing to compare with
    assert moves(lake, THU) == {("IBOV", "entrada", "D3", WED), ("IBOV", "saida", "C3", WED)}
    # SMLL against Wednesday (its last landing), not "every ticker left on Thursday"; NOVO new.
    assert moves(lake, FRI) == {("SMLL", "entrada", "S4", WED), ("SMLL", "saida", "S3", WED)}
    row = next(r for r in stored_movimentos(lake, [THU])[THU] if r["movimento"] == "saida")
    assert row["participacao_pct"] == Decimal("33.333")  # the exit's weight on WED, exact
    assert isinstance(row["participacao_pct"], Decimal)
    # One file per year, the contract's schema; the per-date check passes on what is stored.
    assert [p.name for p in (tmp_path / "marts/b3_movimentos").glob("*.parquet")] == [
        "ano=2025.parquet"]
    assert movimentos_store(lake).read(MART_B3_MOVIMENTOS, 2025).schema == (
        B3_MOVIMENTOS_TABLE.schema)
    for day in (WED, THU, FRI):
        passed, meta = movimentos_outcome(lake, day, stored_movimentos(lake, [day])[day])
        assert passed, meta
    passed, meta = movimentos_outcome(lake, FRI, stored_movimentos(lake, [FRI])[FRI])
    assert meta["indices_without_previous_date"] == "NOVO" and meta["entradas"] == 1


def test_a_late_landing_recomputes_the_next_date_and_reruns_never_duplicate(
        tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    land(lake, WED, {"IBOV": ["A3", "B3"]})
    land(lake, FRI, {"IBOV": ["A3", "C3"]})
    build_movimentos(lake, [WED, FRI])
    assert moves(lake, FRI) == {("IBOV", "entrada", "C3", WED), ("IBOV", "saida", "B3", WED)}
    land(lake, THU, {"IBOV": ["A3", "C3"]})  # Thursday landed late (a gap filled)
    run = build_movimentos(lake, [THU])
    assert run.plan.followers == [FRI]
    assert moves(lake, FRI) == set()  # Friday now against Thursday: nothing moved
    assert moves(lake, THU) == {("IBOV", "entrada", "C3", WED), ("IBOV", "saida", "B3", WED)}
    build_movimentos(lake, [THU, FRI])
    build_movimentos(lake, [THU])
    assert len(stored_movimentos(lake, [THU])[THU]) == 2  # replaced, never doubled
    assert build_movimentos(lake, [MON]).plan.missing == [MON]


def test_the_check_names_the_index_whose_stored_rows_differ(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    land(lake, WED, {"IBOV": ["A3", "B3"], "SMLL": ["S1"]})
    land(lake, THU, {"IBOV": ["A3", "C3"], "SMLL": ["S1"]})
    build_movimentos(lake, [WED, THU])
    rows = stored_movimentos(lake, [THU])[THU]
    tampered = [r for r in rows if r["movimento"] != "saida"]
    tampered.append({**rows[0], "indice": "SMLL", "codigo": "X9"})
    passed, meta = movimentos_outcome(lake, THU, tampered)
    assert not passed
    assert ("IBOV (expected entradas C3, saidas B3 against 2025-03-05; stored entradas C3, "
            "saidas none)") in meta["differences"]
    assert "SMLL" in meta["differences"] and "daily_b3_indices" in meta["fix"]


# --- through Dagster, against the replica ------------------------------------------------


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _run(platform, instance: dg.DagsterInstance, day: date) -> dg.ExecuteInProcessResult:
    return platform.defs.resolve_job_def("daily_b3_indices").execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False)


def _swap_one_member(rows: list[dict], index: str) -> tuple[str, str]:
    """GetStockIndex rows where ``index`` lost its first member and gained a ticker of
    another index (what a rebalance does); returns (left, entered)."""
    members = sorted(r["code"] for r in rows if index in r["indexes"].split(","))
    outsider = sorted(r["code"] for r in rows if index not in r["indexes"].split(","))[0]
    for r in rows:
        codes = [c for c in r["indexes"].split(",") if c]
        if r["code"] == members[0]:
            r["indexes"] = ",".join(c for c in codes if c != index)
        elif r["code"] == outsider:
            r["indexes"] = ",".join([*codes, index])
    return members[0], outsider


def test_two_weekdays_land_the_movements_of_every_index_in_the_catalog(
        b3_replica, tmp_path: Path, instance: dg.DagsterInstance) -> None:
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert b3_replica.portfolio.data_carteira == WED
    first = _run(platform, instance, WED)
    assert first.success, failure_message(first)
    # Thursday: B3 serves the next portfolios, SMLL with one member swapped.
    rows = b3_replica.stock_index_rows()
    left, entered = _swap_one_member(rows, "SMLL")
    b3_replica.set_portfolio(THU)
    b3_replica.set_stock_index_rows(rows)
    second = _run(platform, instance, THU)
    assert second.success, failure_message(second)
    with duckdb.connect(str(tmp_path / "catalog.duckdb"), read_only=True) as con:
        smll = con.execute("SELECT data_carteira_anterior, codigo, movimento FROM b3_movimentos "
                           "WHERE indice = 'SMLL' AND data_carteira = ? ORDER BY movimento",
                           [THU]).fetchall()
        wed = con.execute("SELECT count(*) FROM b3_movimentos WHERE data_carteira = ?",
                          [WED]).fetchone()
    assert smll == [(WED, entered, "entrada"), (WED, left, "saida")]
    assert wed == (0,)
    event = instance.get_latest_materialization_event(B3_MOVIMENTOS)
    assert event.asset_materialization.partition == THU.isoformat()
    assert f"| SMLL | {entered} | {left} |" in (
        event.asset_materialization.metadata["movimentos"].value)
    for day in (WED, THU):
        assert check_results(instance, B3_MOVIMENTOS, [MOVIMENTOS_CHECK.name], day.isoformat()) == {
            MOVIMENTOS_CHECK.name: "SUCCEEDED"}
    # Through the CLI's engine too (b3-pipeline query).
    assert platform.catalog.query("SELECT count(*) FROM b3_movimentos WHERE indice = ? AND "
                                  "data_carteira = ?", ["SMLL", THU]).rows == [(2,)]


def test_a_partial_run_records_a_failed_check_naming_the_missing_index(
        b3_replica, tmp_path: Path, instance: dg.DagsterInstance) -> None:
    platform = local_platform(tmp_path, b3_replica.base_url)
    b3_replica.fault("5xx", index="IFIX")
    result = _run(platform, instance, WED)
    assert not result.success and "2025-03-05 IFIX" in failure_message(result)
    checks = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    landing = next(c for c in checks if c.check_name == CARTEIRAS_CHECK.name)
    assert not landing.passed and landing.partition == WED.isoformat()
    assert landing.metadata["missing_indices"].value == "IFIX"
    assert landing.metadata["broken_rules"].value == "none"  # what landed is valid
    assert check_results(instance, LANDING_CARTEIRAS, [CARTEIRAS_CHECK.name],
                         WED.isoformat()) == {CARTEIRAS_CHECK.name: "FAILED"}
    # The movements of what landed are computed and pass; nothing is marked failed for them.
    assert check_results(instance, B3_MOVIMENTOS, [MOVIMENTOS_CHECK.name], WED.isoformat()) == {
        MOVIMENTOS_CHECK.name: "SUCCEEDED"}
    assert instance.get_latest_materialization_event(B3_MOVIMENTOS) is not None


def test_glue_tables_of_every_index(moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """On AWS the same step publishes the four tables to Glue (unpartitioned Parquet over
    their folders, the contract's columns), so Athena reads them."""
    from b3_assets.platform.catalog import AthenaCatalog
    from b3_assets_tests.support.moto_server import unique_name, use_moto
    from glue.layout import INDEX_TABLE_NAMES, index_table_prefix

    use_moto(monkeypatch, moto.endpoint)
    database = unique_name("b3db").replace("-", "_")
    athena = AthenaCatalog(moto.client("athena"), database, "primary")
    bucket = unique_name("b3-lake")
    athena.publish_index_tables({n: f"s3://{bucket}/{index_table_prefix(n)}/"
                                 for n in INDEX_TABLE_NAMES})
    glue = moto.client("glue")
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert set(tables) == {"b3_carteiras", "b3_composicao", "b3_indices_fechamento",
                           "b3_movimentos"}
    for name, table in tables.items():
        sd = table["StorageDescriptor"]
        assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
            (c.name, c.glue_type) for c in INDEX_TABLE_COLUMNS[name]]
        assert sd["Location"] == f"s3://{bucket}/{index_table_prefix(name)}/"
        assert table.get("PartitionKeys", []) == []
        assert "ParquetHiveSerDe" in sd["SerdeInfo"]["SerializationLibrary"]
    assert tables["b3_movimentos"]["StorageDescriptor"]["Location"].endswith(
        "/marts/b3_movimentos/")


def test_plot_an_index_and_query_the_new_tables(tmp_path: Path, monkeypatch, capsys) -> None:
    """`b3-pipeline plot --indice SMLL`: its closes above its latest top weights (titled with
    the latest entries and exits); an unknown code names the known ones; `query` answers."""
    import pyarrow.parquet as pq

    from b3_assets.cli import main
    from b3_assets.indices.assets import index_store
    from glue.layout import TABLE_CARTEIRAS, levels_key

    lake = LocalLake(tmp_path)
    tables = {WED: {"SMLL": ["S1", "S2", "S3"]}, THU: {"SMLL": ["S1", "S2", "S4"]}}
    for day, indices in tables.items():
        land(lake, day, indices)
        index_store(lake).replace(TABLE_CARTEIRAS, 2025, {day}, carteira(day, indices))
    build_movimentos(lake, [WED, THU])
    closes = pa.table({"indice": ["SMLL"] * 2, "data": [WED, THU],
                       "fechamento": [Decimal("2101.35"), Decimal("2088.10")]},
                      schema=pa.schema([("indice", pa.string()), ("data", pa.date32()),
                                        ("fechamento", pa.decimal128(18, 2))]))
    (tmp_path / levels_key("SMLL", 2025)).parent.mkdir(parents=True)
    pq.write_table(closes, tmp_path / levels_key("SMLL", 2025))
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    out = tmp_path / "smll.png"
    assert main(["plot", "--indice", "smll", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main(["plot", "--indice", "SMLX"]) == 1
    assert "Did you mean SMLL?" in capsys.readouterr().err
    assert main(["query", "SELECT indice, movimento, codigo FROM b3_movimentos "
                          "WHERE data_carteira = DATE '2025-03-06' ORDER BY movimento"]) == 0
    printed = capsys.readouterr().out
    assert "entrada" in printed and "S4" in printed and "S3" in printed
