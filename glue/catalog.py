"""The refined table in the AWS Glue Data Catalog: create it once, repoint a date's partitions.

boto3 only (the client is passed in). Partitions are registered explicitly, so Athena sees a
refined date as soon as the job ends: no crawler, no ``MSCK REPAIR``. Every partition carries
its own location, the run folder its file was written to (``…/Acao=X/run=<run id>/``, see
glue/layout.py): a date is replaced by writing the new files beside the old ones and then
repointing its partitions, so readers see one version or the other. Glue lowercases the
partition keys (``datacarteira``, ``acao``); the folders keep their camel case.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from glue.layout import (
    INDEX_TABLE_COLUMNS,
    INDEX_TABLE_NAMES,
    MART_COLUMNS,
    MART_NAMES,
    REFINED_FILE_COLUMNS,
    REFINED_PARTITION_COLUMNS,
)

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
MAX_BATCH_UPDATE = 100  # BatchUpdatePartition limit
MAX_BATCH_DELETE = 25  # BatchDeletePartition limit
#: Below the table's location, a folder that never holds an object: a partition pointing at it
#: has no rows (issuers entering or leaving a date while its partitions switch).
EMPTY_FOLDER = "_empty/"

T = TypeVar("T")


class CatalogError(RuntimeError):
    """The Glue Data Catalog refused part of a change; the message lists what and why."""


@dataclass(frozen=True)
class PartitionChanges:
    """What register_partitions does for one date (issuer roots, sorted)."""

    created: list[str]
    updated: list[str]
    deleted: list[str]
    unchanged: list[str]


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


def ensure_database(glue_client: Any, database: str) -> bool:
    """Create the database unless it exists; True when this call created it.

    A fresh account or region has no database at all, not even ``default``: the job must work
    there without a console visit. IAM: glue:GetDatabase, CreateDatabase (catalog, database).
    """
    try:
        glue_client.get_database(Name=database)
        return False
    except glue_client.exceptions.EntityNotFoundException:
        pass
    try:
        glue_client.create_database(
            DatabaseInput={"Name": database, "Description": "b3-pipeline refined tables"}
        )
    except glue_client.exceptions.AlreadyExistsException:
        return False  # created concurrently: same outcome
    log.info("created Glue database %s", database)
    return True


def ensure_table(glue_client: Any, database: str, table: str, location: str) -> bool:
    """Create the refined table unless it exists; True when this call created it.

    An existing table whose columns differ from the contract (a table created before setor
    and subsetor existed) gets the contract's columns, so Athena shows new columns at once;
    old files read them as null (Parquet matches columns by name)."""
    try:
        current = glue_client.get_table(DatabaseName=database, Name=table)["Table"]
    except glue_client.exceptions.EntityNotFoundException:
        current = None
    if current is not None:
        wanted = table_input(table, current["StorageDescriptor"].get("Location", location))
        have = [(c["Name"], c["Type"]) for c in current["StorageDescriptor"].get("Columns", [])]
        if have != [(c["Name"], c["Type"]) for c in wanted["StorageDescriptor"]["Columns"]]:
            glue_client.update_table(DatabaseName=database, TableInput=wanted)
            log.info("updated the columns of Glue table %s.%s", database, table)
        return False
    try:
        glue_client.create_table(DatabaseName=database, TableInput=table_input(table, location))
    except glue_client.exceptions.AlreadyExistsException:
        return False  # created concurrently: same outcome
    log.info("created Glue table %s.%s at %s", database, table, location)
    return True


def plan_partitions(existing: Mapping[str, str], wanted: Mapping[str, str]) -> PartitionChanges:
    """Issuers to create, repoint and delete so a date's partitions (issuer -> location)
    become exactly ``wanted``."""
    same = {a for a in wanted if a in existing and _folder(existing[a]) == _folder(wanted[a])}
    return PartitionChanges(
        created=sorted(set(wanted) - set(existing)),
        updated=sorted(set(wanted) & set(existing) - same),
        deleted=sorted(set(existing) - set(wanted)),
        unchanged=sorted(same),
    )


def register_partitions(
    glue_client: Any,
    database: str,
    table: str,
    data_carteira: date,
    locations: Mapping[str, str],
) -> PartitionChanges:
    """Make the date's partitions exactly ``locations`` (issuer root -> S3 folder).

    Call it once the files are in place. Ordered so a reader sees the old set of issuers or
    the new one, not both (Athena plans from the catalog): issuers new to the date are first
    created over an empty folder (``<table location>/_empty/``: zero rows), then ONE
    BatchUpdatePartition switches every issuer at once (up to 100 a call: a day of IBOV is
    ~85) — continuing ones to their new folders, new ones to theirs, leaving ones to the empty
    folder — and only then are the leaving ones deleted (already empty to readers). Glue does
    not document a batch call as a transaction, so this narrows the window to one request;
    the old files stay readable meanwhile (glue/job.py keeps superseded folders).
    Idempotent. Partition storage copies the table's (format, SerDe, columns). IAM:
    glue:GetTable, GetPartitions, BatchCreatePartition, BatchUpdatePartition,
    BatchDeletePartition on the catalog, database and table.
    """
    day = data_carteira.isoformat()
    table_sd = glue_client.get_table(DatabaseName=database, Name=table)["Table"][
        "StorageDescriptor"
    ]
    changes = plan_partitions(_date_partitions(glue_client, database, table, day), locations)

    empty = _folder(table_sd.get("Location", "")) + EMPTY_FOLDER

    def partition_input(acao: str, location: str | None = None) -> dict[str, Any]:
        sd = copy.deepcopy(table_sd)
        sd["Location"] = _folder(location or locations[acao])
        return {"Values": [day, acao], "StorageDescriptor": sd}

    names = {"DatabaseName": database, "TableName": table}
    for chunk in _chunks(changes.created, MAX_BATCH_CREATE):
        inputs = [partition_input(a, empty) for a in chunk]
        _check("create", glue_client.batch_create_partition(**names, PartitionInputList=inputs))
    switch = [(a, None) for a in (*changes.updated, *changes.created)]
    switch += [(a, empty) for a in changes.deleted]
    for chunk in _chunks(switch, MAX_BATCH_UPDATE):
        entries = [
            {"PartitionValueList": [day, a], "PartitionInput": partition_input(a, where)}
            for a, where in chunk
        ]
        _check("repoint", glue_client.batch_update_partition(**names, Entries=entries))
    for chunk in _chunks(changes.deleted, MAX_BATCH_DELETE):
        values = [{"Values": [day, a]} for a in chunk]
        response = glue_client.batch_delete_partition(**names, PartitionsToDelete=values)
        _check("delete", response, ignore="EntityNotFoundException")  # gone is the goal
    counts = [len(changes.created), len(changes.updated), len(changes.deleted)]
    log.info(
        "partitions of %s.%s for %s: %s created, repointed, deleted", database, table, day, counts
    )
    return changes


def _date_partitions(glue_client: Any, database: str, table: str, day: str) -> dict[str, str]:
    """The date's partitions now: issuer root -> location."""
    found: dict[str, str] = {}
    paginator = glue_client.get_paginator("get_partitions")
    expression = f"datacarteira = '{day}'"
    for page in paginator.paginate(DatabaseName=database, TableName=table, Expression=expression):
        for p in page.get("Partitions", []):
            values = p.get("Values", [])
            if len(values) == 2 and values[0] == day:
                found[values[1]] = p.get("StorageDescriptor", {}).get("Location", "")
    return found


def _check(action: str, response: Mapping[str, Any], ignore: str | None = None) -> None:
    """Batch APIs report failures in the response instead of raising: surface them."""
    errors = response.get("Errors", [])
    real = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") != ignore]
    if real:
        details = "; ".join(
            f"{e.get('PartitionValues') or e.get('PartitionValueList')}: "
            f"{e.get('ErrorDetail', {}).get('ErrorCode')} "
            f"{e.get('ErrorDetail', {}).get('ErrorMessage')}"
            for e in real
        )
        raise CatalogError(f"Glue refused to {action} {len(real)} partition(s): {details}")


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _folder(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


# --- the marts (docs/contracts.md "Marts") -------------------------------------------------


def mart_table_input(name: str, location: str) -> dict[str, Any]:
    """The TableInput of a mart: external Parquet, unpartitioned, over ``s3://…/marts/<name>/``.

    A mart is one file per year (``ano=YYYY.parquet``) directly in that folder, so Athena reads
    every year with no partition to register, and a history query opens a few files."""
    columns = MART_COLUMNS.get(name) or INDEX_TABLE_COLUMNS.get(name)
    if columns is None:
        raise KeyError(f"no mart {name!r}; the marts are "
                       f"{', '.join((*MART_NAMES, *INDEX_TABLE_NAMES))}")
    spec = table_input(name, location)
    spec["Description"] = (f"IBOV mart {name} (b3-pipeline, computed from landing)"
                           if name in MART_COLUMNS else
                           f"Every B3 index: {name} (b3-pipeline, one file per year)")
    spec["Parameters"] = {**spec["Parameters"], "parquet.compression": "ZSTD"}
    spec["PartitionKeys"] = []
    spec["StorageDescriptor"]["Columns"] = _columns(columns)
    return spec


def ensure_mart_table(glue_client: Any, database: str, name: str, location: str) -> str:
    """Create the mart's table, or update it when its columns or location differ; returns
    ``created``, ``updated`` or ``unchanged``. Idempotent, cheap when nothing changed (one
    GetTable). IAM: glue:GetDatabase, CreateDatabase, GetTable, CreateTable, UpdateTable."""
    wanted = mart_table_input(name, location)
    try:
        current = glue_client.get_table(DatabaseName=database, Name=name)["Table"]
    except glue_client.exceptions.EntityNotFoundException:
        ensure_database(glue_client, database)
        try:
            glue_client.create_table(DatabaseName=database, TableInput=wanted)
        except glue_client.exceptions.AlreadyExistsException:
            return "unchanged"  # created concurrently, from the same contract
        log.info("created Glue table %s.%s at %s", database, name, location)
        return "created"
    sd = current.get("StorageDescriptor", {})
    have = (
        [(c["Name"], c["Type"]) for c in sd.get("Columns", [])],
        _folder(sd.get("Location", "")),
        [k["Name"] for k in current.get("PartitionKeys", [])],
    )
    want_sd = wanted["StorageDescriptor"]
    want = ([(c["Name"], c["Type"]) for c in want_sd["Columns"]], want_sd["Location"], [])
    if have == want:
        return "unchanged"
    glue_client.update_table(DatabaseName=database, TableInput=wanted)
    log.info("updated Glue table %s.%s (columns or location) at %s", database, name, location)
    return "updated"
