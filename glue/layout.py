"""The lake layout and the refined table's contract (docs/contracts.md), in one place.

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
#: Passed to every ``glue:StartJobRun`` (the Lambda, Dagster): Glue queues a run past the job's
#: MaxConcurrentRuns only when the run itself asks for it; absent, the start is refused.
QUEUING: dict[str, bool] = {"JobRunQueuingEnabled": True}

RAW_PREFIX = "raw/ibov"
#: B3's views of the four-month period (docs/contracts.md "More of what B3 publishes"), by
#: trading date of capture: raw like raw/ibov, landing files that never start a Glue run (they
#: do not match LANDING_KEY_PATTERN).
PERIOD_VIEWS: tuple[str, str] = ("teorica", "previa")
RAW_TEORICA_PREFIX = "raw/ibov_teorica"
RAW_PREVIA_PREFIX = "raw/ibov_previa"
LANDING_TEORICA_PREFIX = "landing/ibov_teorica"
LANDING_PREVIA_PREFIX = "landing/ibov_previa"
REFINED_PREFIX = "refined"
TABLE_NAME = "b3_etl_soma_acao"
#: Partition columns: folder names in the lake (``DataCarteira=…/Acao=…``), not stored in files.
PARTITION_COLUMNS: tuple[str, str] = ("DataCarteira", "Acao")


class Column(NamedTuple):
    """A refined column: its name, its type in Glue/Hive terms, and what it means."""

    name: str
    glue_type: str
    comment: str


#: The refined rows as the transform returns them, in order (docs/contracts.md "Refined table").
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
    Column(
        "setor", "string", "The issuer's economic sector (min over its classes; null if unknown)"
    ),
    Column("subsetor", "string", "The issuer's subsector (min over its classes; null if unknown)"),
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


def period_raw_prefix(view: str) -> str:
    """``raw/ibov_teorica`` or ``raw/ibov_previa``: the raw archive of a period view."""
    return {"teorica": RAW_TEORICA_PREFIX, "previa": RAW_PREVIA_PREFIX}[view]


def period_landing_prefix(view: str) -> str:
    """``landing/ibov_teorica`` or ``landing/ibov_previa``."""
    return {"teorica": LANDING_TEORICA_PREFIX, "previa": LANDING_PREVIA_PREFIX}[view]


def period_landing_key(view: str, data_captura: date) -> str:
    """``landing/ibov_teorica/dt=YYYY-MM-DD/ibov_teorica.parquet`` (``previa`` likewise)."""
    return f"{period_landing_prefix(view)}/dt={data_captura.isoformat()}/ibov_{view}.parquet"


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


def refine_lock_key(data_carteira: date) -> str:
    """``refined/_locks/DataCarteira=D.lock``: held (S3 conditional write) by the one run
    refining and publishing that date; outside every partition's folder, so never read."""
    return f"{REFINED_PREFIX}/_locks/DataCarteira={data_carteira.isoformat()}.lock"


def serving_year_key(year: int) -> str:
    """``serving/b3_etl_soma_acao/ano=YYYY.parquet``: every refined row of one year."""
    return f"{SERVING_PREFIX}/ano={year:04d}.parquet"


#: On S3 the serving copy is a Glue table of its own (glue/serving.py), partitioned by year:
#: Athena reads an issuer's history or the whole table from one object per year.
SERVING_TABLE_NAME = "b3_etl_soma_acao_historico"
#: Its partition key (a string ``YYYY``), named like the local file's ``ano=YYYY``.
SERVING_PARTITION = "ano"
#: Per-year locks of the S3 serving copy: outside the table's location, never read by Athena.
SERVING_LOCKS_PREFIX = "serving/_locks/b3_etl_soma_acao"


def serving_year_prefix(year: int) -> str:
    """``serving/b3_etl_soma_acao/ano=YYYY/``: every version of a year's file on S3."""
    return f"{SERVING_PREFIX}/ano={year:04d}/"


def serving_version_key(year: int, version: str) -> str:
    """``serving/b3_etl_soma_acao/ano=YYYY/run=<version>/ano=YYYY.parquet``: one version of a
    year's file on S3, alone in its folder (a partition's location is a folder, and S3 has no
    rename: a new version is written beside the old one and the partition repointed)."""
    if not re.fullmatch(RUN_ID_PATTERN, version):
        raise ValueError(f"serving version {version!r} is not a folder name ({RUN_ID_PATTERN})")
    return f"{serving_year_prefix(year)}{RUN_PARTITION}={version}/ano={year:04d}.parquet"


def serving_lock_key(year: int) -> str:
    """``serving/_locks/b3_etl_soma_acao/ano=YYYY.lock``: held while a run patches the year."""
    return f"{SERVING_LOCKS_PREFIX}/ano={year:04d}.lock"


# --- marts (docs/contracts.md "Marts") -------------------------------------------------

#: Tables derived from landing alone (not from refined), one Parquet file per year under
#: ``marts/<name>/``, so a history query reads a few files; each date's rows are replaced in
#: its year's file by one atomic write (b3_assets/marts/store.py).
MARTS_PREFIX = "marts"
MART_MOVIMENTOS = "ibov_movimentos"
MART_INDICADORES = "ibov_indicadores"
MART_SETORES = "ibov_setores"
MART_NAMES: tuple[str, str, str] = (MART_MOVIMENTOS, MART_INDICADORES, MART_SETORES)

#: Each mart's columns, in order, with Glue/Hive types (the same names in DuckDB and Athena).
MART_COLUMNS: dict[str, tuple[Column, ...]] = {
    MART_MOVIMENTOS: (
        Column("data_carteira", "date", "Portfolio date"),
        Column("data_carteira_anterior", "date", "Previous landing date (a B3 session)"),
        Column("codigo", "string", "Ticker that entered or left, e.g. PETR4"),
        Column("acao", "string", "Company name as B3 lists it"),
        Column("movimento", "string", "'entrada' (in on data_carteira) or 'saida' (out)"),
        Column(
            "participacao_pct",
            "decimal(7,3)",
            "Weight, %: on data_carteira for an entry, on data_carteira_anterior for an exit",
        ),
    ),
    MART_INDICADORES: (
        Column("data_carteira", "date", "Portfolio date"),
        Column("data_carteira_anterior", "date", "Previous landing date (null if none)"),
        Column("qtd_acoes", "int", "Number of tickers"),
        Column("qtd_emissores", "int", "Number of issuers (4-letter ticker roots)"),
        Column("hhi", "decimal(9,6)", "Herfindahl-Hirschman index: sum of squared ticker weights"),
        Column("n_efetivo", "decimal(9,3)", "Effective number of tickers: 1 / hhi"),
        Column("top10_pct", "decimal(7,3)", "Weight of the 10 heaviest tickers, %"),
        Column(
            "giro_pct",
            "decimal(7,3)",
            "One-way turnover since data_carteira_anterior, % (null if no previous date)",
        ),
    ),
    MART_SETORES: (
        Column("data_carteira", "date", "Portfolio date"),
        Column("setor", "string", "Economic sector of B3's classification (null: unknown)"),
        Column("qtd_acoes", "int", "Number of tickers in the sector"),
        Column("participacao_pct", "decimal(7,3)", "Sum of the sector's weights, %"),
    ),
}


def mart_prefix(name: str) -> str:
    """``marts/<name>``: the folder (or S3 prefix) of a mart, its catalog table's location."""
    if name not in MART_COLUMNS:
        raise KeyError(f"no mart {name!r}; the marts are {', '.join(MART_NAMES)}")
    return f"{MARTS_PREFIX}/{name}"


def mart_year_key(name: str, year: int) -> str:
    """``marts/<name>/ano=YYYY.parquet``: every row of one mart for one year."""
    return f"{mart_prefix(name)}/ano={year:04d}.parquet"


# --- every B3 index and the index levels (docs/contracts.md "Every B3 index", "Index levels") --

#: Every index's payloads of a date: ``raw/indices/dt=D/indice=CODE/<fetched-at>-<digest>/``,
#: and GetStockIndex's ``raw/indices/dt=D/composicao/…`` (one listing finds a date's archives).
RAW_INDICES_PREFIX = "raw/indices"
RAW_MEMBERSHIP_FOLDER = "composicao"
LANDING_INDICES_PREFIX = "landing/indices"
#: One year of an index's closes as captured on a trading date:
#: ``raw/index_levels/indice=CODE/ano=YYYY/dt=D/<fetched-at>-<digest>/``.
RAW_LEVELS_PREFIX = "raw/index_levels"
LANDING_LEVELS_PREFIX = "landing/index_levels"
#: Every index table of the catalog, read from one Parquet file per year (``serving/<name>/``
#: for the daily landing files compacted by year; the levels are one file per index and year).
INDEX_SERVING_PREFIX = "serving"
TABLE_CARTEIRAS = "b3_carteiras"
TABLE_COMPOSICAO = "b3_composicao"
TABLE_FECHAMENTO = "b3_indices_fechamento"
MART_B3_MOVIMENTOS = "b3_movimentos"


def index_raw_folder(index: str) -> str:
    """``indice=SMLL``: the folder of one index's payloads under a date's."""
    return f"indice={index}"


def carteiras_key(day: date) -> str:
    """``landing/indices/dt=YYYY-MM-DD/carteiras.parquet``: every index's portfolio of a date."""
    return f"{LANDING_INDICES_PREFIX}/dt={day.isoformat()}/carteiras.parquet"


def composicao_key(day: date) -> str:
    """``landing/indices/dt=YYYY-MM-DD/composicao.parquet``: GetStockIndex as served that date."""
    return f"{LANDING_INDICES_PREFIX}/dt={day.isoformat()}/composicao.parquet"


def levels_key(index: str, year: int) -> str:
    """``landing/index_levels/indice=CODE/ano=YYYY.parquet``: one year of an index's closes."""
    return f"{LANDING_LEVELS_PREFIX}/indice={index}/ano={year:04d}.parquet"


def levels_raw_prefix(index: str, year: int) -> str:
    """``raw/index_levels/indice=CODE/ano=YYYY``: the captures of one year of closes."""
    return f"{RAW_LEVELS_PREFIX}/indice={index}/ano={year:04d}"


def index_table_prefix(name: str) -> str:
    """``serving/b3_carteiras`` (or ``b3_composicao``, ``marts/b3_movimentos``): the folder
    of a table's year files, its catalog table's location."""
    if name == MART_B3_MOVIMENTOS:
        return f"{MARTS_PREFIX}/{name}"
    if name == TABLE_FECHAMENTO:
        return LANDING_LEVELS_PREFIX
    return f"{INDEX_SERVING_PREFIX}/{name}"


_LANDING_TABLE_COLUMNS: tuple[Column, ...] = (
    Column("data_carteira", "date", "Portfolio date (B3's header date)"),
    Column("indice", "string", "Index code: IBOV, SMLL, IFIX…"),
    Column("codigo", "string", "Ticker, e.g. PETR4"),
    Column("acao", "string", "Company name as B3 lists it"),
    Column("tipo", "string", "Share type, runs of spaces collapsed"),
    Column("qtde_teorica", "bigint", "Theoretical quantity"),
    Column("participacao_pct", "decimal(7,3)", "Weight in the index, %"),
    Column("qtde_teorica_total", "bigint", "Header: total theoretical quantity"),
    Column("redutor", "decimal(24,8)", "Header: the index reductor"),
    Column("coletado_em", "timestamp", "When the payload was fetched (UTC)"),
    Column("setor_b3", "string", "B3's sector label (null: the index has no sector view)"),
    Column("setor", "string", "Economic sector from the project's mapping"),
    Column("subsetor", "string", "Subsector from the same mapping"),
)

#: The columns of each index table, in order, with Glue/Hive types (DuckDB and Athena alike).
INDEX_TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    TABLE_CARTEIRAS: _LANDING_TABLE_COLUMNS,
    TABLE_COMPOSICAO: (
        Column("data_captura", "date", "Trading date GetStockIndex was captured on"),
        Column("codigo", "string", "Ticker"),
        Column("empresa", "string", "Company name as B3 lists it"),
        Column("tipo", "string", "Share type, runs of spaces collapsed"),
        Column("indice", "string", "An index the ticker belongs to this period"),
    ),
    TABLE_FECHAMENTO: (
        Column("indice", "string", "Index code"),
        Column("data", "date", "Session"),
        Column("fechamento", "decimal(18,2)", "The index's close on that session"),
    ),
    # ibov_movimentos' columns plus the index, right after the two dates.
    MART_B3_MOVIMENTOS: (
        *MART_COLUMNS[MART_MOVIMENTOS][:2],
        Column("indice", "string", "Index code: who entered and left which index"),
        *MART_COLUMNS[MART_MOVIMENTOS][2:],
    ),
}
INDEX_TABLE_NAMES: tuple[str, ...] = tuple(INDEX_TABLE_COLUMNS)
