"""A fake Athena for the tests: the SQL the project sends runs on DuckDB over what the tests
wrote to moto's S3, found only through the Glue Data Catalog in moto.

moto's Athena runs no SQL (it answers queued results), so a reader keyed on the wrong column
case or a query planned against deleted objects passed there. The twin answers the Athena
operations of every boto3 client of the process (it wraps ``BaseClient._make_api_call`` for
the ``athena`` service only; S3 and Glue still go to moto) with Athena's semantics as far as
DuckDB allows:

- **Planning from the catalog**: StartQueryExecution resolves each table of the query through
  GetTable/GetPartitions (its own and its partitions' ``Location``) and lists the objects
  there, as Athena plans splits; a file or folder whose name starts with ``_`` or ``.`` is
  ignored, as Hive does. The objects are read later, when the query runs: an object deleted
  (or replaced) in between fails the query with ``HIVE_CANNOT_OPEN_SPLIT``, as on Athena.
- **Columns by name**: Parquet columns matched to the Glue columns case-insensitively, a
  column missing from a file is NULL, partition keys are the partition's values.
- **Results as GetQueryResults gives them**: lower-case labels (``_colN`` for an unnamed
  expression), every value a string (NULL: no ``VarCharValue``), ``ResultSetMetadata`` with
  Athena's type names, pages of at most 1000 rows whose first row (first page) is the header,
  ``NextToken`` paging.
- **States**: QUEUED → RUNNING → SUCCEEDED/FAILED over GetQueryExecution polls (the query
  runs on the poll that leaves RUNNING); :meth:`AthenaTwin.hold` keeps queries RUNNING so a
  test can change the lake between a query's planning and its reading.
- **ExecutionParameters** bound into the ``?`` placeholders (outside quotes and comments), a
  count mismatch failing the query.

The SQL itself must parse as Trino (Athena engine v3) and then runs as written on DuckDB, the
same text the local catalog runs (the project's contract: one SQL for both engines).
"""

from __future__ import annotations

import base64
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from sqlglot import exp

from glue.layout import duckdb_type

#: GetQueryResults' page size limit (and default).
PAGE_ROWS = 1000

_TWIN_OPERATIONS = frozenset({
    "StartQueryExecution", "GetQueryExecution", "GetQueryResults", "StopQueryExecution",
    "ListQueryExecutions",
})  # fmt: skip


class QueryFailed(Exception):
    """A query failed as Athena fails it: an error type (``HIVE_CANNOT_OPEN_SPLIT``…) and text."""

    def __init__(self, error_type: str, message: str, category: int = 2) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.category = category  # 1 system, 2 user, 3 other (Athena's ErrorCategory)


@dataclass(frozen=True)
class PlannedObject:
    key: str
    etag: str


@dataclass(frozen=True)
class PlannedPartition:
    values: tuple[str, ...]
    objects: tuple[PlannedObject, ...]


@dataclass(frozen=True)
class PlannedTable:
    name: str
    bucket: str
    columns: tuple[tuple[str, str], ...]  # (lower-case name, Glue type)
    keys: tuple[tuple[str, str], ...]  # partition keys
    partitions: tuple[PlannedPartition, ...]


@dataclass
class Execution:
    qid: str
    sql: str
    params: list[str]
    database: str
    workgroup: str
    output: str | None
    submitted: datetime
    state: str = "QUEUED"
    polls: int = 0
    plan: list[PlannedTable] = field(default_factory=list)
    failure: QueryFailed | None = None
    columns: list[tuple[str, str, int, int]] = field(default_factory=list)  # name, type, p, s
    rows: list[list[str | None]] = field(default_factory=list)
    completed: datetime | None = None


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _client_error(
    operation: str, message: str, code: str = "InvalidRequestException"
) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def bind_parameters(sql: str, literals: Sequence[str]) -> str:
    """``sql`` with each ``?`` outside quotes and comments replaced by the next literal, as
    Athena binds ExecutionParameters; a count mismatch is Athena's INVALID_PARAMETER error."""
    out: list[str] = []
    pending = list(literals)
    found = 0
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < len(sql):
                if sql[end] == ch and not (end + 1 < len(sql) and sql[end + 1] == ch):
                    break
                end += 2 if sql[end] == ch else 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            found += 1
            out.append(pending.pop(0) if pending else "?")
            i += 1
        else:
            out.append(ch)
            i += 1
    if found != len(literals):
        raise QueryFailed(
            "INVALID_PARAMETER_USAGE",
            f"Incorrect number of parameters: expected {found} but found {len(literals)}",
        )
    return "".join(out)


def _athena_type(duck: str) -> tuple[str, int, int]:
    """Athena's ColumnInfo (Type, Precision, Scale) of a DuckDB result type."""
    t = duck.upper()
    match = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t)
    if match:
        return "decimal", int(match[1]), int(match[2])
    simple = {
        "VARCHAR": ("varchar", 2147483647), "INTEGER": ("integer", 10), "BIGINT": ("bigint", 19),
        "HUGEINT": ("bigint", 19), "SMALLINT": ("smallint", 5), "TINYINT": ("tinyint", 3),
        "DOUBLE": ("double", 17), "FLOAT": ("real", 17), "BOOLEAN": ("boolean", 0),
        "DATE": ("date", 0), "TIMESTAMP": ("timestamp", 3),
        "TIMESTAMP WITH TIME ZONE": ("timestamp with time zone", 3),
    }  # fmt: skip
    name, precision = simple.get(t, ("varchar", 2147483647))
    return name, precision, 0


def athena_text(value: Any) -> str | None:
    """A value as GetQueryResults prints it (Trino's text forms); None stays NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
        return text + (" UTC" if value.tzinfo is not None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def output_labels(sql: str, described: Sequence[str]) -> list[str]:
    """Athena's labels of a query's columns: lower-case, ``_colN`` for an expression the
    query did not name (DuckDB would call it ``count_star()`` or ``(a + b)``)."""
    try:
        tree = sqlglot.parse_one(sql, read="trino")
    except sqlglot.errors.ParseError:
        tree = None
    if (
        isinstance(tree, exp.Select)
        and not any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in tree.expressions
        )
        and len(tree.expressions) == len(described)
    ):
        labels = []
        for i, e in enumerate(tree.expressions):
            if isinstance(e, exp.Alias | exp.Column):
                labels.append(e.alias_or_name.lower())
            else:
                labels.append(f"_col{i}")
        return labels
    return [d.lower() for d in described]


class AthenaTwin:
    """The fake Athena over moto's Glue and S3 (see the module's docstring)."""

    def __init__(self, s3: Any, glue: Any, workdir: Path) -> None:
        self.s3 = s3
        self.glue = glue
        self.workdir = workdir
        self.executions: dict[str, Execution] = {}
        self._held = False
        self._lock = threading.Lock()

    # -- what tests use ---------------------------------------------------------------------

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Queries stay RUNNING (planned, nothing read) while the block runs."""
        self._held = True
        try:
            yield
        finally:
            self._held = False

    def sent(self) -> list[Execution]:
        return list(self.executions.values())

    # -- the API -----------------------------------------------------------------------------

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            handler = getattr(self, f"_{operation}")
            response: dict[str, Any] = handler(dict(params))
            response["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": str(uuid.uuid4())}
            return response

    def _StartQueryExecution(self, p: dict[str, Any]) -> dict[str, Any]:
        workgroup = p.get("WorkGroup", "primary")
        if workgroup != "primary":
            # The workgroup must exist (moto holds them): Athena refuses the query otherwise.
            try:
                self.glue_free_athena().get_work_group(WorkGroup=workgroup)
            except ClientError as exc:
                raise _client_error(
                    "StartQueryExecution", f"WorkGroup {workgroup} is not found."
                ) from exc
        params = list(p.get("ExecutionParameters") or [])
        if "ExecutionParameters" in p and not params:
            raise _client_error("StartQueryExecution", "ExecutionParameters must not be empty")
        qid = str(uuid.uuid4())
        output = (p.get("ResultConfiguration") or {}).get("OutputLocation")
        run = Execution(
            qid=qid, sql=p["QueryString"], params=params,
            database=(p.get("QueryExecutionContext") or {}).get("Database", "default"),
            workgroup=workgroup, output=f"{output}{qid}.csv" if output else None,
            submitted=datetime.now(UTC),
        )  # fmt: skip
        self.executions[qid] = run
        try:
            bound = bind_parameters(run.sql, run.params)
            tree = sqlglot.parse_one(bound, read="trino")
            run.plan = self._plan(run.database, tree)
        except QueryFailed as exc:
            self._fail(run, exc)
        except sqlglot.errors.ParseError as exc:
            self._fail(run, QueryFailed("SYNTAX_ERROR", str(exc).splitlines()[0]))
        return {"QueryExecutionId": qid}

    def glue_free_athena(self) -> Any:
        """moto's own Athena (workgroups), reached through the original call path."""
        return _MotoAthena(self)

    def _GetQueryExecution(self, p: dict[str, Any]) -> dict[str, Any]:
        run = self._get(p["QueryExecutionId"], "GetQueryExecution")
        if run.state in {"QUEUED", "RUNNING"} and not self._held:
            run.polls += 1
            if run.state == "QUEUED":
                run.state = "RUNNING"
            elif run.polls >= 2:
                self._execute(run)
        status: dict[str, Any] = {"State": run.state, "SubmissionDateTime": run.submitted}
        if run.completed:
            status["CompletionDateTime"] = run.completed
        if run.failure is not None:
            status["StateChangeReason"] = str(run.failure)
            status["AthenaError"] = {
                "ErrorCategory": run.failure.category,
                "ErrorType": 1000,
                "Retryable": False,
                "ErrorMessage": str(run.failure),
            }
        execution: dict[str, Any] = {
            "QueryExecutionId": run.qid,
            "Query": run.sql,
            "StatementType": "DML",
            "QueryExecutionContext": {"Database": run.database, "Catalog": "awsdatacatalog"},
            "Status": status,
            "WorkGroup": run.workgroup,
            "Statistics": {"DataScannedInBytes": 0, "EngineExecutionTimeInMillis": 1},
            "EngineVersion": {
                "SelectedEngineVersion": "AUTO",
                "EffectiveEngineVersion": "Athena engine version 3",
            },
        }
        if run.output:
            execution["ResultConfiguration"] = {"OutputLocation": run.output}
        if run.params:
            execution["ExecutionParameters"] = list(run.params)
        return {"QueryExecution": execution}

    def _GetQueryResults(self, p: dict[str, Any]) -> dict[str, Any]:
        run = self._get(p["QueryExecutionId"], "GetQueryResults")
        if run.state != "SUCCEEDED":
            raise _client_error(
                "GetQueryResults",
                f"Query has not yet finished. Current query state: {run.state}"
                if run.state in {"QUEUED", "RUNNING"}
                else f"Query did not succeed: {run.state}",
            )
        size = min(int(p.get("MaxResults") or PAGE_ROWS), PAGE_ROWS)
        start = int(base64.b64decode(p["NextToken"]).decode()) if p.get("NextToken") else 0
        header: list[str | None] = [c[0] for c in run.columns]
        every = [header, *run.rows]
        page = every[start : start + size]
        result: dict[str, Any] = {
            "ResultSet": {
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in r]}
                         for r in page],
                "ResultSetMetadata": {"ColumnInfo": [
                    {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name,
                     "Label": name, "Type": type_, "Precision": precision, "Scale": scale,
                     "Nullable": "UNKNOWN", "CaseSensitive": type_ == "varchar"}
                    for name, type_, precision, scale in run.columns
                ]},
            },
            "UpdateCount": 0,
        }  # fmt: skip
        if start + size < len(every):
            result["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return result

    def _StopQueryExecution(self, p: dict[str, Any]) -> dict[str, Any]:
        run = self._get(p["QueryExecutionId"], "StopQueryExecution")
        if run.state in {"QUEUED", "RUNNING"}:
            run.state, run.completed = "CANCELLED", datetime.now(UTC)
        return {}

    def _ListQueryExecutions(self, p: dict[str, Any]) -> dict[str, Any]:
        workgroup = p.get("WorkGroup", "primary")
        return {"QueryExecutionIds": [
            q for q, r in reversed(self.executions.items()) if r.workgroup == workgroup
        ]}  # fmt: skip

    # -- planning and running ---------------------------------------------------------------

    def _get(self, qid: str, operation: str) -> Execution:
        try:
            return self.executions[qid]
        except KeyError:
            raise _client_error(operation, f"QueryExecution {qid} was not found") from None

    def _fail(self, run: Execution, failure: QueryFailed) -> None:
        run.state, run.failure, run.completed = "FAILED", failure, datetime.now(UTC)

    def _plan(self, database: str, tree: exp.Expression) -> list[PlannedTable]:
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        names = sorted({t.name.lower() for t in tree.find_all(exp.Table)
                        if t.name and t.name.lower() not in ctes})  # fmt: skip
        return [self._plan_table(database, name) for name in names]

    def _plan_table(self, database: str, name: str) -> PlannedTable:
        try:
            table = self.glue.get_table(DatabaseName=database, Name=name)["Table"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "EntityNotFoundException":
                raise
            raise QueryFailed(
                "TABLE_NOT_FOUND",
                f"line 1:1: Table 'awsdatacatalog.{database}.{name}' does not exist",
            ) from None
        sd = table["StorageDescriptor"]
        columns = tuple((c["Name"].lower(), c["Type"]) for c in sd.get("Columns", []))
        keys = tuple((k["Name"].lower(), k["Type"]) for k in table.get("PartitionKeys", []))
        bucket = sd["Location"].removeprefix("s3://").split("/", 1)[0]
        if not keys:
            parts = [PlannedPartition((), self._objects(sd["Location"]))]
        else:
            pages = self.glue.get_paginator("get_partitions").paginate(
                DatabaseName=database, TableName=name
            )
            parts = [
                PlannedPartition(
                    tuple(p["Values"]), self._objects(p["StorageDescriptor"]["Location"])
                )
                for page in pages
                for p in page["Partitions"]
            ]
        return PlannedTable(name, bucket, columns, keys, tuple(parts))

    def _objects(self, location: str) -> tuple[PlannedObject, ...]:
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if rel and not any(part.startswith(("_", ".")) for part in rel.split("/")):
                    found.append(PlannedObject(obj["Key"], obj["ETag"]))
        return tuple(found)

    def _execute(self, run: Execution) -> None:
        try:
            bound = bind_parameters(run.sql, run.params)
            with tempfile.TemporaryDirectory(dir=self.workdir) as tmp, duckdb.connect() as con:
                for table in run.plan:
                    con.execute(self._view_sql(con, table, Path(tmp)))
                try:
                    rel = con.sql(bound)
                    described = list(rel.columns)
                    types = [str(t) for t in rel.types]
                    values = rel.fetchall()
                except duckdb.Error as exc:
                    raise QueryFailed("GENERIC_USER_ERROR", str(exc).splitlines()[0]) from exc
        except QueryFailed as exc:
            self._fail(run, exc)
            return
        labels = output_labels(bound, described)
        run.columns = [(label, *_athena_type(t)) for label, t in zip(labels, types, strict=True)]
        run.rows = [[athena_text(v) for v in row] for row in values]
        run.state, run.completed = "SUCCEEDED", datetime.now(UTC)

    def _view_sql(self, con: duckdb.DuckDBPyConnection, table: PlannedTable, tmp: Path) -> str:
        """The table as a DuckDB view over the planned objects, read now (a deleted or
        replaced one fails the query, as Athena's split would)."""
        selects = []
        for n, part in enumerate(table.partitions):
            files = []
            for m, obj in enumerate(part.objects):
                try:
                    got = self.s3.get_object(Bucket=table.bucket, Key=obj.key, IfMatch=obj.etag)
                except ClientError as exc:
                    raise QueryFailed(
                        "HIVE_CANNOT_OPEN_SPLIT",
                        f"Error opening Hive split s3://{table.bucket}/{obj.key}: "
                        f"{exc.response['Error']['Code']} (the object was deleted or replaced "
                        "after the query was planned)",
                        category=1,
                    ) from None
                path = tmp / f"{table.name}-{n}-{m}.parquet"
                path.write_bytes(got["Body"].read())
                files.append(path)
            if not files:
                continue
            source = (
                "read_parquet(["
                + ", ".join(f"'{f.as_posix()}'" for f in files)
                + "], union_by_name = true, hive_partitioning = false)"
            )
            present = {c.lower(): c for c in con.sql(f"SELECT * FROM {source} LIMIT 0").columns}
            cols = [
                (
                    f'CAST("{present[name]}" AS {duckdb_type(glue_type)}) AS "{name}"'
                    if name in present
                    else f'CAST(NULL AS {duckdb_type(glue_type)}) AS "{name}"'
                )
                for name, glue_type in table.columns
            ]
            cols += [
                f'CAST({_text(value)} AS {duckdb_type(glue_type)}) AS "{key}"'
                for (key, glue_type), value in zip(table.keys, part.values, strict=True)
            ]
            selects.append(f"SELECT {', '.join(cols)} FROM {source}")
        if not selects:
            cols = [
                f'CAST(NULL AS {duckdb_type(t)}) AS "{n}"' for n, t in table.columns + table.keys
            ]
            selects = [f"SELECT {', '.join(cols)} WHERE false"]
        return f'CREATE OR REPLACE VIEW "{table.name}" AS ' + " UNION ALL ".join(selects)


class _MotoAthena:
    """moto's Athena operations the twin does not answer (GetWorkGroup), called directly."""

    def __init__(self, twin: AthenaTwin) -> None:
        self.twin = twin

    def get_work_group(self, WorkGroup: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        client = _moto_client("athena", self.twin.s3)
        return _ORIGINAL(client, "GetWorkGroup", {"WorkGroup": WorkGroup})


def _moto_client(service: str, like: Any) -> Any:
    import boto3

    meta = like.meta
    return boto3.client(
        service,
        region_name=meta.region_name,
        endpoint_url=meta.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


_ORIGINAL = BaseClient._make_api_call


def install_twin(monkeypatch: pytest.MonkeyPatch, twin: AthenaTwin) -> AthenaTwin:
    """Every boto3 Athena client of this process talks to ``twin`` until the test ends."""

    def make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "athena" and operation in _TWIN_OPERATIONS:
            from botocore.validate import validate_parameters

            validate_parameters(
                params, client.meta.service_model.operation_model(operation).input_shape
            )
            return twin.call(operation, params)
        return _ORIGINAL(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return twin
