"""The one refine SQL gives identical rows and types on Spark 3.5.4 (Glue 5.0) and DuckDB.

Spark's rows are written to Parquet and read back with pyarrow, so the comparison covers
what lands in the lake (Decimal, date, str, UTC timestamps), not only what collect() shows.
This is the one Spark-vs-DuckDB proof; test_glue_job.py tests how the job publishes rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

from b3_assets.source.parse import parse_csv
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from b3_assets_tests.support.spark import local_spark
from glue.transform import REFINED_SCHEMA, refine_duckdb, refine_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

PROCESSADO_EM = datetime(2025, 3, 5, 21, 45, 0, 654321, tzinfo=UTC)
D0228 = date(2025, 2, 28)
D0305 = date(2025, 3, 5)




@pytest.fixture(scope="module")
def spark(request: pytest.FixtureRequest) -> SparkSession:
    return local_spark(request)


def spark_rows(
    spark: SparkSession,
    tmp_path: Path,
    current: Path,
    previous: Path | None,
    anterior: date | None,
) -> list[dict[str, object]]:
    df = refine_spark(
        spark,
        f"file://{current}",  # not as_uri(): Hadoop would not decode its %3D for '='
        f"file://{previous}" if previous else None,
        D0305,
        anterior,
        PROCESSADO_EM,
    )
    collected = [r["Acao"] for r in df.select("Acao").collect()]
    assert collected == sorted(collected)  # ORDER BY Acao holds on Spark too
    out = tmp_path / "spark_out"
    df.coalesce(1).write.mode("overwrite").parquet(f"file://{out}")
    table = pq.read_table(out).sort_by("Acao")
    # Same names and types; Spark marks some columns required, which readers ignore.
    assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in REFINED_SCHEMA]
    return table.to_pylist()


def test_same_rows_with_issuers_joining_leaving_and_extra_classes(
    spark: SparkSession, tmp_path: Path
) -> None:
    previous = write_landing(tmp_path, landing_table(D0228, seed=11, drop={"AZUL"}, add={"GOLL4"}))
    current = write_landing(tmp_path, landing_table(D0305, seed=11, add={"ITUB3", "USIM3"}))

    duck = refine_duckdb(current, previous, D0305, D0228, PROCESSADO_EM).to_pylist()
    rows = spark_rows(spark, tmp_path, current, previous, D0228)

    assert rows == duck
    assert len(rows) == 84  # ITUB3 and USIM3 join issuers already there
    by_acao = {r["Acao"]: r for r in rows}
    assert by_acao["AZUL"]["variacao_participacao_pp"] is None
    assert by_acao["USIM"]["empresa"] == "USIMINAS"
    assert by_acao["PETR"]["processado_em"] == PROCESSADO_EM


def test_same_rows_without_previous_date(spark: SparkSession, tmp_path: Path) -> None:
    current = write_landing(tmp_path, landing_table(D0305, seed=12))

    duck = refine_duckdb(current, None, D0305, None, PROCESSADO_EM).to_pylist()
    rows = spark_rows(spark, tmp_path, current, None, None)

    assert rows == duck
    assert {r["dias_desde_carteira_anterior"] for r in rows} == {None}


def test_same_rows_on_real_b3_portfolios(
    spark: SparkSession, samples_dir: Path, tmp_path: Path
) -> None:
    """IBOV of 2025-03-05 against 2025-02-28, as B3 published them."""
    paths = {}
    for day, name in ((D0228, "IBOVDia_28-02-25.csv"), (D0305, "IBOVDia_05-03-25.csv")):
        csv = samples_dir / "csv_utf8_no_title" / name
        portfolio = parse_csv(csv.read_bytes(), str(csv), PROCESSADO_EM, day)
        paths[day] = write_landing(tmp_path, portfolio.to_landing_table())

    duck = refine_duckdb(paths[D0305], paths[D0228], D0305, D0228, PROCESSADO_EM).to_pylist()
    rows = spark_rows(spark, tmp_path, paths[D0305], paths[D0228], D0228)

    assert rows == duck
    assert len(rows) == 84
