"""The lake layout and the refined table's contract (DESIGN.md), in one place.

Standard library only: the Glue job, the local runner and ``b3_assets`` all import this module,
and the Lambda keeps a copy of :data:`LANDING_KEY_PATTERN` alone (it deploys as a bare zip; a
test proves the copy equal). Keys are relative to the lake root: the same in the folder lake
and in the bucket.
"""

from __future__ import annotations

import re
from datetime import date
from typing import NamedTuple

LANDING_PREFIX = "landing/ibov"
LANDING_FILE_NAME = "ibov.parquet"
#: A landing file key: the only objects that start a Glue run (the EventBridge rule's shape).
LANDING_KEY_PATTERN = r"landing/ibov/dt=(\d{4}-\d{2}-\d{2})/ibov\.parquet"

#: S3 object tag on landing files written by a backfill: the Lambda leaves them to the one
#: Glue run Dagster starts for the whole batch (``--data_carteiras``).
LANDING_BATCH_TAG = "b3-pipeline-batch"

RAW_PREFIX = "raw/ibov"
REFINED_PREFIX = "refined"
TABLE_NAME = "b3_etl_soma_acao"
#: Partition columns: folder names in the lake (``DataCarteira=…/Acao=…``), not stored in files.
PARTITION_COLUMNS: tuple[str, str] = ("DataCarteira", "Acao")


class Column(NamedTuple):
    """A refined column: its name, its type in Glue/Hive terms, and what it means."""

    name: str
    glue_type: str
    comment: str


#: The refined rows as the transform returns them, in order (DESIGN.md "Refined table").
#: The last two are the partition columns: in the paths, not inside the files.
REFINED_COLUMNS: tuple[Column, ...] = (
    Column("empresa", "string", "Company name (acao), min over the issuer's classes"),
    Column("tickers", "string", "The issuer's codes, sorted, comma-joined"),
    Column("qtd_classes", "int", "Number of share classes in the portfolio"),
    Column("qtd_teorica_total", "bigint", "Sum of the classes' theoretical quantities"),
    Column("participacao_total_pct", "decimal(9,3)", "Sum of the classes' participation, %"),
    Column("data_carteira_anterior", "date", "Latest earlier landing date (a B3 session)"),
    Column("dias_desde_carteira_anterior", "int", "Days since data_carteira_anterior"),
    Column("variacao_participacao_pp", "decimal(9,3)", "Participation change in p.p. since then"),
    Column("processado_em", "timestamp", "When the job ran (UTC)"),
    Column("DataCarteira", "string", "Portfolio date YYYY-MM-DD (folder DataCarteira=)"),
    Column("Acao", "string", "Issuer root, e.g. PETR (folder Acao=)"),
)
REFINED_FILE_COLUMNS = tuple(c for c in REFINED_COLUMNS if c.name not in PARTITION_COLUMNS)
REFINED_PARTITION_COLUMNS = tuple(c for c in REFINED_COLUMNS if c.name in PARTITION_COLUMNS)

_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
}


def duckdb_type(glue_type: str) -> str:
    """The DuckDB type of a Glue column type (``decimal(9,3)`` -> ``DECIMAL(9,3)``)."""
    return glue_type.upper() if glue_type.startswith("decimal(") else _DUCKDB_TYPES[glue_type]


def issuer_root(codigo: str) -> str:
    """The issuer of a ticker: its 4-letter root (``PETR3``, ``PETR4`` -> ``PETR``)."""
    return codigo[:4]


def landing_key(data_carteira: date) -> str:
    """``landing/ibov/dt=YYYY-MM-DD/ibov.parquet``: the landing file of one trading date."""
    return f"{LANDING_PREFIX}/dt={data_carteira.isoformat()}/{LANDING_FILE_NAME}"


def landing_date_from_key(key: str) -> date | None:
    """The trading date of a landing file key, or None when the key is not a landing file.

    Keys that merely look alike (other file names, nested folders, impossible dates) are not
    landing files: listing the prefix must never invent a previous date from them.
    """
    match = re.fullmatch(LANDING_KEY_PATTERN, key.lstrip("/"))
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def refined_date_prefix(data_carteira: date) -> str:
    """``refined/DataCarteira=YYYY-MM-DD/``: everything the job owns for one date."""
    return f"{REFINED_PREFIX}/DataCarteira={data_carteira.isoformat()}/"


def refined_issuer_prefix(data_carteira: date, acao: str) -> str:
    """``refined/DataCarteira=YYYY-MM-DD/Acao=XXXX/``: one issuer's folder of one date."""
    return f"{refined_date_prefix(data_carteira)}Acao={acao}/"


def issuer_from_refined_key(key: str) -> str | None:
    """The issuer root of a refined object key (``…/Acao=PETR/part.parquet`` -> ``PETR``)."""
    match = re.search(r"(?:^|/)Acao=([^/]+)/", key)
    return match.group(1) if match else None


#: The folder level under ``Acao=X/`` that holds one run's files: ``run=<run id>/``.
RUN_PARTITION = "run"
#: A run id as a folder name: Glue's ``jr_…`` ids and generated ones; nothing Spark or Hadoop
#: would escape in a path or hide (a leading ``_`` or ``.``).
RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]*"


def refined_run_prefix(data_carteira: date, acao: str, run_id: str) -> str:
    """``refined/DataCarteira=D/Acao=X/run=<run id>/``: one run's files of one issuer.

    Each run writes under its own prefix and the catalog is repointed afterwards, so readers
    see one run's files or the other's, never a date half replaced."""
    if not re.fullmatch(RUN_ID_PATTERN, run_id):
        raise ValueError(f"run id {run_id!r} is not a folder name ({RUN_ID_PATTERN})")
    return f"{refined_issuer_prefix(data_carteira, acao)}{RUN_PARTITION}={run_id}/"


#: The date's current run, written last by the local job (one atomic rename publishes a date).
CURRENT_RUN_FILE = "_current.json"
#: The catalog's serving copy of the refined table: one Parquet file per year, so history
#: queries read a few files instead of one per issuer and date.
SERVING_PREFIX = "serving/b3_etl_soma_acao"


def refined_current_key(data_carteira: date) -> str:
    """``refined/DataCarteira=D/_current.json``: which run is the date's published version."""
    return f"{refined_date_prefix(data_carteira)}{CURRENT_RUN_FILE}"


def serving_year_key(year: int) -> str:
    """``serving/b3_etl_soma_acao/ano=YYYY.parquet``: every refined row of one year."""
    return f"{SERVING_PREFIX}/ano={year:04d}.parquet"
