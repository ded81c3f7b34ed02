"""Every Athena path of the project on the Athena twin (support/athena_twin.py): the SQL runs
on DuckDB over the objects the Glue job's own code wrote to moto's S3, found only through the
Glue catalog's table and partition locations, answered as GetQueryResults answers (lower-case
labels, values as text, 1000-row pages).

The data: two sessions refined by ``glue.job.run_job`` (Spark's write replaced by the DuckDB
transform, support/glue_without_spark.py), so partitions, ``_current.json``, the serving year
file and its ``b3_etl_soma_acao_historico`` partition are the job's own."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_assets.platform.catalog import AthenaCatalog, QueryError
from b3_assets.portfolio.checks import refined_rows_by_date
from b3_assets.portfolio.quality import refined_checks
from b3_assets_tests.support.athena_twin import (
    PAGE_ROWS,
    AthenaTwin,
    bind_parameters,
    install_twin,
    output_labels,
)
from b3_assets_tests.support.glue_without_spark import put_landing, run_glue_job
from b3_assets_tests.support.landing_factory import landing_table
from b3_assets_tests.support.moto_server import MotoServer, unique_name, use_moto
from glue.catalog import ensure_database, ensure_mart_table

D1, D2 = date(2025, 3, 5), date(2025, 3, 6)  # Wednesday, Thursday: two B3 sessions


@dataclass
class World:
    moto: MotoServer
    s3: Any
    glue: Any
    bucket: str
    database: str
    workgroup: str
    twin: AthenaTwin
    landing: dict[date, pa.Table]

    def catalog(self) -> AthenaCatalog:
        return AthenaCatalog(self.moto.client("athena"), self.database, self.workgroup,
                             timeout_s=10)  # fmt: skip

    def refine(self, monkeypatch: pytest.MonkeyPatch, dates: list[date], run_id: str,
               force: bool = False) -> dict[str, Any]:  # fmt: skip
        return run_glue_job(monkeypatch, self.s3, self.glue, self.bucket, self.database, dates,
                            run_id, force=force)  # fmt: skip


@pytest.fixture
def world(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    use_moto(monkeypatch, moto.endpoint)
    s3, glue = moto.client("s3"), moto.client("glue")
    bucket, database = unique_name("b3-twin"), f"b3_{uuid.uuid4().hex[:10]}"
    workgroup = unique_name("b3-pipeline")
    s3.create_bucket(Bucket=bucket)
    moto.client("athena").create_work_group(Name=workgroup)
    ensure_database(glue, database)
    twin = install_twin(monkeypatch, AthenaTwin(s3, glue, tmp_path))
    landing = {D1: landing_table(D1, seed=1), D2: landing_table(D2, seed=2)}
    for table in landing.values():
        put_landing(s3, bucket, table)
    w = World(moto, s3, glue, bucket, database, workgroup, twin, landing)
    w.refine(monkeypatch, [D1, D2], "jr_first")
    yield w


def _issuers(table: pa.Table) -> set[str]:
    from glue.layout import issuer_root

    return {issuer_root(c) for c in table.column("codigo").to_pylist()}


# --- the twin itself ---------------------------------------------------------------------------


def test_parameters_bind_outside_quotes_and_comments() -> None:
    sql = "SELECT '?' AS q, \"a?\" FROM t -- why?\nWHERE x = ? AND y = ?"
    assert bind_parameters(sql, ["'it''s'", "DATE '2025-03-05'"]) == (
        "SELECT '?' AS q, \"a?\" FROM t -- why?\nWHERE x = 'it''s' AND y = DATE '2025-03-05'"
    )
    with pytest.raises(Exception, match="expected 2 but found 1"):
        bind_parameters(sql, ["1"])


def test_labels_are_athenas() -> None:
    sql = "SELECT DataCarteira, Acao AS Acao, count(*), max(x) AS Top FROM t GROUP BY 1, 2"
    got = output_labels(sql, ["DataCarteira", "Acao", "count_star()", "Top"])
    assert got == ["datacarteira", "acao", "_col2", "top"]


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_refined_rows_as_athena_returns_them(world: World) -> None:
    """Lower-case labels, typed back by AthenaCatalog; partitions from the catalog."""
    result = world.catalog().query(
        "SELECT DataCarteira, Acao, participacao_total_pct, qtd_classes, data_carteira_anterior, "
        "processado_em FROM b3_etl_soma_acao WHERE DataCarteira = ? ORDER BY Acao",
        [D2.isoformat()],
    )
    assert result.columns == ["datacarteira", "acao", "participacao_total_pct", "qtd_classes",
                              "data_carteira_anterior", "processado_em"]  # fmt: skip
    rows = result.as_dicts()
    assert {r["acao"] for r in rows} == _issuers(world.landing[D2])
    assert {r["datacarteira"] for r in rows} == {D2.isoformat()}  # a string partition key
    assert {r["data_carteira_anterior"] for r in rows} == {D1}
    assert all(isinstance(r["participacao_total_pct"], Decimal) for r in rows)
    assert sum(r["participacao_total_pct"] for r in rows) == pytest.approx(
        Decimal(100), abs=Decimal("0.01")
    )
    (run,) = [e for e in world.twin.sent() if "participacao_total_pct, qtd_classes" in e.sql]
    assert run.params == [f"'{D2.isoformat()}'"]  # bound by "Athena", not pasted by us


def test_an_unknown_table_fails_naming_it(world: World) -> None:
    with pytest.raises(QueryError, match="FAILED: TABLE_NOT_FOUND.*b3_nope' does not exist"):
        world.catalog().query("SELECT 1 AS x FROM b3_nope")


def test_results_page_at_1000_rows_the_header_first(world: World) -> None:
    """A table of 2,345 rows (an unpartitioned Glue table like the marts) comes back whole
    through GetQueryResults' pages; the raw pages are Athena's."""
    n = 2345
    buf = io.BytesIO()
    pq.write_table(pa.table({"n": pa.array(range(n), pa.int64())}), buf)
    world.s3.put_object(Bucket=world.bucket, Key="marts/big/ano=2025.parquet", Body=buf.getvalue())
    world.s3.put_object(Bucket=world.bucket, Key="marts/big/_tmp/ano=2025.parquet", Body=b"junk")
    ensure_mart_table(
        world.glue, world.database, "ibov_movimentos", f"s3://{world.bucket}/marts/big/"
    )
    # (ibov_movimentos' Glue columns have no `n`: read the raw table through a column it has)
    spec = world.glue.get_table(DatabaseName=world.database, Name="ibov_movimentos")["Table"]
    sd = spec["StorageDescriptor"]
    sd["Columns"] = [{"Name": "n", "Type": "bigint"}]
    world.glue.update_table(DatabaseName=world.database, TableInput={
        "Name": "ibov_movimentos", "StorageDescriptor": sd, "PartitionKeys": [],
        "TableType": "EXTERNAL_TABLE"})  # fmt: skip
    result = world.catalog().query("SELECT n FROM ibov_movimentos ORDER BY n")
    assert [r[0] for r in result.rows] == list(range(n))  # _tmp/ is ignored, as by Hive

    athena = world.moto.client("athena")
    qid = athena.start_query_execution(
        QueryString="SELECT n AS N FROM ibov_movimentos ORDER BY n",
        WorkGroup=world.workgroup,
        QueryExecutionContext={"Database": world.database},
    )["QueryExecutionId"]
    while athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]["State"] \
            not in {"SUCCEEDED", "FAILED"}:  # fmt: skip
        pass
    pages = list(athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid))
    assert [len(p["ResultSet"]["Rows"]) for p in pages] == [
        PAGE_ROWS,
        PAGE_ROWS,
        n + 1 - 2 * PAGE_ROWS,
    ]
    assert pages[0]["ResultSet"]["Rows"][0] == {"Data": [{"VarCharValue": "n"}]}
    assert pages[0]["ResultSet"]["Rows"][1] == {"Data": [{"VarCharValue": "0"}]}
    info = pages[0]["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
    assert [(c["Name"], c["Type"]) for c in info] == [("n", "bigint")]


# --- the project's Athena paths -----------------------------------------------------------------


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_refined_checks_on_athena(world: World) -> None:
    """checks.refined_rows_by_date + quality.refined_checks: what the refined checks evaluate
    on AWS (before: KeyError 'DataCarteira' on Athena's lower-case labels)."""
    rows = refined_rows_by_date(world.catalog(), D1.isoformat(), D2.isoformat())
    assert sorted(rows) == [D1.isoformat(), D2.isoformat()]
    for day in (D1, D2):
        outcomes = refined_checks(rows[day.isoformat()], world.landing[day])
        assert outcomes["one_row_per_issuer"][0], outcomes["one_row_per_issuer"]
        assert outcomes["participations_add_up_to_100"][0]


@pytest.mark.slow  # ~16 s: every partition's object is read over HTTP from moto per query
def test_reports_on_athena(world: World) -> None:
    """report.py's queries: the day's composition and changes (b3_etl_soma_acao, one date's
    partitions) and an issuer's history (b3_etl_soma_acao_historico, the year's object)."""
    from b3_assets.reports.report import day_report, issuer_history_png, known_issuers, run_query

    catalog = world.catalog()
    report = day_report(catalog, D2)
    assert report is not None
    issuers = _issuers(world.landing[D2])
    assert set(known_issuers(catalog)) == issuers | _issuers(world.landing[D1])
    history = run_query(catalog, "issuer_history", ["PETR"])
    assert [r["data_carteira"] for r in history] == [D1.isoformat(), D2.isoformat()]
    assert all(r["acao"] == "PETR" for r in history)
    (sent,) = [e for e in world.twin.sent() if "b3_etl_soma_acao_historico" in e.sql][-1:]
    assert [t.name for t in sent.plan] == ["b3_etl_soma_acao_historico"]  # not ~21,000 partitions
    assert issuer_history_png(catalog, "PETR").startswith(b"\x89PNG")


def test_cli_query_on_athena(world: World, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """``b3-pipeline query`` with B3_ENV=aws: the table Athena's rows make, lower-case."""
    from b3_assets.cli import main

    monkeypatch.setenv("B3_ENV", "aws")
    monkeypatch.setenv("B3_BUCKET", world.bucket)
    monkeypatch.setenv("B3_GLUE_DATABASE", world.database)
    monkeypatch.setenv("B3_ATHENA_WORKGROUP", world.workgroup)
    monkeypatch.delenv("B3_ATHENA_OUTPUT", raising=False)
    sql = (
        "SELECT Acao, count(*) AS Datas FROM b3_etl_soma_acao_historico "
        "WHERE Acao IN ('PETR', 'VALE') GROUP BY Acao ORDER BY Acao"
    )
    assert main(["query", sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["acao", "datas"]
    assert any("PETR" in line and "2" in line for line in lines[1:])


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_a_reader_planned_before_a_republish_reads_after_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Athena plans from the catalog and reads later: a query planned on the first run's
    objects still reads them after a second run republished the date (they are kept for
    RETIRE_AFTER, glue/job.py and glue/serving.py), and a query planned after reads the new
    run's. Deleting them at once (what the job did before) fails the planned query."""
    athena = world.moto.client("athena")
    queries = {
        "refined": "SELECT count(*) AS n, max(processado_em) AS at FROM b3_etl_soma_acao "
        "WHERE DataCarteira = ?",
        "historico": "SELECT count(*) AS n, max(processado_em) AS at "
        "FROM b3_etl_soma_acao_historico WHERE DataCarteira = ?",
    }

    def start(sql: str) -> str:
        return athena.start_query_execution(
            QueryString=sql, WorkGroup=world.workgroup, ExecutionParameters=[f"'{D2}'"],
            QueryExecutionContext={"Database": world.database},
        )["QueryExecutionId"]  # fmt: skip

    def finish(qid: str) -> dict[str, Any]:
        while True:
            status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
            if status["State"] not in {"QUEUED", "RUNNING"}:
                return status

    def values(qid: str) -> list[str]:
        rows = athena.get_query_results(QueryExecutionId=qid)["ResultSet"]["Rows"]
        return [d["VarCharValue"] for d in rows[1]["Data"]]

    with world.twin.hold():
        planned = {name: start(sql) for name, sql in queries.items()}
        summary = world.refine(monkeypatch, [D2], "jr_second", force=True)
    assert summary["dates"][0]["objects_kept_for_readers"] > 0
    for name, qid in planned.items():
        status = finish(qid)
        assert status["State"] == "SUCCEEDED", (name, status.get("StateChangeReason"))
    before = {name: values(qid) for name, qid in planned.items()}
    fresh = {name: start(sql) for name, sql in queries.items()}
    after = {name: values(qid) for name, qid in fresh.items() if finish(qid)}
    n = str(len(_issuers(world.landing[D2])))
    for name in queries:
        assert before[name][0] == after[name][0] == n
        assert before[name][1] < after[name][1], name  # the first run's rows, then the second's

    # The control: the same planned query, the first version's objects deleted at once.
    with world.twin.hold():
        qid = start(queries["refined"])
        keys = [
            o.key for t in world.twin.executions[qid].plan for p in t.partitions for o in p.objects
        ]
        world.s3.delete_objects(
            Bucket=world.bucket, Delete={"Objects": [{"Key": k} for k in keys[:1]]}
        )
    status = finish(qid)
    assert status["State"] == "FAILED"
    assert "HIVE_CANNOT_OPEN_SPLIT" in status["StateChangeReason"]


def test_marts_published_and_queried_on_athena(world: World) -> None:
    """AthenaCatalog.publish_marts (Glue tables over marts/<name>/) and the marts' report
    queries (report_marts.py, report.py's sector history) read the year files through them."""
    import duckdb

    from b3_assets.reports.report import SECTOR_HISTORY_SQL
    from b3_assets.reports.report_marts import SETORES_SQL, TREND_SQL
    from glue.layout import MART_COLUMNS, MART_INDICADORES, MART_SETORES, duckdb_type, mart_prefix

    rows = {
        MART_SETORES: "SELECT DATE '2025-03-05', 'Financeiro', 20, 25.125 UNION ALL "
        "SELECT DATE '2025-03-06', 'Financeiro', 21, 25.5 UNION ALL "
        "SELECT DATE '2025-03-06', NULL, 2, 1.25",
        MART_INDICADORES: "SELECT DATE '2025-03-05', NULL, 87, 84, 0.061234, 16.331, 48.1, NULL "
        "UNION ALL SELECT DATE '2025-03-06', DATE '2025-03-05', 87, 84, 0.0612, 16.34, 48.2, 0.5",
    }
    for name, select in rows.items():
        cols = ", ".join(
            f'CAST(col{i} AS {duckdb_type(c.glue_type)}) AS "{c.name}"'
            for i, c in enumerate(MART_COLUMNS[name])
        )
        names = ", ".join(f"col{i}" for i in range(len(MART_COLUMNS[name])))
        with duckdb.connect() as con:
            table = con.sql(f"SELECT {cols} FROM ({select}) AS t({names})").to_arrow_table()
        buf = io.BytesIO()
        pq.write_table(table, buf)
        world.s3.put_object(
            Bucket=world.bucket, Key=f"{mart_prefix(name)}/ano=2025.parquet", Body=buf.getvalue()
        )
    catalog = world.catalog()
    catalog.publish_marts(
        {n: f"s3://{world.bucket}/{mart_prefix(n)}/" for n in (MART_SETORES, MART_INDICADORES)}
    )
    setores = catalog.query(SETORES_SQL, [D2]).as_dicts()
    assert [(r["setor"], r["qtd_acoes"], r["participacao_pct"]) for r in setores] == [
        ("Financeiro", 21, Decimal("25.500")),
        (None, 2, Decimal("1.250")),
    ]
    trend = catalog.query(TREND_SQL, [D2]).as_dicts()
    assert [r["data_carteira"] for r in trend] == [D1, D2]
    assert trend[0]["hhi"] == Decimal("0.061234")
    history = catalog.query(SECTOR_HISTORY_SQL, ["Financeiro"]).as_dicts()
    assert [r["participacao_pct"] for r in history] == [Decimal("25.125"), Decimal("25.500")]
