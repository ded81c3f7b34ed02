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

from b3_assets.catalog import AthenaCatalog, QueryError
from b3_assets.checks import refined_rows_by_date
from b3_assets.quality import refined_checks
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


def test_refined_checks_on_athena(world: World) -> None:
    """checks.refined_rows_by_date + quality.refined_checks: what the refined checks evaluate
    on AWS (before: KeyError 'DataCarteira' on Athena's lower-case labels)."""
    rows = refined_rows_by_date(world.catalog(), D1.isoformat(), D2.isoformat())
    assert sorted(rows) == [D1.isoformat(), D2.isoformat()]
    for day in (D1, D2):
        outcomes = refined_checks(rows[day.isoformat()], world.landing[day])
        assert outcomes["one_row_per_issuer"][0], outcomes["one_row_per_issuer"]
        assert outcomes["participations_add_up_to_100"][0]
