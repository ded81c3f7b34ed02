"""The local (no AWS) refine job: the same SQL on DuckDB, a folder lake instead of S3.

For each date of a run it writes what the Glue job writes
(``refined/DataCarteira=D/Acao=X/run=<id>/…``), publishes the date with one atomic rename of
``refined/DataCarteira=D/_current.json`` and removes older runs' folders; once the run's dates
are done it patches the catalog's serving copy (``serving/b3_etl_soma_acao/ano=YYYY.parquet``,
one file per year, replaced by rename) with the dates it published. A run killed at any instant
leaves every date's previous version published and readable; whatever it left behind is removed
by the next run of that date, and a serving copy behind its pointers is repaired by
:func:`sync_serving` (the next landing run, or the hourly reconciliation: such a date counts as
pending, :func:`serving_behind`). Runs of one date are serialized by a lock file, so two never
interleave their writes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from glue.layout import (
    LANDING_PREFIX,
    PARTITION_COLUMNS,
    REFINED_PREFIX,
    SERVING_PREFIX,
    landing_date_from_key,
    landing_key,
    refined_current_key,
    refined_date_prefix,
    refined_run_prefix,
    serving_year_key,
)
from glue.outcome import batch_failure
from glue.storage import file_sha256, locked, remove_temp_files, write_atomic
from glue.transform import (
    REFINED_FILE_SCHEMA,
    REFINED_SCHEMA,
    as_interrupt,
    duckdb_session,
    interrupted_query,
    previous_landing_date,
    publication_inputs,
    refine_duckdb,
    stale_among,
)

log = logging.getLogger(__name__)

PART_FILE_NAME = "part-00000.parquet"
IsSession = Callable[[date], bool]


@dataclass(frozen=True)
class RefineOutcome:
    """What one refine run did: enough for Dagster metadata and for the run record."""

    data_carteira: date
    data_carteira_anterior: date | None
    rows: int
    issuers: list[str]
    location: Path
    processado_em: datetime
    run_id: str


# --- small file helpers ------------------------------------------------------------------


# --- landing and the published state -----------------------------------------------------


def list_landing_dates(lake_root: Path, is_session: IsSession | None = None) -> list[date]:
    """Trading dates with a landing file in the folder lake, ascending.

    With ``is_session``, a landing file on a day that is not a B3 session (a stray file on a
    holiday) is ignored: it must never become some date's previous portfolio."""
    base = lake_root / LANDING_PREFIX
    if not base.is_dir():
        return []
    dates = []
    for path in base.glob("dt=*/*"):
        found = landing_date_from_key(path.relative_to(lake_root).as_posix())
        if found is not None and path.is_file() and (is_session is None or is_session(found)):
            dates.append(found)
    return sorted(dates)


def published(lake_root: Path, data_carteira: date) -> dict[str, Any] | None:
    """The date's ``_current.json`` (which run, from which inputs), or None if unpublished."""
    path = lake_root / refined_current_key(data_carteira)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        log.warning("unreadable %s (%s): the date counts as unpublished", path, exc)
        return None


def stale_dates(lake_root: Path, is_session: IsSession | None = None) -> list[date]:
    """Landing dates whose published refine is missing or stale (:func:`stale_among`): a
    date is current when its pointer names the landing file's bytes (sha256) and the
    previous landing date and its bytes as they are now."""
    dates = list_landing_dates(lake_root, is_session)
    sha = {d: file_sha256(lake_root / landing_key(d)) for d in dates}
    return stale_among(sha, lambda day: published(lake_root, day), "sha256")


# --- the run -----------------------------------------------------------------------------


def run_local_refine(
    lake_root: Path,
    data_carteira: date,
    processado_em: datetime,
    run_id: str | None = None,
    is_session: IsSession | None = None,
) -> RefineOutcome:
    """Refine ``data_carteira`` from the folder lake at ``lake_root`` and publish it.

    The previous date is the latest landing date before ``data_carteira`` present now (B3
    sessions only, with ``is_session``). Raises FileNotFoundError when the date has no landing
    file and ValueError when it has no rows of that date; the published version is untouched.
    """
    (outcome,) = run_local_refines(lake_root, [data_carteira], processado_em, run_id, is_session)
    return outcome


def run_local_refines(
    lake_root: Path,
    days: Iterable[date],
    processado_em: datetime,
    run_id: str | None = None,
    is_session: IsSession | None = None,
) -> list[RefineOutcome]:
    """Refine ``days`` in ascending order in one run, as one Glue run of a backfill does.

    The landing listing, the files' fingerprints and the DuckDB session are shared by the
    dates (a backfill pays for them once, not per date). Each date is published on its own
    (:func:`run_local_refine`'s guarantees hold per date); the serving copy is patched once per
    year at the end, also when a date fails, for every date this run published. A date that
    fails is left as it was and the run goes on, then fails naming each failed date and its
    error (:func:`glue.outcome.batch_failure`, as the Glue job does); a run of one date raises
    that date's own error. An interrupt (SIGTERM, Ctrl-C; inside DuckDB too) stops the run at
    once: the dates not reached are left as they were."""
    lake_root = Path(lake_root)
    run_id = run_id or uuid.uuid4().hex
    ordered = sorted(set(days))
    landing = LandingListing(lake_root, is_session)
    fingerprints: dict[date, str | None] = {}

    def sha(day: date) -> str | None:
        if day not in fingerprints:
            fingerprints[day] = file_sha256(lake_root / landing_key(day))
        return fingerprints[day]

    outcomes: list[RefineOutcome] = []
    tables: dict[date, pa.Table] = {}
    failed: dict[str, str] = {}
    try:
        with duckdb_session() as con:
            for day in ordered:
                try:
                    with locked(lake_root / REFINED_PREFIX / f".lock-{day.isoformat()}"):
                        outcome, tables[day] = _refine_and_publish(
                            lake_root, day, landing.now(), sha, processado_em, run_id, con
                        )
                except Exception as exc:
                    if interrupted_query(exc):  # SIGTERM inside DuckDB: the run stops here
                        raise as_interrupt(f"refining {day.isoformat()}") from exc
                    if len(ordered) == 1:
                        raise
                    log.exception("refining %s failed; the run goes on", day.isoformat())
                    failed[day.isoformat()] = f"{type(exc).__name__}: {exc}"
                    continue
                outcomes.append(outcome)
    finally:
        _patch_serving_of_run(lake_root, run_id, tables)
    if failed:
        raise RuntimeError(batch_failure(failed, len(ordered)))
    return outcomes


class LandingListing:
    """The landing dates of a folder lake, listed once per run and again only when a date
    folder was added or removed since (the listing folder's mtime changes), so each date of a
    run sees the landing dates present when it is refined, at one ``stat`` per date."""

    def __init__(self, lake_root: Path, is_session: IsSession | None) -> None:
        self.lake_root, self.is_session = lake_root, is_session
        self._stamp: int | None = -1
        self._dates: list[date] = []

    def _folder_stamp(self) -> int | None:
        try:
            return (self.lake_root / LANDING_PREFIX).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def now(self) -> list[date]:
        stamp = self._folder_stamp()
        if stamp != self._stamp:
            self._dates = list_landing_dates(self.lake_root, self.is_session)
            self._stamp = stamp
        return self._dates


def _refine_and_publish(
    lake_root: Path,
    data_carteira: date,
    landing: list[date],
    sha: Callable[[date], str | None],
    processado_em: datetime,
    run_id: str,
    con: Any,
) -> tuple[RefineOutcome, pa.Table]:
    """One date of a run (under its lock): refine, write the run's files, swap the pointer,
    remove older runs' folders."""
    current = lake_root / landing_key(data_carteira)
    if not current.is_file():
        raise FileNotFoundError(
            f"no landing file for {data_carteira.isoformat()} at {current}: "
            "materialize landing/ibov_portfolio for that date first"
        )
    anterior = previous_landing_date(landing, data_carteira)
    previous = lake_root / landing_key(anterior) if anterior else None
    inputs = {data_carteira: sha(data_carteira)}
    if anterior:
        inputs[anterior] = sha(anterior)
    table = refine_duckdb(current, previous, data_carteira, anterior, processado_em, con)
    if table.num_rows == 0:
        raise ValueError(
            f"landing file {current} has no rows dated {data_carteira.isoformat()}; "
            "nothing was refined"
        )
    issuers = table.column("Acao").to_pylist()
    _write_run(lake_root, data_carteira, run_id, table)
    pointer = {
        "run_id": run_id,
        "processado_em": processado_em.isoformat(),
        "issuers": issuers,
        **publication_inputs(inputs, data_carteira, "sha256"),
    }
    write_atomic(
        lake_root / refined_current_key(data_carteira), json.dumps(pointer, indent=1).encode()
    )
    _remove_other_runs(lake_root, data_carteira, run_id, issuers)
    log.info(
        "refined %s: %d issuers (previous landing date %s), run %s",
        data_carteira.isoformat(),
        len(issuers),
        anterior.isoformat() if anterior else "none",
        run_id,
    )
    outcome = RefineOutcome(
        data_carteira=data_carteira,
        data_carteira_anterior=anterior,
        rows=table.num_rows,
        issuers=issuers,
        location=lake_root / refined_date_prefix(data_carteira),
        processado_em=processado_em,
        run_id=run_id,
    )
    return outcome, table


#: Threads writing one date's issuer files: Parquet encoding and file system calls release
#: the GIL. One per core (measured on 2 cores: 56 ms a date with 1 thread, 38 with 2, 47 with 4).
WRITE_THREADS = min(8, os.cpu_count() or 2)


def _write_run(lake_root: Path, data_carteira: date, run_id: str, table: pa.Table) -> None:
    """One file per issuer under the run's own prefix; nothing published yet."""
    table = table.sort_by("Acao")
    acoes = table.column("Acao").to_pylist()
    data = table.drop_columns(list(PARTITION_COLUMNS)).cast(REFINED_FILE_SCHEMA)
    groups: list[tuple[str, int, int]] = []  # (issuer, first row, row count), rows sorted
    for row, acao in enumerate(acoes):
        if groups and groups[-1][0] == acao:
            groups[-1] = (acao, groups[-1][1], groups[-1][2] + 1)
            continue
        if not acao or "/" in acao or acao.startswith((".", "_")):
            raise ValueError(f"refused issuer root {acao!r} as a partition folder name")
        groups.append((acao, row, 1))

    def write(group: tuple[str, int, int]) -> None:
        acao, first, count = group
        buf = io.BytesIO()
        # No dictionary pages: files of one row gain nothing from them (20 % faster to write).
        pq.write_table(data.slice(first, count), buf, compression="snappy", use_dictionary=False)
        write_atomic(
            lake_root / refined_run_prefix(data_carteira, acao, run_id) / PART_FILE_NAME,
            buf.getvalue(),
            fsync=False,
        )

    with ThreadPoolExecutor(WRITE_THREADS) as pool:
        list(pool.map(write, groups))


def _remove_other_runs(
    lake_root: Path, data_carteira: date, run_id: str, issuers: list[str]
) -> None:
    """Older runs' folders (and a killed run's leftovers) of the date, after the publish."""
    date_dir = lake_root / refined_date_prefix(data_carteira)
    remove_temp_files(date_dir)  # a killed run's half-written _current.json
    keep = set(issuers)
    for acao_dir in date_dir.glob("Acao=*"):
        if acao_dir.name.removeprefix("Acao=") not in keep:
            shutil.rmtree(acao_dir, ignore_errors=True)
            continue
        for run_dir in acao_dir.iterdir():
            if run_dir.name != f"run={run_id}" and run_dir.is_dir():
                shutil.rmtree(run_dir, ignore_errors=True)


def read_published(lake_root: Path, data_carteira: date) -> pa.Table | None:
    """The published refined rows of a date (REFINED_SCHEMA), or None if unpublished."""
    pointer = published(lake_root, data_carteira)
    if pointer is None:
        return None
    tables = []
    for acao in pointer["issuers"]:
        path = lake_root / refined_run_prefix(data_carteira, acao, pointer["run_id"])
        rows = pq.read_table(path / PART_FILE_NAME, partitioning=None, use_threads=False)
        n = rows.num_rows
        rows = rows.append_column("DataCarteira", pa.array([data_carteira.isoformat()] * n))
        tables.append(conform_refined_columns(rows.append_column("Acao", pa.array([acao] * n))))
    return pa.concat_tables(tables) if tables else None


# --- the serving copy --------------------------------------------------------------------


def _read_serving(lake_root: Path, year: int) -> pa.Table:
    """One year of the serving copy; a corrupt year file is rebuilt from its sources (the
    published run of each date, found through the pointers) with a warning naming it, so
    one torn file never fails every landing step, tick and query after it."""
    path = lake_root / serving_year_key(year)
    if not path.is_file():
        return REFINED_SCHEMA.empty_table()
    try:
        return conform_refined_columns(pq.read_table(path, use_threads=False))
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        table = _rebuild_serving_year(lake_root, year)
        log.warning("%s is corrupt (%s): rebuilt from the published runs of %d date(s) of %d",
                    path, str(exc).splitlines()[0][:200],
                    len(set(table.column("DataCarteira").to_pylist())), year)
        return table


def _rebuild_serving_year(lake_root: Path, year: int) -> pa.Table:
    """Every published date of ``year``, read from its run folders (REFINED_SCHEMA)."""
    tables = [t for d in list_landing_dates(lake_root) if d.year == year
              if (t := read_published(lake_root, d)) is not None]
    return pa.concat_tables(tables) if tables else REFINED_SCHEMA.empty_table()


def conform_refined_columns(table: pa.Table) -> pa.Table:
    """Rows written before a column existed (setor, subsetor) get it as nulls, in order."""
    for field in REFINED_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
    return table.select(REFINED_SCHEMA.names).cast(REFINED_SCHEMA)


def _write_serving(path: Path, table: pa.Table) -> None:
    order = pc.sort_indices(table, [("DataCarteira", "ascending"), ("Acao", "ascending")])
    buf = io.BytesIO()
    pq.write_table(table.take(order), buf, compression="zstd", row_group_size=1 << 20)
    write_atomic(path, buf.getvalue())


def _patch_year(lake_root: Path, year: int, rows: dict[date, pa.Table | None]) -> None:
    """Replace the rows of ``rows``' dates in one year's serving file (None: remove them);
    the caller holds the serving lock."""
    path = lake_root / serving_year_key(year)
    table = _read_serving(lake_root, year)
    replaced = pa.array([d.isoformat() for d in rows], pa.string())
    keep = pc.invert(pc.is_in(table.column("DataCarteira"), value_set=replaced))
    parts = [table.filter(keep)] + [t.cast(REFINED_SCHEMA) for t in rows.values() if t is not None]
    _write_serving(path, pa.concat_tables(parts))


def _patch_serving_of_run(lake_root: Path, run_id: str, tables: dict[date, pa.Table]) -> None:
    """The serving rows of every date ``run_id`` published, one rewrite per year.

    Under the serving lock, a date is patched only while its pointer still names this run: a
    later run of the date that published meanwhile patches its own rows (each run patches
    after its publish), so the serving copy never goes back to an older version."""
    if not tables:
        return
    with locked(lake_root / SERVING_PREFIX / ".lock"):
        pointers = {d: published(lake_root, d) or {} for d in tables}
        ours = {d: t for d, t in tables.items() if pointers[d].get("run_id") == run_id}
        for year in sorted({d.year for d in ours}):
            _patch_year(lake_root, year, {d: t for d, t in ours.items() if d.year == year})


def _serving_state(lake_root: Path) -> tuple[dict[date, dict[str, Any]], list[date], list[str]]:
    """(published pointers, published dates whose serving rows are missing or from another
    run, served dates with no pointer), comparing one processado_em per date."""
    found = {d: published(lake_root, d) for d in list_landing_dates(lake_root)}
    pointers = {d: p for d, p in found.items() if p is not None}
    served: dict[str, str] = {}
    for path in sorted((lake_root / SERVING_PREFIX).glob("ano=*.parquet")):
        try:
            cols = pq.read_table(path, columns=["DataCarteira", "processado_em"],
                                 use_threads=False)
        except (OSError, ValueError) as exc:  # corrupt: its dates are behind, and rebuilt
            log.warning("%s is unreadable (%s): its dates count as not served", path,
                        str(exc).splitlines()[0][:200])
            continue
        for day, ts in zip(
            cols.column("DataCarteira").to_pylist(),
            cols.column("processado_em").to_pylist(),
            strict=True,
        ):
            served[day] = ts.astimezone(UTC).isoformat()
    behind = [
        day
        for day, pointer in pointers.items()
        if served.get(day.isoformat())
        != datetime.fromisoformat(pointer["processado_em"]).astimezone(UTC).isoformat()
    ]
    orphans = sorted(set(served) - {d.isoformat() for d in pointers})
    return pointers, behind, orphans


def serving_behind(lake_root: Path) -> list[date]:
    """Published dates the serving copy (what the catalog answers) does not show as published:
    a run killed between its publish and its serving patch. Pending like a stale date."""
    return _serving_state(Path(lake_root))[1]


def sync_serving(lake_root: Path) -> list[date]:
    """Repair the serving copy from the published pointers; returns the dates it patched.

    Needed only after a run was killed between its publish and its serving patch, so it
    compares cheaply (one processado_em per date) and rewrites only the years that differ,
    under the serving lock (a run patches its own rows after its publish, under that lock)."""
    lake_root = Path(lake_root)
    with locked(lake_root / SERVING_PREFIX / ".lock"):
        _, behind, orphans = _serving_state(lake_root)
        changes: dict[date, pa.Table | None] = {}
        for day in behind:
            try:
                changes[day] = read_published(lake_root, day)
            except FileNotFoundError:  # a newer run replaced it just now: it patches its own
                continue
        for orphan in orphans:
            changes[date.fromisoformat(orphan)] = None
        for year in sorted({d.year for d in changes}):
            _patch_year(lake_root, year, {d: t for d, t in changes.items() if d.year == year})
    return sorted(changes)
