"""The refined table in the AWS Glue Data Catalog: create it once, replace a date's partitions.

boto3 only (the client is passed in). Partitions are registered explicitly, so Athena sees a
refined date as soon as the job ends: no crawler, no ``MSCK REPAIR``. Glue lowercases column
names (``datacarteira``, ``acao``) while the S3 folders are ``DataCarteira=…/Acao=…``, so every
partition carries its own explicit location.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from glue.layout import REFINED_FILE_COLUMNS, REFINED_PARTITION_COLUMNS, refined_issuer_prefix

log = logging.getLogger(__name__)

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"

#: Data columns of b3_etl_soma_acao in Glue types (glue/layout.py), in file order.
GLUE_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(REFINED_FILE_COLUMNS)
#: Partition keys as Glue stores them (lowercase); the S3 folders are DataCarteira=/Acao=.
PARTITION_KEYS: tuple[tuple[str, str, str], ...] = tuple(
    (c.name.lower(), c.glue_type, c.comment) for c in REFINED_PARTITION_COLUMNS
)

MAX_BATCH_CREATE = 100  # BatchCreatePartition limit
MAX_BATCH_DELETE = 25  # BatchDeletePartition limit

T = TypeVar("T")


class CatalogError(RuntimeError):
    """The Glue Data Catalog refused part of a change; the message lists what and why."""


@dataclass(frozen=True)
class PartitionChanges:
    """What register_partitions did for one date (issuer roots)."""

    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _columns(spec: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"Name": n, "Type": t, "Comment": c} for n, t, c in spec]


def table_input(table: str, location: str) -> dict[str, Any]:
    """The TableInput of the refined table: external Parquet, partitioned by date and issuer."""
    return {
        "Name": table,
        "Description": "IBOV theoretical portfolio per issuer and date (b3-pipeline refine)",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "parquet.compression": "SNAPPY",
        },
        "PartitionKeys": _columns(PARTITION_KEYS),
        "StorageDescriptor": {
            "Columns": _columns(GLUE_COLUMNS),
            "Location": _folder(location),
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "Compressed": False,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
            "StoredAsSubDirectories": False,
        },
    }


def ensure_table(glue_client: Any, database: str, table: str, location: str) -> bool:
    """Create the refined table unless it exists; True when this call created it.

    An existing table (from CloudFormation, say) is left as it is. The database must exist.
    """
    try:
        glue_client.get_table(DatabaseName=database, Name=table)
        return False
    except glue_client.exceptions.EntityNotFoundException:
        pass
    try:
        glue_client.create_table(DatabaseName=database, TableInput=table_input(table, location))
    except glue_client.exceptions.AlreadyExistsException:
        return False  # created concurrently: same outcome
    except glue_client.exceptions.EntityNotFoundException as exc:
        raise CatalogError(
            f"Glue database {database!r} does not exist; create it (infra/ does) before "
            f"the table {table!r}: {exc}"
        ) from exc
    log.info("created Glue table %s.%s at %s", database, table, location)
    return True


def partition_location(location_root: str, data_carteira: date, acao: str) -> str:
    """``s3://bucket/refined/DataCarteira=D/Acao=X/`` (camel case, as the job writes it)."""
    return _folder(location_root) + refined_issuer_prefix(data_carteira, acao).split("/", 1)[1]


def register_partitions(
    glue_client: Any,
    database: str,
    table: str,
    location_root: str,
    data_carteira: date,
    issuers: Iterable[str],
) -> PartitionChanges:
    """Make the date's partitions exactly ``issuers``: drop the others, add the missing ones.

    Idempotent: a rerun with the same issuers changes nothing. Existing partitions pointing
    elsewhere are repointed. Partition storage copies the table's (format, SerDe, columns).
    IAM: glue:GetTable, GetPartitions, BatchCreatePartition, BatchDeletePartition,
    UpdatePartition on the catalog, database and table.
    """
    day = data_carteira.isoformat()
    wanted = sorted(set(issuers))
    table_sd = glue_client.get_table(DatabaseName=database, Name=table)["Table"][
        "StorageDescriptor"
    ]
    existing = {
        p["Values"][1]: p
        for p in _get_partitions(glue_client, database, table, f"datacarteira = '{day}'")
        if len(p.get("Values", [])) == 2 and p["Values"][0] == day
    }

    def partition_input(acao: str) -> dict[str, Any]:
        sd = copy.deepcopy(table_sd)
        sd["Location"] = partition_location(location_root, data_carteira, acao)
        return {"Values": [day, acao], "StorageDescriptor": sd}

    to_delete = sorted(set(existing) - set(wanted))
    to_create = [a for a in wanted if a not in existing]
    to_update = [
        a
        for a in wanted
        if a in existing
        and existing[a].get("StorageDescriptor", {}).get("Location")
        != partition_location(location_root, data_carteira, a)
    ]
    for chunk in _chunks(to_delete, MAX_BATCH_DELETE):
        response = glue_client.batch_delete_partition(
            DatabaseName=database,
            TableName=table,
            PartitionsToDelete=[{"Values": [day, a]} for a in chunk],
        )
        _raise_errors("delete", response.get("Errors", []), ignore="EntityNotFoundException")
    for chunk in _chunks(to_create, MAX_BATCH_CREATE):
        response = glue_client.batch_create_partition(
            DatabaseName=database,
            TableName=table,
            PartitionInputList=[partition_input(a) for a in chunk],
        )
        _raise_errors("create", response.get("Errors", []), ignore="AlreadyExistsException")
    for acao in to_update:  # rare (the bucket or prefix moved): one call each
        glue_client.update_partition(
            DatabaseName=database,
            TableName=table,
            PartitionValueList=[day, acao],
            PartitionInput=partition_input(acao),
        )
    changes = PartitionChanges(
        created=to_create,
        deleted=to_delete,
        updated=to_update,
        unchanged=[a for a in wanted if a in existing and a not in to_update],
    )
    log.info(
        "partitions of %s.%s for %s: %d created, %d deleted, %d repointed, %d unchanged",
        database,
        table,
        day,
        len(changes.created),
        len(changes.deleted),
        len(changes.updated),
        len(changes.unchanged),
    )
    return changes


def _get_partitions(
    glue_client: Any, database: str, table: str, expression: str
) -> Iterator[dict[str, Any]]:
    paginator = glue_client.get_paginator("get_partitions")
    for page in paginator.paginate(DatabaseName=database, TableName=table, Expression=expression):
        yield from page.get("Partitions", [])


def _raise_errors(action: str, errors: list[dict[str, Any]], ignore: str | None) -> None:
    """Batch APIs report failures in the response instead of raising: surface them."""
    real = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") != ignore]
    if real:
        details = "; ".join(
            f"{e.get('PartitionValues') or e.get('PartitionValueList')}: "
            f"{e.get('ErrorDetail', {}).get('ErrorCode')} "
            f"{e.get('ErrorDetail', {}).get('ErrorMessage')}"
            for e in real
        )
        raise CatalogError(f"Glue refused to {action} {len(real)} partition(s): {details}")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _folder(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"
