"""Query engines over the refined table ``b3_etl_soma_acao`` and the marts (``ibov_movimentos``,
``ibov_indicadores``, ``ibov_setores``): DuckDB locally, Athena on AWS.

Both take the same SQL with ``?`` placeholders bound by the engine (never values pasted into
SQL text), so the queries in ``sql/`` run unchanged on either."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
from botocore.exceptions import ClientError

from glue.layout import (
    INDEX_TABLE_COLUMNS,
    INDEX_TABLE_NAMES,
    MART_COLUMNS,
    MART_NAMES,
    REFINED_COLUMNS,
    SERVING_PREFIX,
    TABLE_FECHAMENTO,
    TABLE_NAME,
    Column,
    duckdb_type,
    index_table_prefix,
    mart_prefix,
)

log = logging.getLogger(__name__)

Param = str | int | Decimal | date


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class QueryError(RuntimeError):
    """A query failed; the message carries the engine's own error."""


class QueryEngine(ABC):
    name: str

    @abstractmethod
    def query(self, sql: str, params: Sequence[Param] = ()) -> QueryResult: ...

    def publish_marts(self, locations: Mapping[str, str]) -> None:
        """Make the marts' tables current in this catalog (mart name -> lake URI of its
        folder, ``…/marts/<name>/``), after their files were written."""
        raise NotImplementedError(f"the {self.name} catalog has no marts")

    def publish_index_tables(self, locations: Mapping[str, str]) -> None:
        """Make the index tables current (``b3_carteiras``, ``b3_composicao``,
        ``b3_indices_fechamento``, ``b3_movimentos``: name -> lake URI of its folder)."""
        raise NotImplementedError(f"the {self.name} catalog has no index tables")


def _empty_view_select(columns: Sequence[Column] = REFINED_COLUMNS) -> str:
    cols = ", ".join(f'CAST(NULL AS {duckdb_type(c.glue_type)}) AS "{c.name}"' for c in columns)
    return f"SELECT {cols} WHERE false"


def refined_view_sql(data_dir: Path) -> str:
    """The view over the serving copy of the refined table (one Parquet file per year).

    The glob is evaluated at every query, so the view stays current as dates are refined;
    each year file is replaced by one rename, so a reader sees a date whole, from one run."""
    serving = Path(data_dir).resolve() / SERVING_PREFIX
    if not any(serving.glob("ano=*.parquet")):
        select = _empty_view_select()
    else:
        literal = (serving / "ano=*.parquet").as_posix().replace("'", "''")
        columns = ", ".join(f'"{c.name}"' for c in REFINED_COLUMNS)
        select = f"SELECT {columns} FROM read_parquet('{literal}', hive_partitioning = false)"
    return f"CREATE OR REPLACE VIEW {TABLE_NAME} AS {select}"


def mart_view_sql(data_dir: Path, name: str) -> str:
    """The view of a mart (``ibov_movimentos``…) over its year files ``marts/<name>/ano=*``.

    Like the refined view: the glob is read at every query, and each year file is replaced by
    one rename, so a reader sees each date's rows from one run."""
    columns = MART_COLUMNS[name]
    folder = Path(data_dir).resolve() / mart_prefix(name)
    if not any(folder.glob("ano=*.parquet")):
        select = _empty_view_select(columns)
    else:
        literal = (folder / "ano=*.parquet").as_posix().replace("'", "''")
        names = ", ".join(f'"{c.name}"' for c in columns)
        select = f"SELECT {names} FROM read_parquet('{literal}', hive_partitioning = false)"
    return f"CREATE OR REPLACE VIEW {name} AS {select}"


def index_view_sql(data_dir: Path, name: str) -> str:
    """The view of an index table over its year files: ``serving/b3_carteiras/ano=*``,
    ``serving/b3_composicao/ano=*``, ``marts/b3_movimentos/ano=*``, and the levels'
    ``landing/index_levels/indice=*/ano=*`` (one file per index and year). Read at every
    query, each file replaced by one rename, like the marts' views."""
    columns = INDEX_TABLE_COLUMNS[name]
    folder = Path(data_dir).resolve() / index_table_prefix(name)
    pattern = "indice=*/ano=*.parquet" if name == TABLE_FECHAMENTO else "ano=*.parquet"
    if not any(folder.glob(pattern)):
        select = _empty_view_select(columns)
    else:
        literal = (folder / pattern).as_posix().replace("'", "''")
        names = ", ".join(f'"{c.name}"' for c in columns)
        select = f"SELECT {names} FROM read_parquet('{literal}', hive_partitioning = false)"
    return f"CREATE OR REPLACE VIEW {name} AS {select}"


def catalog_views_sql(data_dir: Path) -> dict[str, str]:
    """Every view of the local catalog (view name -> its CREATE statement): the refined table,
    the marts and the index tables."""
    views = {TABLE_NAME: refined_view_sql(data_dir)}
    views.update({name: mart_view_sql(data_dir, name) for name in MART_NAMES})
    views.update({name: index_view_sql(data_dir, name) for name in INDEX_TABLE_NAMES})
    return views


def view_columns(view: str) -> list[str]:
    """The columns a view of the local catalog must have, in order (glue/layout.py)."""
    columns = (REFINED_COLUMNS if view == TABLE_NAME else INDEX_TABLE_COLUMNS[view]
               if view in INDEX_TABLE_COLUMNS else MART_COLUMNS[view])
    return [c.name for c in columns]


class DuckDBCatalog(QueryEngine):
    """``B3_DATA_DIR/catalog.duckdb`` with the view ``b3_etl_soma_acao`` and the marts' views
    (``ibov_movimentos``, ``ibov_indicadores``, ``ibov_setores``) for any DuckDB client.

    The project's own queries never open that file: each gets an in-memory connection with
    the same view, so a user's DuckDB shell holding the file never blocks a run."""

    name = "duckdb"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "catalog.duckdb"

    def refresh(self) -> None:
        """Write the view into ``catalog.duckdb`` unless it is already there as it should be.

        The view names the lake's absolute path, so a moved or copied lake gets its view
        rewritten here; a file DuckDB cannot open is moved aside (with a warning) and rebuilt."""
        views = catalog_views_sql(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with duckdb.connect(str(self.path)) as con:
                for view, sql in views.items():
                    current = con.execute(
                        "SELECT sql FROM duckdb_views() WHERE view_name = ?", [view]
                    ).fetchone()
                    columns = con.execute(
                        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                        "ORDER BY column_index",
                        [view],
                    ).fetchall()
                    if (
                        current is None
                        or _view_source(current[0]) != _view_source(sql)
                        or [c[0] for c in columns] != view_columns(view)  # columns added
                    ):
                        con.execute(sql)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                return  # a user's DuckDB client holds the file; our queries do not need it
            self._rebuild(exc)
        except duckdb.Error as exc:
            self._rebuild(exc)

    def _rebuild(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        self.path.replace(aside)
        log.warning("%s could not be opened (%s); moved to %s and rebuilt", self.path, exc, aside)
        with duckdb.connect(str(self.path)) as con:
            for sql in catalog_views_sql(self.data_dir).values():
                con.execute(sql)

    def publish_marts(self, locations: Mapping[str, str]) -> None:
        """The marts' views in ``catalog.duckdb`` (they read ``B3_DATA_DIR/marts/``)."""
        self.refresh()

    def publish_index_tables(self, locations: Mapping[str, str]) -> None:
        """The index tables' views in ``catalog.duckdb`` (their globs are in the views)."""
        self.refresh()

    def query(self, sql: str, params: Sequence[Param] = ()) -> QueryResult:
        if not self.data_dir.is_dir():
            raise QueryError(
                f"no lake at {self.data_dir.resolve()}: set B3_DATA_DIR to your lake folder "
                "(or materialize a date first)"
            )
        with duckdb.connect() as con:
            for view_sql in catalog_views_sql(self.data_dir).values():
                con.execute(view_sql)
            try:
                cur = con.execute(sql, list(params))
            except duckdb.Error as exc:
                raise QueryError(f"DuckDB query failed on {self.data_dir}: {exc}") from exc
            columns = [d[0] for d in cur.description or []]
            return QueryResult(columns, [tuple(r) for r in cur.fetchall()])


def _view_source(sql: str) -> str:
    """What a view reads: the serving glob it names, or nothing (the empty placeholder)."""
    start = sql.find("read_parquet('")
    return sql[start : sql.find("'", start + len("read_parquet('")) + 1] if start >= 0 else ""


def athena_literal(value: Param) -> str:
    """An Athena ExecutionParameter: the SQL literal of a value, bound by Athena itself."""
    if isinstance(value, bool):
        raise TypeError("booleans are not query parameters here")
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _athena_value(text: str | None, athena_type: str) -> Any:
    if text is None:
        return None
    t = athena_type.lower()
    if t in {"integer", "bigint", "smallint", "tinyint", "int"}:
        return int(text)
    if t == "decimal":
        return Decimal(text)
    if t == "date":
        return date.fromisoformat(text)
    if t.startswith("timestamp"):
        return datetime.fromisoformat(text.replace(" UTC", "+00:00"))
    if t in {"double", "float", "real"}:
        return Decimal(text)
    return text


class AthenaCatalog(QueryEngine):
    """Athena over the Glue Data Catalog table ``database.b3_etl_soma_acao``."""

    name = "athena"

    def __init__(
        self,
        client: Any,
        database: str,
        workgroup: str,
        output_location: str | None = None,
        timeout_s: float = 120.0,
        glue_client: Any = None,
    ) -> None:
        self.client = client
        self.database = database
        self.workgroup = workgroup
        self.output_location = output_location
        self.timeout_s = timeout_s
        self.glue_client = glue_client

    def glue(self) -> Any:
        """The Glue client of this catalog: the one given, or one in the Athena client's region
        (and at its endpoint when that is not AWS's own, e.g. moto or LocalStack)."""
        if self.glue_client is None:
            import boto3

            meta = self.client.meta
            host = urlparse(meta.endpoint_url or "").hostname or ""
            aws_host = host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))
            self.glue_client = boto3.client(
                "glue",
                region_name=meta.region_name,
                endpoint_url=None if aws_host else meta.endpoint_url,
            )
        return self.glue_client

    def publish_marts(self, locations: Mapping[str, str]) -> None:
        """Create or update each mart's Glue table (unpartitioned Parquet over its S3 folder),
        so Athena reads the year files as soon as they are written. IAM: glue:GetDatabase,
        CreateDatabase, GetTable, CreateTable, UpdateTable on the catalog, database and tables."""
        from glue.catalog import ensure_mart_table

        for name, location in locations.items():
            ensure_mart_table(self.glue(), self.database, name, location)

    def publish_index_tables(self, locations: Mapping[str, str]) -> None:
        """Create or update each index table's Glue table (unpartitioned Parquet over its S3
        folder, like the marts'); same IAM as :meth:`publish_marts`."""
        self.publish_marts(locations)

    def query(self, sql: str, params: Sequence[Param] = ()) -> QueryResult:
        kwargs: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if params:
            kwargs["ExecutionParameters"] = [athena_literal(p) for p in params]
        if self.output_location:
            kwargs["ResultConfiguration"] = {"OutputLocation": self.output_location}
        try:
            qid = self.client.start_query_execution(**kwargs)["QueryExecutionId"]
        except ClientError as exc:  # unknown workgroup, wrong parameter count, bad request…
            raise QueryError(
                f"Athena refused the query in workgroup {self.workgroup}: {exc}"
            ) from exc
        deadline = time.monotonic() + self.timeout_s
        delay = 0.2
        while True:
            status = self.client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            state = status["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state in {"FAILED", "CANCELLED"}:
                reason = status["Status"].get("StateChangeReason", "no reason given")
                raise QueryError(
                    f"Athena query {qid} in workgroup {self.workgroup} {state}: {reason}"
                )
            if time.monotonic() > deadline:
                self.client.stop_query_execution(QueryExecutionId=qid)
                raise QueryError(
                    f"Athena query {qid} did not finish in {self.timeout_s:.0f} s; it was stopped"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        first = True
        for page in self.client.get_paginator("get_query_results").paginate(QueryExecutionId=qid):
            result_set = page["ResultSet"]
            if not columns:
                info = result_set["ResultSetMetadata"]["ColumnInfo"]
                columns = [c["Name"] for c in info]
                types = [c["Type"] for c in info]
            data = result_set["Rows"]
            if first and data and [d.get("VarCharValue") for d in data[0]["Data"]] == columns:
                data = data[1:]  # Athena repeats the header as the first row of a SELECT
            first = False
            for row in data:
                values = [d.get("VarCharValue") for d in row["Data"]]
                rows.append(tuple(_athena_value(v, t) for v, t in zip(values, types, strict=True)))
        return QueryResult(columns, rows)
