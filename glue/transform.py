"""The one refine transform (``refine.sql``), run on Spark (AWS Glue) or on DuckDB (local).

This module is shipped to Glue on its own (``--extra-py-files``), so it imports only the
standard library and pyarrow at the top; duckdb and sqlglot (local engine only, absent on
Glue 5.0) and pyspark are imported where used; never ``b3_assets``. The SQL is read as
package data so it also loads from a zip.
"""

from __future__ import annotations

import contextlib
import functools
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from glue.layout import PARTITION_COLUMNS, REFINED_COLUMNS

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import DataFrame, SparkSession

SQL_RESOURCE = "refine.sql"


def arrow_type(glue_type: str) -> pa.DataType:
    """The Arrow type of a Glue column type, as Spark and the local writer store it."""
    if glue_type.startswith("decimal("):
        precision, scale = glue_type[len("decimal(") : -1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }[glue_type]


#: The refined rows as the SQL returns them (glue/layout.py). All fields nullable, as Spark
#: writes them; the contract, not the schema, says which are null.
REFINED_SCHEMA = pa.schema([pa.field(c.name, arrow_type(c.glue_type)) for c in REFINED_COLUMNS])

#: The columns stored inside each refined Parquet file (the partition columns live in paths).
REFINED_FILE_SCHEMA = pa.schema([f for f in REFINED_SCHEMA if f.name not in PARTITION_COLUMNS])

EXECUCAO_SCHEMA = pa.schema(
    [
        pa.field("data_carteira", pa.date32()),
        pa.field("data_carteira_anterior", pa.date32()),
        pa.field("processado_em", pa.timestamp("us", tz="UTC")),
    ]
)


@functools.cache
def spark_sql() -> str:
    """The refine query as written (Spark SQL), read as package data so zips work too."""
    data = pkgutil.get_data(__name__, SQL_RESOURCE)
    if data is None:  # pragma: no cover - only with exotic loaders
        raise FileNotFoundError(f"{SQL_RESOURCE} not found beside {__name__}")
    return data.decode("utf-8")


@functools.cache
def duckdb_sql() -> str:
    """The refine query transpiled once from Spark SQL to DuckDB (cached for the process)."""
    import sqlglot  # local engine only: Glue 5.0 has neither sqlglot nor duckdb

    statements = sqlglot.transpile(spark_sql(), read="spark", write="duckdb")
    if len(statements) != 1:
        raise ValueError(f"{SQL_RESOURCE} must hold exactly one statement, not {len(statements)}")
    return statements[0]


def previous_landing_date(landing_dates: Iterable[date], data_carteira: date) -> date | None:
    """The latest landing date strictly before ``data_carteira`` (gaps allowed), or None."""
    earlier = [d for d in landing_dates if d < data_carteira]
    return max(earlier) if earlier else None


def publication_inputs(
    landing: Mapping[date, str | None], data_carteira: date, fingerprint: str
) -> dict[str, str | None]:
    """What a date's refine is built from: its landing file, its previous landing date and
    that date's file, each file by ``fingerprint`` (``sha256`` of a folder lake's bytes,
    ``etag`` on S3). A published date records these in ``_current.json``."""
    anterior = previous_landing_date(landing, data_carteira)
    return {
        f"landing_{fingerprint}": landing[data_carteira],
        "data_carteira_anterior": anterior.isoformat() if anterior else None,
        f"anterior_{fingerprint}": landing[anterior] if anterior else None,
    }


def stale_among(
    landing: Mapping[date, str | None],
    published: Callable[[date], Mapping[str, object] | None],
    fingerprint: str,
) -> list[date]:
    """Landing dates whose published refine is missing or was built from other inputs.

    Anything but the inputs as they are now — a landing write whose refine died or whose
    event was lost, a gap filled before the date, an earlier date corrected — makes a date
    stale; refining the stale dates in ascending order converges to a full backfill."""
    stale = []
    for day in sorted(landing):
        current = published(day) or {}
        expected = publication_inputs(landing, day, fingerprint)
        if any(current.get(k) != v for k, v in expected.items()):
            stale.append(day)
    return stale


# --- DuckDB ------------------------------------------------------------------------------


def _check_inputs(
    previous: object | None, data_carteira_anterior: date | None, processado_em: datetime
) -> None:
    if (previous is None) != (data_carteira_anterior is None):
        raise ValueError(
            "the previous landing file and data_carteira_anterior go together: give both or "
            f"neither (got file={previous!r}, date={data_carteira_anterior!r})"
        )
    if processado_em.tzinfo is None or processado_em.utcoffset() is None:
        raise ValueError(f"processado_em must be timezone-aware, got {processado_em!r}")


def execucao_table(
    data_carteira: date, data_carteira_anterior: date | None, processado_em: datetime
) -> pa.Table:
    """The one-row ``execucao`` view: the run's parameters as typed data, not SQL text."""
    return pa.Table.from_pylist(
        [
            {
                "data_carteira": data_carteira,
                "data_carteira_anterior": data_carteira_anterior,
                "processado_em": processado_em.astimezone(UTC),
            }
        ],
        schema=EXECUCAO_SCHEMA,
    )


#: Landing columns added after files were first written: absent in old files, read as null.
LATE_LANDING_COLUMNS = ("setor_b3", "setor", "subsetor")


def with_late_columns(table: pa.Table) -> pa.Table:
    """A landing table with the late columns present (null where an old file lacks them)."""
    for name in LATE_LANDING_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


class UnreadableLanding(ValueError):
    """A landing file the refine cannot read as Parquet (torn, overwritten, not Parquet)."""


def unreadable_landing_message(where: str, day: date, exc: BaseException) -> str:
    """What to say about the landing file of ``day`` (at ``where``) that ``exc`` could not
    read: the file, pyarrow's reason, and the fix (one wording for the refine and Dagster)."""
    # pyarrow's message repeats the path; its last clause says what is wrong.
    why = (str(exc).splitlines() or [type(exc).__name__])[0].split("': ")[-1][:200]
    return (
        f"the landing file of {day.isoformat()}, {where}, is unreadable ({why}). Fix: land "
        f"{day.isoformat()} again: re-materialize landing/ibov_portfolio for {day.isoformat()} "
        "(it rebuilds the file from the raw archive and refines the dates after it; if the "
        "raw payload is bad too, `b3-pipeline import-csv` B3's CSV of that day first)"
    )


def read_landing_file(path: str | Path, day: date, refining: date) -> pa.Table:
    """The landing file of ``day`` read for the refine of ``refining`` (the date itself, or
    the next landing date, whose previous portfolio it is).

    An unreadable file fails the refine of ``refining`` with :class:`UnreadableLanding`
    naming the file and the fix: a date is never refined against another previous date than
    the landing date before it, so a corrupt previous file holds its next date back too."""
    try:
        # partitioning=None: the file alone, without a `dt` column guessed from its folder.
        return pq.read_table(path, partitioning=None)
    except (OSError, pa.ArrowException) as exc:
        whose = "" if day == refining else "its previous landing date: "
        raise UnreadableLanding(
            f"{refining.isoformat()} was not refined (its published version, if any, is "
            f"untouched): {whose}{unreadable_landing_message(str(path), day, exc)}"
        ) from exc


def relation_to_arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A DuckDB result as Arrow, whichever DuckDB (the method was renamed in 1.4)."""
    to_table = getattr(relation, "to_arrow_table", None)  # duckdb >= 1.4; older: .arrow()
    return to_table() if to_table is not None else relation.arrow()


def interrupted_query(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB reporting an interrupt: the process is being stopped, never
    an error of one date to record and go past.

    A SIGTERM or Ctrl-C that arrives while a query runs reaches Python's signal handler inside
    DuckDB, which drops what the handler raised (Dagster's DagsterExecutionInterruptedError,
    KeyboardInterrupt) and raises ``RuntimeError("Query interrupted")`` instead (duckdb 2.0;
    ``con.interrupt()`` gives ``duckdb.InterruptException``). A per-date ``except Exception``
    would take it for that date's error and go on with the next dates."""
    if isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted"):
        return True
    try:
        import duckdb
    except ImportError:  # on Glue: no DuckDB, so no DuckDB interrupt
        return False
    return isinstance(exc, duckdb.InterruptException)


def as_interrupt(what: str) -> KeyboardInterrupt:
    """What to raise (``from`` DuckDB's report) for an interrupt that arrived while ``what``:
    an interrupt again, so no ``except Exception`` on the way up absorbs it."""
    return KeyboardInterrupt(f"interrupted (SIGTERM or Ctrl-C) while {what}: stopped")


@contextlib.contextmanager
def duckdb_session() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection for refines (opening one costs ~20 ms: a run of many
    dates shares it). Arrow timestamps come back in the session time zone: pinned to UTC."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def refine_duckdb(
    current_parquet: str | Path,
    previous_parquet: str | Path | None,
    data_carteira: date,
    data_carteira_anterior: date | None,
    processado_em: datetime,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Refine one date on DuckDB; returns rows sorted by Acao with exactly REFINED_SCHEMA.

    ``con``: a :func:`duckdb_session` to run in (else one is opened for this date)."""
    _check_inputs(previous_parquet, data_carteira_anterior, processado_em)
    current = with_late_columns(read_landing_file(current_parquet, data_carteira, data_carteira))
    previous = (
        with_late_columns(read_landing_file(previous_parquet, data_carteira_anterior,
                                            data_carteira))
        if previous_parquet is not None and data_carteira_anterior is not None
        else current.schema.empty_table()
    )
    if con is None:
        with duckdb_session() as own:
            return refine_duckdb(
                current_parquet,
                previous_parquet,
                data_carteira,
                data_carteira_anterior,
                processado_em,
                own,
            )
    con.register("carteira_atual", current)
    con.register("carteira_anterior", previous)
    con.register("execucao", execucao_table(data_carteira, data_carteira_anterior, processado_em))
    return conform_refined(relation_to_arrow(con.sql(duckdb_sql())))


def conform_refined(table: pa.Table) -> pa.Table:
    """Check the columns and cast to REFINED_SCHEMA; a lossy cast raises instead of rounding."""
    if table.column_names != REFINED_SCHEMA.names:
        raise ValueError(
            f"refine produced columns {table.column_names}, expected {REFINED_SCHEMA.names}"
        )
    return table.cast(REFINED_SCHEMA, safe=True)


# --- Spark -------------------------------------------------------------------------------


def refine_spark(
    spark: SparkSession,
    current_path: str,
    previous_path: str | None,
    data_carteira: date,
    data_carteira_anterior: date | None,
    processado_em: datetime,
) -> DataFrame:
    """Refine one date on Spark; returns the (lazy) DataFrame of the refined rows.

    The temp views are resolved when the query is analysed, so a later call that replaces
    them does not change a DataFrame already returned.
    """
    from pyspark.sql import functions as F

    _check_inputs(previous_path, data_carteira_anterior, processado_em)
    current = _spark_with_late_columns(spark.read.parquet(current_path))
    previous = (
        _spark_with_late_columns(spark.read.parquet(previous_path))
        if previous_path is not None
        else current.limit(0)
    )
    # Typed literals on the JVM side: no Python worker, and no values pasted into SQL text.
    execucao = spark.range(1).select(
        F.lit(data_carteira).cast("date").alias("data_carteira"),
        F.lit(data_carteira_anterior).cast("date").alias("data_carteira_anterior"),
        F.lit(processado_em.astimezone(UTC)).cast("timestamp").alias("processado_em"),
    )
    current.createOrReplaceTempView("carteira_atual")
    previous.createOrReplaceTempView("carteira_anterior")
    execucao.createOrReplaceTempView("execucao")
    return spark.sql(spark_sql())


def _spark_with_late_columns(frame: DataFrame) -> DataFrame:
    """Spark's twin of :func:`with_late_columns`: null strings for columns an old file lacks."""
    from pyspark.sql import functions as F

    for name in LATE_LANDING_COLUMNS:
        if name not in frame.columns:
            frame = frame.withColumn(name, F.lit(None).cast("string"))
    return frame
