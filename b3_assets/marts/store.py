"""One Parquet file per mart (or index table) and year, a date's rows replaced by one write
that only lands if no other writer changed the file since it was read."""

import io
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from b3_assets.marts.errors import CorruptYearFile, MartError
from b3_assets.storage.lake import Lake
from glue.layout import (
    MART_COLUMNS,
    MART_INDICADORES,
    MART_MOVIMENTOS,
    MART_NAMES,
    MART_SETORES,
    mart_prefix,
)
from glue.transform import (
    arrow_type,
)

#: Each mart's rows as stored (glue/layout.py is the one definition of the columns).
MART_SCHEMAS: dict[str, pa.Schema] = {
    name: pa.schema([pa.field(c.name, arrow_type(c.glue_type)) for c in columns])
    for name, columns in MART_COLUMNS.items()
}
#: The order of the rows in a year's file.
MART_SORT: dict[str, list[tuple[str, str]]] = {
    MART_MOVIMENTOS: [("data_carteira", "ascending"), ("movimento", "ascending"),
                      ("codigo", "ascending")],
    MART_INDICADORES: [("data_carteira", "ascending")],
    MART_SETORES: [("data_carteira", "ascending"), ("participacao_pct", "descending"),
                   ("setor", "ascending")],
}  # fmt: skip

# --- storage: one file per mart and year --------------------------------------------------


@dataclass(frozen=True)
class YearTable:
    """A table stored as one Parquet file per year under ``prefix`` (``ano=YYYY.parquet``),
    each date's rows (``date_column``) replaced at once: the marts, and the index tables the
    catalog reads for history (b3_assets/indices/)."""

    schema: pa.Schema
    sort: list[tuple[str, str]]
    prefix: str
    date_column: str = "data_carteira"

    def key(self, year: int) -> str:
        return f"{self.prefix}/ano={year:04d}.parquet"

    def conform(self, name: str, table: pa.Table) -> pa.Table:
        """The rows with exactly the schema; a lossy cast raises instead of rounding."""
        if table.column_names != self.schema.names:
            raise MartError(f"{name} produced columns {table.column_names}, expected "
                            f"{self.schema.names}")
        return table.cast(self.schema, safe=True)


MART_TABLES: dict[str, YearTable] = {
    name: YearTable(MART_SCHEMAS[name], MART_SORT[name], mart_prefix(name)) for name in MART_NAMES
}


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=1 << 20)
    return buf.getvalue()


class MartStore:
    """The marts' year files in the lake, each date's rows replaced in one atomic write.

    Locally a lock file (``marts/<name>/.lock``) serializes writers and the file is replaced
    by a rename (glue/local_job.py's helpers, as for the serving copy); on S3 the PUT is
    conditional on the ETag read (``If-Match``/``If-None-Match``) and retried on a conflict,
    so two runs patching the same year never lose each other's dates. A file that cannot be
    read as its table raises CorruptYearFile naming it."""

    def __init__(self, lake: Lake, attempts: int = 8,
                 tables: Mapping[str, YearTable] = MART_TABLES) -> None:
        self.lake = lake
        self.attempts = attempts
        self.tables = tables

    def read(self, name: str, year: int) -> pa.Table:
        """Every stored row of ``name`` in ``year`` (an empty table when there is none)."""
        return self._decode(name, year, self.lake.read_versioned(self.tables[name].key(year))[0])

    def rows_by_date(self, name: str, dates: Iterable[date]) -> dict[date, list[dict[str, Any]]]:
        """The stored rows of ``name`` on ``dates``, by date: each year's file read once."""
        days = sorted(set(dates))
        wanted = pa.array(days, pa.date32())
        by_date: dict[date, list[dict[str, Any]]] = {d: [] for d in days}
        date_column = self.tables[name].date_column
        for year in sorted({d.year for d in days}):
            table = self.read(name, year)
            for row in table.filter(pc.is_in(table.column(date_column), wanted)).to_pylist():
                by_date[row[date_column]].append(row)
        return by_date

    def years(self, name: str) -> list[int]:
        """The years with a file, ascending."""
        prefix = self.tables[name].prefix + "/"
        found = (re.fullmatch(r"ano=(\d{4})\.parquet", k[len(prefix) :]) for k in
                 self.lake.list_keys(prefix))  # fmt: skip
        return sorted(int(m.group(1)) for m in found if m)

    def damaged(self, name: str) -> dict[int, str]:
        """The years of ``name`` whose file cannot be read as the table, each with why."""
        found: dict[int, str] = {}
        for year in self.years(name):
            try:
                self.read(name, year)
            except CorruptYearFile as exc:
                found[year] = exc.why
        return found

    def replace(
        self,
        name: str,
        year: int,
        dates: Collection[date],
        rows: pa.Table,
        *,
        rebuild: bool = False,
        verify: Callable[[], None] | None = None,
    ) -> None:
        """Make ``rows`` the only rows of ``dates`` (all in ``year``) in the year's file.

        ``rebuild``: ``rows`` are the whole year (the stored file, unreadable, is not read).
        ``verify`` is called after the file is read and right before it is written (under
        the lock, before the conditional PUT); what it raises stops the write."""
        if any(d.year != year for d in dates):
            raise MartError(f"dates {sorted(dates)} are not all in {year}")
        spec = self.tables[name]
        new = spec.conform(name, rows)
        days = pa.array(sorted(dates), pa.date32())

        def patch(current: pa.Table) -> pa.Table:
            keep = pc.invert(pc.is_in(current.column(spec.date_column), value_set=days))
            table = pa.concat_tables([current.filter(keep), new])
            return table.take(pc.sort_indices(table, spec.sort, null_placement="at_end"))

        self._update(name, year, patch, rebuild, verify)

    # backends ---------------------------------------------------------------------------

    def _decode(self, name: str, year: int, data: bytes | None) -> pa.Table:
        spec = self.tables[name]
        if data is None:
            return spec.schema.empty_table()
        try:
            table = pq.read_table(io.BytesIO(data), use_threads=False)
            return spec.conform(name, table.select(spec.schema.names))
        except (KeyError, ValueError, OSError) as exc:  # ArrowInvalid is a ValueError
            # pyarrow names the buffer, not the file: the message names the file instead.
            why = str(exc).splitlines()[0].removeprefix(
                "Could not open Parquet input source '<Buffer>': ")[:200]
            raise CorruptYearFile(
                f"{self.lake.uri(spec.key(year))} cannot be read as {name} ({why}): a run of "
                f"the marts rebuilds a mart's file from landing; for another table delete it "
                f"and materialize {name} for {year}'s dates again", why
            ) from exc

    def _current(self, name: str, year: int, data: bytes | None, rebuild: bool) -> pa.Table:
        """The rows a patch starts from: the stored ones, or none when the year is rebuilt."""
        return self.tables[name].schema.empty_table() if rebuild else self._decode(name, year, data)

    def _update(
        self,
        name: str,
        year: int,
        patch: Callable[[pa.Table], pa.Table],
        rebuild: bool = False,
        verify: Callable[[], None] | None = None,
    ) -> None:
        """Read, patch, verify and write the year's file only if no other writer changed it
        in between (Lake.write_if_unchanged), reading again when one did."""
        key = self.tables[name].key(year)
        for attempt in range(self.attempts):
            data, version = self.lake.read_versioned(key)
            body = _parquet_bytes(patch(self._current(name, year, data, rebuild)))
            if verify is not None:  # after the read: a write since fails the write below
                verify()
            if self.lake.write_if_unchanged(key, body, version):
                return
            time.sleep(min(0.05 * 2**attempt, 2.0))  # another run wrote the year: read again
        raise MartError(
            f"{self.lake.uri(key)} kept changing while this run patched it ({self.attempts} "
            "attempts): too many concurrent mart runs; run this one again"
        )
