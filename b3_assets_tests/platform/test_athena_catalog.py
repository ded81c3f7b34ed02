"""AthenaCatalog against moto's server (and botocore's Stubber where moto cannot go).

moto does not run SQL: results are queued through its ``/moto-api/static/athena/query-results``
API, and what the catalog sent is read back with GetQueryExecution. Failed queries (moto's
executions always succeed) and multi-page results (moto returns one page) come from a Stubber.
Nothing here talks to AWS.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from b3_assets.platform.catalog import AthenaCatalog, QueryError
from b3_assets.platform.resources import resources_for
from b3_assets.settings import Settings
from b3_assets_tests.support.moto_server import (
    FAKE_CREDENTIALS,
    REGION,
    MotoServer,
    athena_result,
    unique_name,
    use_moto,
)

REFINED_SQL = (
    "SELECT Acao, empresa, qtd_classes, qtd_teorica_total, participacao_total_pct, "
    "data_carteira_anterior, processado_em, DataCarteira FROM b3_etl_soma_acao "
    "WHERE DataCarteira = ? AND Acao <> ? AND qtd_classes >= ? ORDER BY Acao"
)
REFINED_COLUMNS = [
    ("Acao", "varchar"),
    ("empresa", "varchar"),
    ("qtd_classes", "integer"),
    ("qtd_teorica_total", "bigint"),
    ("participacao_total_pct", "decimal"),
    ("data_carteira_anterior", "date"),
    ("processado_em", "timestamp"),
    ("DataCarteira", "varchar"),
]
TS = "2025-03-05 09:01:02.345"  # how Athena prints a timestamp
REFINED_ROWS = [
    ("ABEV", "AMBEV S/A", 1, 4394835131, "2.871", "2025-02-28", TS, "2025-03-05"),
    ("PETR", "PETROBRAS", 2, 10432214955, "10.512", None, TS, "2025-03-05"),
]
PROCESSADO_EM = datetime(2025, 3, 5, 9, 1, 2, 345000)


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    use_moto(monkeypatch, moto.endpoint)
    return moto


@pytest.fixture
def workgroup(aws: MotoServer) -> str:
    name = unique_name("b3-pipeline")
    aws.client("athena").create_work_group(Name=name, Description="tests")
    return name


@pytest.fixture
def results_bucket(aws: MotoServer) -> str:
    name = unique_name("b3-athena-results")
    aws.client("s3").create_bucket(Bucket=name)
    return name


def _only_execution(aws: MotoServer, workgroup: str) -> dict[str, Any]:
    athena = aws.client("athena")
    (qid,) = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    return athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]


def test_query_binds_parameters_in_the_workgroup_and_types_the_rows(
    aws: MotoServer, workgroup: str, results_bucket: str
) -> None:
    output = f"s3://{results_bucket}/athena-results/"
    settings = Settings(
        env="aws",
        bucket=results_bucket,
        aws_endpoint_url=aws.endpoint,
        glue_database="b3_db",
        athena_workgroup=workgroup,
        athena_output=output,
    )
    catalog = resources_for(settings)["catalog"].engine()  # what B3_ENV=aws builds
    assert isinstance(catalog, AthenaCatalog)
    aws.queue_athena_results([athena_result(REFINED_COLUMNS, REFINED_ROWS)])

    result = catalog.query(REFINED_SQL, ["2025-03-05", "O'BRIEN", 1])

    sent = _only_execution(aws, workgroup)
    # The SQL goes as written; the values travel beside it, bound by Athena.
    assert sent["Query"] == REFINED_SQL
    assert sent["ExecutionParameters"] == ["'2025-03-05'", "'O''BRIEN'", "1"]
    assert sent["WorkGroup"] == workgroup
    assert sent["QueryExecutionContext"] == {"Database": "b3_db"}
    location = sent["ResultConfiguration"]["OutputLocation"]
    assert location == f"{output}{sent['QueryExecutionId']}.csv"
    csv_key = f"athena-results/{sent['QueryExecutionId']}.csv"
    csv = aws.client("s3").get_object(Bucket=results_bucket, Key=csv_key)["Body"].read()
    assert b'"PETROBRAS"' in csv

    assert result.columns == [name.lower() for name, _ in REFINED_COLUMNS]  # as Athena labels them
    assert result.rows == [
        (
            "ABEV",
            "AMBEV S/A",
            1,
            4394835131,
            Decimal("2.871"),
            date(2025, 2, 28),
            PROCESSADO_EM,
            "2025-03-05",
        ),
        ("PETR", "PETROBRAS", 2, 10432214955, Decimal("10.512"), None, PROCESSADO_EM, "2025-03-05"),
    ]  # the header row Athena repeats is not a data row
    assert result.as_dicts()[1]["data_carteira_anterior"] is None


def test_no_parameters_no_output_location(aws: MotoServer, workgroup: str) -> None:
    catalog = AthenaCatalog(aws.client("athena"), "default", workgroup)
    aws.queue_athena_results([athena_result([("n", "bigint")], [(84,)])])
    assert catalog.query("SELECT count(*) AS n FROM b3_etl_soma_acao").rows == [(84,)]
    sent = _only_execution(aws, workgroup)
    assert "ExecutionParameters" not in sent  # Athena refuses an empty list
    # No OutputLocation of ours: the workgroup's (enforced in the stack) applies.
    assert "OutputLocation" not in (sent.get("ResultConfiguration") or {})


def test_parameter_literals(aws: MotoServer, workgroup: str) -> None:
    catalog = AthenaCatalog(aws.client("athena"), "default", workgroup)
    aws.queue_athena_results([athena_result([("ok", "integer")], [(1,)])])
    catalog.query(
        "SELECT 1 AS ok WHERE ? AND ? AND ? AND ?",
        [date(2025, 3, 5), Decimal("10.512"), -3, "x'; DROP TABLE t; --"],
    )
    assert _only_execution(aws, workgroup)["ExecutionParameters"] == [
        "DATE '2025-03-05'",
        "10.512",
        "-3",
        "'x''; DROP TABLE t; --'",
    ]
    with pytest.raises(TypeError):
        catalog.query("SELECT ?", [True])


def test_empty_result_keeps_no_header_row(aws: MotoServer, workgroup: str) -> None:
    catalog = AthenaCatalog(aws.client("athena"), "default", workgroup)
    aws.queue_athena_results([athena_result([("Acao", "varchar")], [])])
    result = catalog.query(
        "SELECT Acao FROM b3_etl_soma_acao WHERE DataCarteira = ?", ["2023-01-02"]
    )
    assert result.columns == ["acao"] and result.rows == []


def test_timeout_stops_the_query(aws: MotoServer, workgroup: str) -> None:
    catalog = AthenaCatalog(aws.client("athena"), "default", workgroup, timeout_s=0.3)
    with aws.transition("athena::execution", progression="manual", times=10**9):
        with pytest.raises(QueryError, match="it was stopped") as info:
            catalog.query("SELECT * FROM b3_etl_soma_acao")
        sent = _only_execution(aws, workgroup)
    assert sent["QueryExecutionId"] in str(info.value)
    assert sent["Status"]["State"] == "CANCELLED"  # StopQueryExecution reached Athena


def test_unknown_workgroup_is_a_query_error(aws: MotoServer) -> None:
    catalog = AthenaCatalog(aws.client("athena"), "default", "no-such-workgroup")
    with pytest.raises(QueryError, match="no-such-workgroup") as info:
        catalog.query("SELECT 1")
    assert "WorkGroup does not exist" in str(info.value)


# --------------------------------------------------------------------------- stubbed Athena


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client("athena", region_name=REGION, **FAKE_CREDENTIALS)
    return client, Stubber(client)


def _execution(state: str, reason: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if reason:
        status["StateChangeReason"] = reason
    return {"QueryExecution": {"QueryExecutionId": "q-1", "Status": status}}


def _page(rows: list[list[str]], columns: list[tuple[str, str]], token: str | None = None) -> dict:
    page: dict[str, Any] = {
        "ResultSet": {
            "Rows": [{"Data": [{"VarCharValue": v} for v in r]} for r in rows],
            "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": t} for n, t in columns]},
        }
    }
    if token:
        page["NextToken"] = token
    return page


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("FAILED", "COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved"),
        ("CANCELLED", "Query cancelled by user"),
    ],
)
def test_failed_query_names_the_workgroup_and_athenas_reason(state: str, reason: str) -> None:
    client, stub = _stubbed()
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": "q-1"},
        {
            "QueryString": "SELECT x FROM b3_etl_soma_acao",
            "QueryExecutionContext": {"Database": "default"},
            "WorkGroup": "b3-pipeline",
        },
    )
    stub.add_response("get_query_execution", _execution("RUNNING"), {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", _execution(state, reason), {"QueryExecutionId": "q-1"})
    with stub, pytest.raises(QueryError) as info:
        AthenaCatalog(client, "default", "b3-pipeline").query("SELECT x FROM b3_etl_soma_acao")
    stub.assert_no_pending_responses()
    message = str(info.value)
    assert "workgroup b3-pipeline" in message and state in message and reason in message
    assert "q-1" in message


def test_results_are_paged() -> None:
    client, stub = _stubbed()
    columns = [("Acao", "varchar"), ("participacao_total_pct", "decimal")]
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", _execution("QUEUED"))
    stub.add_response("get_query_execution", _execution("SUCCEEDED"))
    stub.add_response(
        "get_query_results",
        _page(
            [["Acao", "participacao_total_pct"], ["ABEV", "2.871"], ["B3SA", "3.001"]],
            columns,
            token="t-2",
        ),
        {"QueryExecutionId": "q-1"},
    )
    # A later page has no header row, even when a value looks like one.
    stub.add_response(
        "get_query_results",
        _page([["Acao", "1.000"], ["PETR", "10.512"]], columns),
        {"QueryExecutionId": "q-1", "NextToken": "t-2"},
    )
    with stub:
        result = AthenaCatalog(client, "default", "wg").query("SELECT …")
    stub.assert_no_pending_responses()
    assert result.rows == [
        ("ABEV", Decimal("2.871")),
        ("B3SA", Decimal("3.001")),
        ("Acao", Decimal("1.000")),
        ("PETR", Decimal("10.512")),
    ]


def test_timestamp_with_time_zone_is_aware() -> None:
    client, stub = _stubbed()
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", _execution("SUCCEEDED"))
    stub.add_response(
        "get_query_results",
        _page([["t"], ["2025-03-05 09:01:02.345 UTC"]], [("t", "timestamp with time zone")]),
    )
    with stub:
        (row,) = AthenaCatalog(client, "default", "wg").query("SELECT …").rows
    assert row == (datetime(2025, 3, 5, 9, 1, 2, 345000, tzinfo=UTC),)


# --------------------------------------------------------------------------- b3-pipeline query


def _cli_env(monkeypatch: pytest.MonkeyPatch, workgroup: str) -> None:
    monkeypatch.setenv("B3_ENV", "aws")
    monkeypatch.setenv("B3_BUCKET", unique_name("b3-lake"))
    monkeypatch.setenv("B3_ATHENA_WORKGROUP", workgroup)
    monkeypatch.delenv("B3_ATHENA_OUTPUT", raising=False)


def test_cli_query_prints_a_table(
    aws: MotoServer,
    workgroup: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from b3_assets.cli import main

    _cli_env(monkeypatch, workgroup)  # AWS_ENDPOINT_URL (moto) is set by the aws fixture
    aws.queue_athena_results([athena_result(REFINED_COLUMNS[:5], [r[:5] for r in REFINED_ROWS])])
    sql = (
        "SELECT Acao, empresa, qtd_classes, qtd_teorica_total, participacao_total_pct "
        "FROM b3_etl_soma_acao"
    )
    assert main(["query", sql]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        name.lower() for name, _ in REFINED_COLUMNS[:5]
    ]  # Athena's labels are lower-case, and so are DuckDB's (catalog.QueryResult)
    assert any("PETROBRAS" in line and "10.512" in line and "10432214955" in line for line in lines)
    assert lines[-1] == "(2 rows)"
    assert _only_execution(aws, workgroup)["Query"] == sql


def test_cli_query_error_is_a_message_not_a_traceback(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from b3_assets.cli import main

    _cli_env(monkeypatch, "no-such-workgroup")
    assert main(["query", "SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-workgroup" in err
