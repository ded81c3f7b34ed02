"""The refined table in the Glue Data Catalog (moto server on 127.0.0.1, never AWS):
created once with the contract's types, partitions replaced per date, reruns idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pytest

from glue.catalog import (
    PARQUET_SERDE,
    CatalogError,
    ensure_table,
    partition_location,
    register_partitions,
)

DATABASE = "default"
TABLE = "b3_etl_soma_acao"
ROOT = "s3://b3-lake/refined"
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


def roots(n: int) -> list[str]:
    """n distinct 4-letter issuer roots."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"X{letters[i // 26 % 26]}{letters[i % 26]}Z" for i in range(n)]


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
    ]
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("datacarteira", "string"),
        ("acao", "string"),
    ]
    assert sd["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
    assert sd["Location"] == "s3://b3-lake/refined/"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"


def test_missing_database_is_a_clear_error(glue: Any) -> None:
    with pytest.raises(CatalogError, match="database 'nope' does not exist"):
        ensure_table(glue, "nope", TABLE, ROOT)


def test_partitions_replaced_per_date_in_batches(glue: Any) -> None:
    ensure_table(glue, DATABASE, TABLE, ROOT)
    many = roots(130)  # more than one BatchCreatePartition (100)
    other_day = register_partitions(glue, DATABASE, TABLE, ROOT, D0306, ["PETR", "VALE"])
    assert other_day.created == ["PETR", "VALE"]

    first = register_partitions(glue, DATABASE, TABLE, ROOT, D0305, reversed(many))
    assert first.created == sorted(many)
    assert first.deleted == []
    found = partitions(glue, D0305)
    assert len(found) == 130
    # Camel-case folders as the job writes them, though Glue's keys are lowercase.
    assert found[("2025-03-05", many[0])] == f"{ROOT}/DataCarteira=2025-03-05/Acao={many[0]}/"
    assert found[("2025-03-05", many[0])] == partition_location(ROOT, D0305, many[0])
    sd = glue.get_partition(
        DatabaseName=DATABASE, TableName=TABLE, PartitionValues=["2025-03-05", many[0]]
    )["Partition"]["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
    assert len(sd["Columns"]) == 9

    # Rerun: nothing changes.
    again = register_partitions(glue, DATABASE, TABLE, ROOT, D0305, many)
    assert (again.created, again.deleted, again.updated) == ([], [], [])
    assert again.unchanged == sorted(many)

    # The date is refined again with fewer issuers: 90 go (more than one 25-item delete).
    kept = many[:40]
    shrunk = register_partitions(glue, DATABASE, TABLE, ROOT, D0305, [*kept, "NEWW"])
    assert shrunk.deleted == sorted(many[40:])
    assert shrunk.created == ["NEWW"]
    assert set(partitions(glue, D0305)) == {("2025-03-05", a) for a in [*kept, "NEWW"]}
    # The other date is untouched.
    assert set(partitions(glue, D0306)) == {("2025-03-06", "PETR"), ("2025-03-06", "VALE")}


def test_partitions_pointing_elsewhere_are_repointed(glue: Any) -> None:
    ensure_table(glue, DATABASE, TABLE, ROOT)
    register_partitions(glue, DATABASE, TABLE, "s3://old-bucket/refined", D0305, ["PETR", "VALE"])

    changes = register_partitions(glue, DATABASE, TABLE, ROOT, D0305, ["PETR", "VALE"])

    assert changes.updated == ["PETR", "VALE"]
    assert partitions(glue, D0305) == {
        ("2025-03-05", "PETR"): f"{ROOT}/DataCarteira=2025-03-05/Acao=PETR/",
        ("2025-03-05", "VALE"): f"{ROOT}/DataCarteira=2025-03-05/Acao=VALE/",
    }


def test_batch_errors_are_raised_not_swallowed(glue: Any) -> None:
    ensure_table(glue, DATABASE, TABLE, ROOT)

    class Refusing:
        """A Glue client whose batch create reports a failure in its response."""

        def __getattr__(self, name: str) -> Any:
            return getattr(glue, name)

        def batch_create_partition(self, **kwargs: Any) -> dict[str, Any]:
            return {
                "Errors": [
                    {
                        "PartitionValues": ["2025-03-05", "PETR"],
                        "ErrorDetail": {"ErrorCode": "AccessDeniedException", "ErrorMessage": "no"},
                    }
                ]
            }

    with pytest.raises(CatalogError, match="AccessDeniedException"):
        register_partitions(Refusing(), DATABASE, TABLE, ROOT, D0305, ["PETR"])
