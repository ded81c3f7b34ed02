"""Landing: the typed Parquet of one date of a portfolio view: the day's portfolio at
``landing/ibov/dt=…/ibov.parquet``, the period's views at ``landing/ibov_<view>/dt=…/``.
One writer, one reader and one lister for every view (docs/contracts.md)."""

from __future__ import annotations

import io
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from b3_assets.source.model import (
    LANDING_SCHEMA,
    PERIOD_LANDING_SCHEMA,
    PortfolioView,
    conform_landing,
)
from b3_assets.storage.lake import Lake, LakeError
from glue.layout import LANDING_PREFIX, landing_key, period_landing_key, period_landing_prefix
from glue.transform import unreadable_landing_message


def landing_parquet(table: pa.Table, schema: pa.Schema = LANDING_SCHEMA) -> bytes:
    """Deterministic Parquet bytes: the same table always gives the same file. ``schema``:
    the landing schema the table must have exactly (IBOV's by default; a period view's and
    every index's landing files use their own: docs/contracts.md)."""
    if not table.schema.equals(schema, check_metadata=False):
        raise ValueError(f"landing table does not have the landing schema:\n{table.schema}\n"
                         f"expected:\n{schema}")
    buf = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata(None),
        buf,
        compression="zstd",
        store_schema=False,
        write_statistics=True,
        row_group_size=1 << 20,
    )
    return buf.getvalue()


def view_landing_key(data_carteira: date, view: PortfolioView = "day") -> str:
    """The landing file of ``view`` for the date (of the portfolio, or of a period view's
    capture)."""
    return landing_key(data_carteira) if view == "day" else period_landing_key(view, data_carteira)


def read_landing(lake: Lake, data_carteira: date, view: PortfolioView = "day") -> pa.Table:
    """The date's landing file of ``view`` with exactly its landing schema; LakeError naming
    it and the fix when it is not readable Parquet (a corrupt file of one date must fail only
    what reads that date, by name)."""
    key = view_landing_key(data_carteira, view)
    data = lake.read_bytes(key)
    try:
        # use_threads=False: arrow's reader thread pool can abort the interpreter at exit on
        # small machines; landing files are tiny, so nothing is lost.
        table = pq.read_table(io.BytesIO(data), use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(unreadable_landing_message(lake.uri(key), data_carteira, exc)) from exc
    if view != "day":
        return table.select(PERIOD_LANDING_SCHEMA.names).cast(PERIOD_LANDING_SCHEMA)
    return conform_landing(table)  # files older than setor_b3/setor/subsetor: nulls


def read_parquet_key(lake: Lake, key: str, schema: pa.Schema) -> pa.Table:
    """A landing file of any schema read back with exactly ``schema`` (columns by name)."""
    table = pq.read_table(io.BytesIO(lake.read_bytes(key)), use_threads=False)
    return table.select(schema.names).cast(schema)


def landing_dates(lake: Lake, view: PortfolioView = "day") -> list[date]:
    """Every date with a landing folder of ``view`` (``dt=…``), as the lake lists them."""
    prefix = LANDING_PREFIX if view == "day" else period_landing_prefix(view)
    return [
        date.fromisoformat(f.removeprefix("dt="))
        for f in lake.list_folders(prefix)
        if f.startswith("dt=")
    ]
