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
    SERVING_TABLE_NAME,
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
    """A query's rows, keyed by lower-case column labels on both engines.

    Athena (Trino) returns every label lower-case (``DataCarteira`` comes back as
    ``datacarteira``) while DuckDB keeps the query's spelling; lower-casing here, the one place
    both engines' results pass, means a reader written against the local catalog cannot
    break on AWS. The project's SQL names its columns with lower-case aliases."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", [c.lower() for c in self.columns])

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


@dataclass(frozen=True)
class LakeView:
    """One view of the local catalog: a table's Parquet files in the lake (one per year, or
    per index and year), read through a glob at every query so it stays current as files are
    replaced (each by one rename: a reader sees a date whole, from one run)."""

    name: str
    columns: Sequence[Column]
    folder: Path
    pattern: str = "ano=*.parquet"

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(self.pattern))

    def sql(self, files: Sequence[Path] | None = None) -> str:
        """``CREATE OR REPLACE VIEW`` over the glob, or over ``files`` only (the readable
        ones, when a file of the table is corrupt)."""
        names = ", ".join(f'"{c.name}"' for c in self.columns)
        if files is None and any(self.folder.glob(self.pattern)):
            source = _sql_text((self.folder / self.pattern).as_posix())
        elif files:
            source = "[" + ", ".join(_sql_text(p.as_posix()) for p in files) + "]"
        else:
            return f"CREATE OR REPLACE VIEW {self.name} AS {_empty_view_select(self.columns)}"
        return (f"CREATE OR REPLACE VIEW {self.name} AS SELECT {names} "
                f"FROM read_parquet({source}, hive_partitioning = false)")


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lake_views(data_dir: Path) -> list[LakeView]:
    """Every view of the local catalog: the refined table's serving copy, the marts and the
    index tables (the levels: one file per index and year)."""
    lake = Path(data_dir).resolve()
    # The refined table and its yearly history are one set of year files locally; on Athena
    # they are two Glue tables (per date x issuer, per year), and history queries read the
    # per-year one (``sql/issuer_history.sql``): the same SQL text runs on both engines.
    views = [LakeView(TABLE_NAME, REFINED_COLUMNS, lake / SERVING_PREFIX),
             LakeView(SERVING_TABLE_NAME, REFINED_COLUMNS, lake / SERVING_PREFIX)]
    views += [LakeView(name, MART_COLUMNS[name], lake / mart_prefix(name)) for name in MART_NAMES]
    views += [
        LakeView(name, INDEX_TABLE_COLUMNS[name], lake / index_table_prefix(name),
                 "indice=*/ano=*.parquet" if name == TABLE_FECHAMENTO else "ano=*.parquet")
        for name in INDEX_TABLE_NAMES
    ]
    return views


def mart_view_sql(data_dir: Path, name: str) -> str:
    """The view of one mart (``ibov_movimentos``…) over its year files ``marts/<name>/``."""
    return next(v for v in lake_views(data_dir) if v.name == name).sql()


def catalog_views_sql(data_dir: Path) -> dict[str, str]:
    """Every view of the local catalog (view name -> its CREATE statement over the globs)."""
    return {view.name: view.sql() for view in lake_views(data_dir)}


def unreadable_files(files: Sequence[Path]) -> dict[Path, str]:
    """The files whose Parquet footer cannot be read, with the reason (a torn or foreign file
    left by a crash, a disk error or a hand edit)."""
    import pyarrow.parquet as pq

    bad: dict[Path, str] = {}
    for path in files:
        try:
            pq.read_metadata(path)
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            bad[path] = str(exc).splitlines()[0][:200]
    return bad


def create_views(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[Path, str]:
    """Create every view of the lake on ``con``; a table with a corrupt file gets a view over
    its readable files only, so one broken file never takes the other tables (or the rest of
    its own) down. Returns the corrupt files, each with the reason, and warns naming them."""
    corrupt: dict[Path, str] = {}
    for view in lake_views(data_dir):
        try:
            con.execute(view.sql())
        except duckdb.Error as exc:
            files = view.files()
            bad = unreadable_files(files)
            if not bad:  # readable files that still do not make the view (a foreign schema)
                log.warning("view %s over %s could not be created: %s", view.name,
                            view.folder / view.pattern, str(exc).splitlines()[0][:300])
                continue
            corrupt.update(bad)
            con.execute(view.sql([p for p in files if p not in bad]))
            for path, why in bad.items():
                log.warning(
                    "%s: %s is corrupt (%s); the view reads the table's other files until the "
                    "next run writing that table rebuilds it from its sources (a mart: any "
                    "marts run; the serving copy: the next landing run or the hourly "
                    "reconciliation; an index table: delete it, then re-materialize its dates).",
                    view.name, path, why)
    return corrupt


def view_columns(view: str) -> list[str]:
    """The columns a view of the local catalog must have, in order (glue/layout.py)."""
    if view in (TABLE_NAME, SERVING_TABLE_NAME):
        return [c.name for c in REFINED_COLUMNS]
    columns = INDEX_TABLE_COLUMNS[view] if view in INDEX_TABLE_COLUMNS else MART_COLUMNS[view]
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
        """Write the views into ``catalog.duckdb`` unless they are already there as they
        should be.

        The views name the lake's absolute path, so a moved or copied lake gets them rewritten
        here (every command that opens the lake calls this, ``query`` included); a catalog file
        DuckDB cannot open is moved aside (with a warning) and rebuilt, but a corrupt *data*
        file only leaves its own table reading the other files (:func:`create_views`). When
        another DuckDB client holds the file, nothing is written and a warning says how to
        refresh it later."""
        views = catalog_views_sql(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                log.warning(
                    "%s is held open by another DuckDB client, so its views were not updated "
                    "(our own queries do not need it). Close that client, then run "
                    "`b3-pipeline query \"SELECT 1\"` (or any command) to refresh them.",
                    self.path)
                return
            self._rebuild(exc)
            return
        except duckdb.Error as exc:
            self._rebuild(exc)
            return
        try:
            with con:
                self._update(con, views)
        except duckdb.Error as exc:  # the catalog file itself, not a data file
            self._rebuild(exc)

    def _update(self, con: duckdb.DuckDBPyConnection, views: Mapping[str, str]) -> None:
        """Recreate the views when any is missing, reads another path or lacks a column."""

        def current(view: str, sql: str) -> bool:
            row = con.execute(
                "SELECT sql FROM duckdb_views() WHERE view_name = ?", [view]).fetchone()
            columns = con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "ORDER BY column_index", [view]).fetchall()
            return (row is not None and _view_source(row[0]) == _view_source(sql)
                    and [c[0] for c in columns] == view_columns(view))

        if not all(current(view, sql) for view, sql in views.items()):
            create_views(con, self.data_dir)

    def _rebuild(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        self.path.replace(aside)
        log.warning("%s could not be opened (%s); moved to %s and rebuilt", self.path, exc, aside)
        with duckdb.connect(str(self.path)) as con:
            create_views(con, self.data_dir)

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
        self.refresh()  # a copied or moved lake: catalog.duckdb reads this lake from now on
        with duckdb.connect() as con:
            create_views(con, self.data_dir)
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
