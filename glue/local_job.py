"""The local (no AWS) run of the refine job: same SQL on DuckDB, a folder lake instead of S3.

Output layout is the one the Glue job writes (``refined/DataCarteira=D/Acao=X/*.parquet``,
partition columns only in the paths), so the same readers work on both. A date is replaced
as a whole through a staging folder and two renames: no reader ever sees half a date, and a
rerun never leaves a removed issuer's folder behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from glue.layout import (
    LANDING_PREFIX,
    PARTITION_COLUMNS,
    REFINED_PREFIX,
    landing_date_from_key,
    landing_key,
)
from glue.transform import REFINED_FILE_SCHEMA, previous_landing_date, refine_duckdb

log = logging.getLogger(__name__)

PART_FILE_NAME = "part-00000.parquet"


@dataclass(frozen=True)
class RefineOutcome:
    """What one refine run did: enough for Dagster metadata and for the catalog."""

    data_carteira: date
    data_carteira_anterior: date | None
    rows: int
    issuers: list[str]
    location: Path
    processado_em: datetime


def list_landing_dates(lake_root: Path) -> list[date]:
    """Trading dates with a landing file in the folder lake, ascending."""
    base = lake_root / LANDING_PREFIX
    if not base.is_dir():
        return []
    dates = []
    for path in base.glob("dt=*/*"):
        if not path.is_file():
            continue
        found = landing_date_from_key(path.relative_to(lake_root).as_posix())
        if found is not None:
            dates.append(found)
    return sorted(dates)


def run_local_refine(
    lake_root: Path,
    data_carteira: date,
    processado_em: datetime,
) -> RefineOutcome:
    """Refine ``data_carteira`` from the folder lake at ``lake_root`` and replace its output.

    The previous date is the latest landing date before ``data_carteira`` present now, as the
    Glue job does. Raises FileNotFoundError when the date has no landing file and ValueError
    when it has no rows of that date; nothing is written then.
    """
    lake_root = Path(lake_root)
    current = lake_root / landing_key(data_carteira)
    if not current.is_file():
        raise FileNotFoundError(
            f"no landing file for {data_carteira.isoformat()} at {current}: "
            "materialize landing/ibov_portfolio for that date first"
        )
    anterior = previous_landing_date(list_landing_dates(lake_root), data_carteira)
    previous = lake_root / landing_key(anterior) if anterior else None
    table = refine_duckdb(current, previous, data_carteira, anterior, processado_em)
    if table.num_rows == 0:
        raise ValueError(
            f"landing file {current} has no rows dated {data_carteira.isoformat()}; "
            "nothing was refined"
        )
    refined_root = lake_root / REFINED_PREFIX
    location = write_refined_date(refined_root, data_carteira, table)
    issuers = table.column("Acao").to_pylist()
    log.info(
        "refined %s: %d issuers (previous landing date %s) into %s",
        data_carteira.isoformat(),
        len(issuers),
        anterior.isoformat() if anterior else "none",
        location,
    )
    return RefineOutcome(
        data_carteira=data_carteira,
        data_carteira_anterior=anterior,
        rows=table.num_rows,
        issuers=issuers,
        location=location,
        processado_em=processado_em,
    )


def write_refined_date(refined_root: Path, data_carteira: date, table: pa.Table) -> Path:
    """Write one file per issuer and swap the date's folder in; returns the date's folder.

    Same rows give the same bytes (fixed file names, compression and row order).
    """
    name = f"DataCarteira={data_carteira.isoformat()}"
    final = refined_root / name
    refined_root.mkdir(parents=True, exist_ok=True)
    # Leftovers of a crashed run of this date (dot names: ignored by readers and globs).
    for stale in refined_root.glob(f".{name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = refined_root / f".{name}.staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _write_partitions(staging, table)
        _swap_in(staging, final, refined_root / f".{name}.old-{uuid.uuid4().hex}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _write_partitions(folder: Path, table: pa.Table) -> None:
    acoes = table.column("Acao")
    data = table.drop_columns(list(PARTITION_COLUMNS)).cast(REFINED_FILE_SCHEMA)
    for acao in sorted(set(acoes.to_pylist())):
        if not acao or "/" in acao or acao.startswith("."):
            raise ValueError(f"refused issuer root {acao!r} as a partition folder name")
        rows = data.filter(pc.equal(acoes, acao))
        target = folder / f"Acao={acao}"
        target.mkdir()
        pq.write_table(rows, target / PART_FILE_NAME, compression="snappy")


def _swap_in(staging: Path, final: Path, trash: Path) -> None:
    """Rename the old folder away, the new one in, then delete the old one."""
    if not final.exists():
        os.replace(staging, final)
        return
    os.replace(final, trash)
    try:
        os.replace(staging, final)
    except BaseException:
        os.replace(trash, final)
        raise
    shutil.rmtree(trash, ignore_errors=True)
