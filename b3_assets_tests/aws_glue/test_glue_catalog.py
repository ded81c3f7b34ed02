"""The refined table in the Glue Data Catalog (moto server on 127.0.0.1, never AWS): the
database and table created once with the contract's types, a date's partitions repointed in
batches, reruns idempotent, batch errors raised."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import boto3
import pytest

from b3_assets_tests.support.moto_server import unique_name
from glue.catalog import (
    PARQUET_SERDE,
    CatalogError,
    ensure_database,
    ensure_table,
    register_partitions,
    table_input,
)
from glue.layout import refined_run_prefix

DATABASE = "default"
TABLE = "b3_etl_soma_acao"
ROOT_BUCKET = "s3://b3-lake"
ROOT = f"{ROOT_BUCKET}/refined"
D0305 = date(2025, 3, 5)
D0306 = date(2025, 3, 6)


@pytest.fixture
def glue(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Glue client on moto with an empty ``default`` database (reset per test)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1")
    # moto's backends live in the process: an earlier module's job may have created it.
    with contextlib.suppress(client.exceptions.EntityNotFoundException):
        client.delete_database(Name=DATABASE)
    client.create_database(DatabaseInput={"Name": DATABASE})
    yield client
    client.delete_database(Name=DATABASE)


def partitions(glue: Any, day: date | None = None) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    paginator = glue.get_paginator("get_partitions")
    for page in paginator.paginate(DatabaseName=DATABASE, TableName=TABLE):
        for p in page["Partitions"]:
            if day is None or p["Values"][0] == day.isoformat():
                found[(p["Values"][0], p["Values"][1])] = p["StorageDescriptor"]["Location"]
    return found


def at(day: date, run_id: str, issuers: Iterable[str]) -> dict[str, str]:
    """Each issuer's run folder of ``day``, as the job points partitions at them."""
    return {a: f"{ROOT_BUCKET}/{refined_run_prefix(day, a, run_id)}" for a in issuers}


def roots(n: int) -> list[str]:
    """n distinct 4-letter issuer roots."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"X{letters[i // 26 % 26]}{letters[i % 26]}Z" for i in range(n)]


def test_a_table_created_before_the_sector_columns_gets_them(glue: Any) -> None:
    old = table_input(TABLE, ROOT + "/")
    old["StorageDescriptor"]["Columns"] = old["StorageDescriptor"]["Columns"][:9]
    glue.create_table(DatabaseName=DATABASE, TableInput=old)
    assert ensure_table(glue, DATABASE, TABLE, ROOT + "/") is False
    columns = glue.get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]["StorageDescriptor"]
    assert [c["Name"] for c in columns["Columns"]][-2:] == ["setor", "subsetor"]


def test_table_created_once_with_the_contract(glue: Any) -> None:
    assert ensure_table(glue, DATABASE, TABLE, ROOT + "/") is True
    assert ensure_table(glue, DATABASE, TABLE, ROOT + "/") is False

    table = glue.get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]
    sd = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        ("empresa", "string"),
        ("tickers", "string"),
        ("qtd_classes", "int"),
        ("qtd_teorica_total", "bigint"),
        ("participacao_total_pct", "decimal(9,3)"),
        ("data_carteira_anterior", "date"),
        ("dias_desde_carteira_anterior", "int"),
        ("variacao_participacao_pp", "decimal(9,3)"),
        ("processado_em", "timestamp"),
        ("setor", "string"),
        ("subsetor", "string"),
    ]
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("datacarteira", "string"),
        ("acao", "string"),
    ]
    assert sd["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
    assert sd["Location"] == "s3://b3-lake/refined/"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"


def test_database_created_when_missing(glue: Any) -> None:
    name = unique_name("b3_fresh").replace("-", "_")
    assert ensure_database(glue, name) is True
    assert ensure_database(glue, name) is False
    assert ensure_database(glue, DATABASE) is False
    assert ensure_table(glue, name, TABLE, ROOT) is True
    glue.delete_database(Name=name)


def test_partitions_repointed_per_date_in_batches(glue: Any) -> None:
    ensure_table(glue, DATABASE, TABLE, ROOT)
    many = roots(130)  # more than one BatchCreatePartition and BatchUpdatePartition (100)
    other_day = register_partitions(glue, DATABASE, TABLE, D0306, at(D0306, "r1", ["PETR", "VALE"]))
    assert other_day.created == ["PETR", "VALE"]

    first = register_partitions(glue, DATABASE, TABLE, D0305, at(D0305, "r1", reversed(many)))
    assert first.created == sorted(many)
    assert (first.updated, first.deleted) == ([], [])
    found = partitions(glue, D0305)
    assert len(found) == 130
    # Camel-case folders as the job writes them, though Glue's keys are lowercase.
    assert found[("2025-03-05", many[0])] == (
        f"{ROOT}/DataCarteira=2025-03-05/Acao={many[0]}/run=r1/"
    )
    sd = glue.get_partition(
        DatabaseName=DATABASE, TableName=TABLE, PartitionValues=["2025-03-05", many[0]]
    )["Partition"]["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
    assert len(sd["Columns"]) == 11

    # The same run again: nothing changes.
    again = register_partitions(glue, DATABASE, TABLE, D0305, at(D0305, "r1", many))
    assert (again.created, again.updated, again.deleted) == ([], [], [])
    assert again.unchanged == sorted(many)

    # A new run with fewer issuers: 120 repointed, 10 go, one arrives.
    kept = many[:120]
    second = register_partitions(glue, DATABASE, TABLE, D0305, at(D0305, "r2", [*kept, "NEWW"]))
    assert (second.updated, second.created) == (sorted(kept), ["NEWW"])
    assert second.deleted == sorted(many[120:])
    assert partitions(glue, D0305) == {
        ("2025-03-05", a): loc for a, loc in at(D0305, "r2", [*kept, "NEWW"]).items()
    }
    # 100 more go: more than one BatchDeletePartition (25).
    third = register_partitions(glue, DATABASE, TABLE, D0305, at(D0305, "r3", kept[:21]))
    assert len(third.deleted) == 100 and len(partitions(glue, D0305)) == 21
    # The other date is untouched.
    assert set(partitions(glue, D0306)) == {("2025-03-06", "PETR"), ("2025-03-06", "VALE")}


def test_batch_errors_are_raised_not_swallowed(glue: Any) -> None:
    ensure_table(glue, DATABASE, TABLE, ROOT)
    register_partitions(glue, DATABASE, TABLE, D0305, at(D0305, "r1", ["VALE"]))

    class Refusing:
        """A Glue client whose batch calls report failures in their responses."""

        def __getattr__(self, name: str) -> Any:
            return getattr(glue, name)

        def batch_create_partition(self, **kwargs: Any) -> dict[str, Any]:
            values = kwargs["PartitionInputList"][0]["Values"]
            error = {"ErrorCode": "AlreadyExistsException", "ErrorMessage": "exists"}
            return {"Errors": [{"PartitionValues": values, "ErrorDetail": error}]}

        def batch_update_partition(self, **kwargs: Any) -> dict[str, Any]:
            values = kwargs["Entries"][0]["PartitionValueList"]
            error = {"ErrorCode": "AccessDeniedException", "ErrorMessage": "no"}
            return {"Errors": [{"PartitionValueList": values, "ErrorDetail": error}]}

    # A partition someone else created may point anywhere: not taken as done.
    with pytest.raises(CatalogError, match=r"create 1 .*PETR.*AlreadyExistsException"):
        register_partitions(Refusing(), DATABASE, TABLE, D0305, at(D0305, "r2", ["PETR"]))
    with pytest.raises(CatalogError, match=r"repoint 1 .*VALE.*AccessDeniedException"):
        register_partitions(Refusing(), DATABASE, TABLE, D0305, at(D0305, "r2", ["VALE"]))
