"""The marts: ``marts/ibov_movimentos``, ``marts/ibov_indicadores``, ``marts/ibov_setores``.

Tables for history (docs/contracts.md "Marts") computed from landing alone, so they exist as soon as
a date lands, whatever the Glue job does. Each mart is one SQL text in Athena's dialect
(``b3_assets/marts/sql/``) over the landing rows of the dates computed (``carteira_atual``),
of their previous landing dates (``carteira_anterior``) and one ``execucao`` row per date;
Dagster runs it on DuckDB in both environments, transpiled by sqlglot, and stores the rows in
the lake (folder or bucket) as ``marts/<name>/ano=YYYY.parquet``: one file per year, so a
query over years reads a few files; the catalog (DuckDB views | Glue tables for Athena) reads
those files.

A range run (a backfill) reads each landing file once, computes every date in one query per
mart, and rewrites each year's file once. A date's rows are replaced in its year's file by one
atomic write (a rename locally, a conditional PUT on S3) under a lock, so readers see the old
rows of a date or the new ones and concurrent runs never lose each other's dates. The date
after each date computed is computed again too (its previous landing date may have changed:
a gap filled, a date corrected), so every date converges to what a full backfill gives.

Runs are serialized like refined's (:func:`build_marts`): on a folder lake one run at a time
from plan to write, and before each write the landing files the plan read are compared with
the lake's, a change making the run plan again. A year file that cannot be read (torn, foreign)
is rebuilt by the next run from every landing date of its year, with a warning naming it.
"""

import functools
import io
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from b3_assets.keys import LANDING, MART_KEYS
from b3_assets.partitions import partition_dates, trading_day_partitions
from b3_assets.platform.check_results import CheckOutcome, check_evaluation, evaluated_by_own_step
from b3_assets.platform.resources import CatalogResource, LakeResource
from b3_assets.sessions import is_known_session
from b3_assets.source.model import INDICE, LANDING_SCHEMA, conform_landing
from b3_assets.storage.lake import Lake, LakeError, LocalLake, S3Lake
from b3_assets.storage.landing import read_landing
from glue.job import list_landing
from glue.layout import (
    LANDING_PREFIX,
    MART_B3_MOVIMENTOS,
    MART_COLUMNS,
    MART_INDICADORES,
    MART_MOVIMENTOS,
    MART_NAMES,
    MART_SETORES,
    MARTS_PREFIX,
    landing_date_from_key,
    landing_key,
    mart_prefix,
    mart_year_key,
)
from glue.local_job import file_sha256
from glue.transform import (
    arrow_type,
    duckdb_session,
    publication_inputs,
    relation_to_arrow,
)

log = logging.getLogger(__name__)

IsSession = Callable[[date], bool]

MOVIMENTOS, INDICADORES, SETORES = (MART_KEYS[n] for n in MART_NAMES)

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

MOVIMENTOS_KINDS = ("entrada", "saida")

#: ``execucao``: one row per (date computed, index): the previous landing date to compare with.
EXECUCAO_SCHEMA = pa.schema([
    pa.field("data_carteira", pa.date32()), pa.field("indice", pa.string()),
    pa.field("data_carteira_anterior", pa.date32()),
])


class MartError(ValueError):
    """A mart cannot be computed or stored as asked; the message says what to do."""


class CorruptYearFile(MartError):
    """A year file that cannot be read as its table: torn by a crash or a disk, foreign, or
    edited by hand. A run of the marts rebuilds a mart's file from landing (build_marts)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class PlanChanged(MartError):
    """Landing changed between a run's plan and one of its writes: the run plans again."""


# --- the SQL: Athena's dialect, transpiled for DuckDB -------------------------------------


#: The marts written over another SQL file's rows: name -> (CTE name, the file it names).
MART_BASES: dict[str, tuple[str, str]] = {
    MART_MOVIMENTOS: ("movimentos_indices", MART_B3_MOVIMENTOS),
}
SQL_NAMES = (*MART_NAMES, MART_B3_MOVIMENTOS)


def _sql_file(name: str) -> str:
    return resources.files("b3_assets.marts").joinpath("sql", f"{name}.sql").read_text("utf-8")


@functools.cache
def mart_sql(name: str) -> str:
    """The text Athena would run for the mart ``name``: ``b3_assets/marts/sql/<name>.sql``,
    preceded by the file it is written over (:data:`MART_BASES`) as a CTE."""
    if name not in SQL_NAMES:
        raise KeyError(f"no mart {name!r}; the marts are {', '.join(SQL_NAMES)}")
    if name not in MART_BASES:
        return _sql_file(name)
    cte, base = MART_BASES[name]
    return f"WITH {cte} AS (\n{_sql_file(base)}\n)\n{_sql_file(name)}"


def to_duckdb(sql: str, where: str) -> str:
    """Transpile one statement from Athena's dialect (Trino) to DuckDB, keeping numbers exact.

    DuckDB divides in DOUBLE and reads a bare ``DECIMAL`` as ``DECIMAL(18,3)``, where Trino
    divides integers exactly and types ``DECIMAL '0.0001'`` by its digits. So the SQL may divide
    only BIGINT/INTEGER casts (Trino's integer division, made DuckDB's ``//`` here) and must
    give every decimal its precision; anything else is refused, as is a function sqlglot does
    not know in Athena's dialect (it would be passed through unchecked)."""
    import sqlglot
    from sqlglot import exp

    statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    if len(statements) != 1:
        raise MartError(f"{where} must hold exactly one statement, not {len(statements)}")
    tree = statements[0]
    for func in tree.find_all(exp.Anonymous):
        raise MartError(
            f"{where}: {func.name}() is not a function sqlglot knows in Athena's dialect; "
            "use one both Athena and DuckDB have"
        )
    for dtype in tree.find_all(exp.DataType):
        if dtype.this == exp.DataType.Type.DECIMAL and not dtype.expressions:
            raise MartError(
                f"{where}: {dtype.parent.sql('athena') if dtype.parent else 'DECIMAL'} has no "
                "precision (DuckDB would read DECIMAL(18,3)); write CAST('x' AS DECIMAL(p, s))"
            )

    def integer_division(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Div):
            return node
        integers = (exp.DataType.Type.BIGINT, exp.DataType.Type.INT)
        operands = (node.this, node.expression)
        if not all(isinstance(o, exp.Cast) and o.to.this in integers for o in operands):
            raise MartError(
                f"{where}: {node.sql('athena')} divides something other than two BIGINT casts; "
                "DuckDB would compute it in DOUBLE. Divide CAST(... AS BIGINT) values only."
            )
        return exp.IntDiv(this=node.this, expression=node.expression)

    return tree.transform(integer_division).sql(dialect="duckdb")


@functools.cache
def duckdb_mart_sql(name: str) -> str:
    """The mart's query for DuckDB (transpiled once per process)."""
    return to_duckdb(mart_sql(name), f"b3_assets/marts/sql/{name}.sql")


# --- computing ---------------------------------------------------------------------------


def conform_mart(name: str, table: pa.Table) -> pa.Table:
    """The mart's rows with exactly its schema; a lossy cast raises instead of rounding."""
    return MART_TABLES[name].conform(name, table)


def compute_marts(
    landing: Mapping[date, pa.Table],
    previous: Mapping[date, date | None],
    names: Iterable[str] = MART_NAMES,
) -> dict[str, pa.Table]:
    """The marts' rows of the dates in ``previous`` (date -> its previous landing date).

    ``landing`` holds the landing table of every date and every previous date. One DuckDB
    query per mart computes all the dates at once (a backfill range costs one query)."""
    dates = sorted(previous)
    anteriores = sorted({p for p in previous.values() if p is not None})
    missing = [d for d in [*dates, *anteriores] if d not in landing]
    if missing:
        raise MartError(f"no landing table given for {', '.join(map(str, missing))}")

    def rows(days: Sequence[date]) -> pa.Table:
        tables = [conform_landing(landing[d]) for d in days]
        return pa.concat_tables(tables) if tables else LANDING_SCHEMA.empty_table()

    execucao = pa.Table.from_pydict(
        {"data_carteira": dates, "indice": [INDICE] * len(dates),
         "data_carteira_anterior": [previous[d] for d in dates]},
        schema=EXECUCAO_SCHEMA,
    )
    with duckdb_session() as con:
        con.register("carteira_atual", rows(dates))
        con.register("carteira_anterior", rows(anteriores))
        con.register("execucao", execucao)
        return {
            name: conform_mart(name, relation_to_arrow(con.sql(duckdb_mart_sql(name))))
            for name in names
        }


# --- which dates, against which previous dates --------------------------------------------


def landing_sessions(lake: Lake, is_session: IsSession = is_known_session) -> list[date]:
    """Dates with a landing file that are B3 sessions, ascending (the refine's rule: a stray
    file on a holiday is never some date's previous portfolio)."""
    found = {landing_date_from_key(k) for k in lake.list_keys(LANDING_PREFIX + "/")}
    return sorted(d for d in found if d is not None and is_session(d))


def previous_session(sessions: Sequence[date], day: date) -> date | None:
    """The latest landing session strictly before ``day`` (gaps allowed), or None."""
    earlier = [d for d in sessions if d < day]
    return earlier[-1] if earlier else None


@dataclass(frozen=True)
class MartPlan:
    """What a run computes: each date with its previous landing date."""

    previous: dict[date, date | None]
    #: Dates asked for that have no landing file (nothing is computed for them).
    missing: list[date]
    #: Dates not asked for, computed again because a date asked for is their previous date.
    followers: list[date]


def plan_marts(sessions: Sequence[date], requested: Iterable[date]) -> MartPlan:
    ordered = sorted(set(sessions))
    landed, wanted = set(ordered), set(requested)
    present = wanted & landed
    followers = {ordered[i + 1] for i, d in enumerate(ordered[:-1]) if d in present} - wanted
    index = {d: i for i, d in enumerate(ordered)}
    return MartPlan(
        previous={d: ordered[index[d] - 1] if index[d] else None for d in present | followers},
        missing=sorted(wanted - landed),
        followers=sorted(followers),
    )


# --- what a plan read: the landing files, fingerprinted as refined records them -------------


class _LazyFingerprints(Mapping[date, str | None]):
    """The landing sessions, each file's fingerprint taken on first use: a folder lake hashes
    only the files a plan reads, not every landing file of the lake."""

    def __init__(self, days: Sequence[date], fingerprint: Callable[[date], str | None]) -> None:
        self._days, self._known = list(days), set(days)
        self._fingerprint = fingerprint
        self._taken: dict[date, str | None] = {}

    def __getitem__(self, day: date) -> str | None:
        if day not in self._known:
            raise KeyError(day)
        if day not in self._taken:
            self._taken[day] = self._fingerprint(day)
        return self._taken[day]

    def __iter__(self) -> Iterator[date]:
        return iter(self._days)

    def __len__(self) -> int:
        return len(self._days)


def landing_inputs(
    lake: Lake, is_session: IsSession = is_known_session
) -> tuple[Mapping[date, str | None], str]:
    """The landing sessions (ascending) with each file's fingerprint, and the fingerprint's
    kind, as refined's ``_current.json`` records them: the ETag on S3 (one listing), the
    bytes' sha256 in a folder lake."""
    if isinstance(lake, S3Lake):
        found = list_landing(lake.client, lake.bucket)
        return {d: etag for d, etag in found.items() if is_session(d)}, "etag"
    if not isinstance(lake, LocalLake):
        raise MartError(f"no landing fingerprints for a {type(lake).__name__}")
    return _LazyFingerprints(
        landing_sessions(lake, is_session), lambda d: file_sha256(lake.path(landing_key(d)))
    ), "sha256"


def plan_inputs(
    fingerprints: Mapping[date, str | None], kind: str, days: Iterable[date]
) -> dict[date, dict[str, str | None] | None]:
    """What each date's marts are computed from: its landing file, its previous landing date
    and that date's file (glue.transform.publication_inputs, refined's record); a date no
    longer landed maps to None."""
    return {
        d: publication_inputs(fingerprints, d, kind) if d in fingerprints else None
        for d in sorted(days)
    }


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


# --- one run ------------------------------------------------------------------------------


@dataclass
class MartsRun:
    """What :func:`build_marts` did: the dates computed, their rows, the dates it could not
    compute (date -> why), and the year files it rebuilt because they were unreadable
    ((mart, year) -> why)."""

    plan: MartPlan
    tables: dict[str, pa.Table]
    problems: dict[date, str] = field(default_factory=dict)
    rebuilt: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def computed(self) -> list[date]:
        return sorted(self.plan.previous)

    def rows_of(self, name: str, day: date) -> list[dict[str, Any]]:
        table = self.tables[name]
        return table.filter(pc.equal(table.column("data_carteira"), day)).to_pylist()


#: Plans a run makes while landing keeps changing under it, before it gives up.
PLAN_ATTEMPTS = 5


def build_marts(
    lake: Lake,
    dates: Iterable[date],
    names: Sequence[str] = MART_NAMES,
    is_session: IsSession = is_known_session,
) -> MartsRun:
    """Compute ``names`` for ``dates`` (and each one's next landing date) and store them.

    A date without a landing file, or whose file holds no row of that date, is left as it is
    and reported in ``problems``; the other dates are computed and stored. A year file of
    ``names`` that cannot be read (torn, foreign) is rebuilt: every landing date of its year
    is computed and the file written anew, with a warning naming it (``rebuilt``).

    Serialized as refined is, so concurrent runs and landing writes never leave a date
    compared with a previous date that is no longer its previous one: on a folder lake one
    run at a time from plan to write (``marts/.lock``), and before each year file is written
    (under its lock; on S3 after its GET, before the PUT conditional on that GET's ETag) the
    inputs of every date computed are compared with the lake's now (:func:`plan_inputs`, as
    refined's ``_current.json`` records them). A date landed, rewritten or removed since
    makes the run plan and compute again (PLAN_ATTEMPTS times at most)."""
    requested = sorted(set(dates))
    with lake.serialized(MARTS_PREFIX):
        for _ in range(PLAN_ATTEMPTS):
            try:
                return _build_once(lake, requested, names, is_session)
            except PlanChanged as exc:
                log.info("%s: planning the marts again", exc)
    raise MartError(
        f"landing kept changing while the marts of {', '.join(map(str, requested))} were "
        f"computed ({PLAN_ATTEMPTS} plans): run them again once the landing writes are done"
    )


def _build_once(
    lake: Lake, requested: Sequence[date], names: Sequence[str], is_session: IsSession
) -> MartsRun:
    """One plan, computed and stored (build_marts); raises PlanChanged, before the write
    concerned, when landing no longer matches the plan."""
    fingerprints, kind = landing_inputs(lake, is_session)
    sessions = list(fingerprints)
    problems: dict[date, str] = {}
    plan = plan_marts(sessions, requested)
    for day in plan.missing:
        problems[day] = (
            f"no landing file for {day} ({lake.uri(landing_key(day))}): materialize "
            "landing/ibov_portfolio for that date first"
        )
    store = MartStore(lake)
    damaged = {(name, year): why for name in names for year, why in store.damaged(name).items()}
    # An unreadable year is computed whole: every landing date of it, against its previous.
    whole = {d for d in sessions if any((n, d.year) in damaged for n in names)}
    every = {**{d: previous_session(sessions, d) for d in whole}, **plan.previous}
    needed = sorted(set(every) | {p for p in every.values() if p is not None})
    # Fingerprinted before they are read: a file rewritten after this fails verify() below.
    expected = plan_inputs(fingerprints, kind, every)
    landing = {d: read_landing(lake, d) for d in needed}
    empty = {d for d in needed if not pc.any(pc.equal(landing[d].column("data_carteira"), d))}
    unusable: dict[date, str] = {}
    for day, anterior in sorted(every.items()):
        if day in empty:
            unusable[day] = (
                f"the landing file of {day} has no row dated {day}: land the date again "
                "(landing/ibov_portfolio) before its marts"
            )
        elif anterior in empty:  # never compare with a bad date
            unusable[day] = (
                f"its previous landing date {anterior} has no row of its date: land it again"
            )
    # A follower that cannot be recomputed keeps its rows; its own run will say why.
    problems.update({d: why for d, why in unusable.items() if d in set(requested)})
    computed = {d: p for d, p in every.items() if d not in unusable}
    previous = {d: p for d, p in plan.previous.items() if d in computed}
    plan = MartPlan(previous, plan.missing, [d for d in plan.followers if d in previous])

    def verify() -> None:
        now, now_kind = landing_inputs(lake, is_session)
        if list(now) == sessions and all(now[d] == fingerprints[d] for d in needed):
            return  # same dates, same files: the same inputs (the cheap comparison first)
        current = plan_inputs(now, now_kind, every)
        changed = [d for d in expected if current[d] != expected[d]]
        if changed:
            raise PlanChanged(
                "landing changed since the plan for " + ", ".join(map(str, changed))
                + " (a date landed, rewritten or removed)"
            )

    tables = (
        compute_marts(landing, computed, names)
        if computed
        else {name: MART_SCHEMAS[name].empty_table() for name in names}
    )
    for name in names:
        rebuilt = {y for n, y in damaged if n == name}
        for year in sorted({d.year for d in previous} | rebuilt):
            days = {d for d in (computed if year in rebuilt else previous) if d.year == year}
            table = tables[name]
            in_year = pc.is_in(table.column("data_carteira"), pa.array(sorted(days), pa.date32()))
            store.replace(name, year, days, table.filter(in_year), rebuild=year in rebuilt,
                          verify=verify)  # fmt: skip
    for (name, year), why in sorted(damaged.items()):
        log.warning(
            "%s was corrupt (%s): rebuilt from the landing files of its %d date(s)",
            lake.uri(mart_year_key(name, year)), why, sum(d.year == year for d in computed),
        )  # fmt: skip
    return MartsRun(plan, tables, problems, damaged)


# --- Dagster: the assets ------------------------------------------------------------------

MART_DESCRIPTIONS = {
    MART_MOVIMENTOS: "**Mart** of entries and exits: one row per ticker that entered "
    "('entrada', its weight on the date) or left ('saida', its weight on the previous date) "
    "the portfolio since the previous landing date (a B3 session).",
    MART_INDICADORES: "**Mart** of concentration and turnover: one row per portfolio date with "
    "qtd_acoes, qtd_emissores, hhi (sum of squared weights), n_efetivo (1/hhi), top10_pct and "
    "giro_pct (one-way turnover since the previous landing date). Exact decimals.",
    MART_SETORES: "**Mart** of sector weights: one row per portfolio date and economic sector "
    "(null setor: not classified, e.g. a CSV import), with its tickers and weight.",
}
_STORAGE_NOTE = (
    " Computed from landing by b3_assets/marts/sql/*.sql (Athena's dialect, run on DuckDB); "
    "stored as marts/<name>/ano=YYYY.parquet; table of the same name in the catalog (DuckDB "
    "view | Glue table for Athena). Each run also recomputes the next landing date."
)


def mart_table_schema(name: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.glue_type, description=c.comment) for c in MART_COLUMNS[name]
        ]
    )


@dg.multi_asset(
    name="ibov_marts",
    specs=[
        dg.AssetSpec(
            MART_KEYS[name],
            deps=[LANDING],
            tags={"layer": "mart"},
            kinds={"duckdb", "parquet"},
            description=MART_DESCRIPTIONS[name] + _STORAGE_NOTE,
            metadata={"dagster/column_schema": mart_table_schema(name)},
        )
        for name in MART_NAMES
    ],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def ibov_marts(
    context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Reads each landing file once, computes the selected marts for every date of the run in
    one query each, writes each year's file once, then makes the catalog's tables current and
    evaluates the marts' checks on what it stored (unless the run evaluates them on their own).

    A run that computed every date reports one MaterializeResult per mart (Dagster records it
    for each date of the range, and the checks run next); a date it could not compute fails
    the run after recording the dates it did compute, one materialization each. The next
    landing dates recomputed with the run are recorded one by one."""
    names = [n for n in MART_NAMES if MART_KEYS[n] in context.selected_asset_keys]
    the_lake = lake.get()
    run = build_marts(the_lake, partition_dates(context), names)
    for (name, year), why in sorted(run.rebuilt.items()):
        context.log.warning(
            f"{the_lake.uri(mart_year_key(name, year))} was corrupt ({why}): rebuilt from the "
            f"landing files of every date of {year}"
        )
    catalog.engine().publish_marts({n: the_lake.uri(mart_prefix(n) + "/") for n in names})
    # The checks of every date computed, on the rows as stored, by the step that stored them
    # (after its materializations, as a check step would).
    checks = []
    if not evaluated_by_own_step(context, MART_CHECK_KEYS):
        selected = {(n, check) for n in names for check in MART_CHECKS[n]}
        checks = [
            check_evaluation(MART_KEYS[name], check, day.isoformat(), outcome)
            for name, check, day, outcome in evaluate_mart_checks(
                the_lake, run.computed, selected
            )
        ]
    requested = {date.fromisoformat(k) for k in context.partition_keys}
    if run.plan.followers:
        context.log.info(
            "recomputed the next landing date(s) too (their previous date was in this run): "
            + ", ".join(map(str, run.plan.followers))
        )
    for day in run.computed:
        if day not in requested or run.problems:
            for name in names:
                yield dg.AssetMaterialization(
                    asset_key=MART_KEYS[name],
                    partition=day.isoformat(),
                    metadata=_metadata(name, [day], run, the_lake),
                )
    if run.problems:
        yield from checks
        raise dg.Failure(
            description="\n".join(f"{d}: {why}" for d, why in sorted(run.problems.items())),
            allow_retries=False,
            metadata={"computed_dates": ", ".join(map(str, run.computed)) or "none"},
        )
    days = sorted(requested)
    for name in names:
        yield dg.MaterializeResult(
            asset_key=MART_KEYS[name], metadata=_metadata(name, days, run, the_lake)
        )
    yield from checks


#: Lines of per-date detail in a materialization's metadata (a range shows its last dates).
METADATA_DATES = 20


def _metadata(name: str, days: Sequence[date], run: MartsRun, lake: Lake) -> dict[str, Any]:
    """What the UI shows for a mart over ``days``: rows, where, and each date's summary."""
    shown = days[-METADATA_DATES:]
    meta: dict[str, Any] = {
        "dates": len(days),
        "rows": sum(len(run.rows_of(name, d)) for d in days),
        "uri": dg.MetadataValue.url(lake.uri(mart_year_key(name, days[-1].year))),
    }
    rebuilt = [lake.uri(mart_year_key(n, y)) for n, y in sorted(run.rebuilt) if n == name]
    if rebuilt:  # unreadable year files this run wrote anew from landing
        meta["rebuilt_corrupt_files"] = ", ".join(rebuilt)
    if len(days) == 1:
        anterior = run.plan.previous[days[0]]
        meta["data_carteira_anterior"] = anterior.isoformat() if anterior else "none"
    if name == MART_MOVIMENTOS:
        lines = ["| data | anterior | entradas | saídas |", "|---|---|---|---|"]
        for day in shown:
            rows = run.rows_of(name, day)
            moves = {
                k: [r["codigo"] for r in rows if r["movimento"] == k] for k in MOVIMENTOS_KINDS
            }
            anterior = run.plan.previous[day]
            lines.append(
                f"| {day} | {anterior or '-'} | {', '.join(moves['entrada']) or '-'} | "
                f"{', '.join(moves['saida']) or '-'} |"
            )
        meta["movimentos"] = dg.MetadataValue.md("\n".join(lines))
    elif name == MART_INDICADORES:
        columns = ("qtd_acoes", "qtd_emissores", "hhi", "n_efetivo", "top10_pct", "giro_pct")
        lines = ["| data | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
        for day in shown:
            for row in run.rows_of(name, day):
                values = " | ".join("-" if row[c] is None else str(row[c]) for c in columns)
                lines.append(f"| {day} | {values} |")
        meta["indicadores"] = dg.MetadataValue.md("\n".join(lines))
    elif name == MART_SETORES:
        lines = ["| data | setor | ações | part. (%) |", "|---|---|---:|---:|"]
        for day in shown[-1:]:  # the sectors of the last date only: ~11 lines
            lines += [
                f"| {day} | {r['setor'] or '(sem setor)'} | {r['qtd_acoes']} | "
                f"{r['participacao_pct']} |"
                for r in run.rows_of(name, day)
            ]
        meta["setores"] = dg.MetadataValue.md("\n".join(lines))
    return meta


#: One run of the marts over the dates asked for (their checks run with them).
marts_job = dg.define_asset_job(
    "marts_from_landing",
    # The marts' step evaluates their checks on what it stored (checks.py: who evaluates).
    selection=dg.AssetSelection.assets(*MART_KEYS.values()).without_checks(),
    description="The marts (ibov_movimentos, ibov_indicadores, ibov_setores) from landing, "
    "with their checks; a range computes every date in one run.",
)


# --- checks: plain rules, then Dagster ----------------------------------------------------

WEIGHT_TOLERANCE = Decimal("0.01")
HHI_CHECK = "hhi_and_n_efetivo_match_landing"


def setores_outcome(rows: Sequence[Mapping[str, Any]]) -> CheckOutcome:
    """The sectors' weights of a date add up to 100 ± 0.01 %."""
    if not rows:
        return False, {"problem": "no rows for the date: materialize marts/ibov_setores"}
    total = sum((r["participacao_pct"] for r in rows), Decimal(0))
    unknown = sum((r["participacao_pct"] for r in rows if r["setor"] is None), Decimal(0))
    return abs(total - 100) <= WEIGHT_TOLERANCE, {
        "total_pct": str(total),
        "sectors": sum(1 for r in rows if r["setor"] is not None),
        "sem_setor_pct": str(unknown),
    }


def _one_row(rows: Sequence[Mapping[str, Any]]) -> str | None:
    if len(rows) != 1:
        return f"{len(rows)} rows for the date, expected 1: materialize marts/ibov_indicadores"
    return None


def giro_outcome(rows: Sequence[Mapping[str, Any]]) -> CheckOutcome:
    """giro_pct is between 0 and 100 (null only for a date without a previous date)."""
    if (problem := _one_row(rows)) is not None:
        return False, {"problem": problem}
    giro, anterior = rows[0]["giro_pct"], rows[0]["data_carteira_anterior"]
    meta = {"giro_pct": str(giro), "data_carteira_anterior": str(anterior)}
    if giro is None:
        return anterior is None, meta
    return Decimal(0) <= giro <= Decimal(100), meta


def hhi_outcome(rows: Sequence[Mapping[str, Any]], weights: Collection[Decimal]) -> CheckOutcome:
    """hhi and n_efetivo are those of the date's landing weights (``weights``, in %),
    recomputed here apart from the mart's SQL (Python decimals, not the SQL's integers):
    hhi = Σ (w / 100)² to 6 decimals, n_efetivo = 1 / Σ (w / 100)² to 3, both half up. So a
    wrong formula, a ticker lost or counted twice, or a mart older than its landing file fails."""
    if (problem := _one_row(rows)) is not None:
        return False, {"problem": problem}
    if not weights:
        return False, {"problem": "no landing rows for the date: materialize "
                       "landing/ibov_portfolio, then the marts"}
    squares = sum((w * w for w in weights), Decimal(0)) / 10_000  # exact: w has 3 decimals
    hhi = squares.quantize(Decimal("0.000001"), ROUND_HALF_UP)
    n_efetivo = (1 / squares).quantize(Decimal("0.001"), ROUND_HALF_UP) if squares else None
    stored = rows[0]["hhi"], rows[0]["n_efetivo"]
    return stored == (hhi, n_efetivo), {
        "hhi": str(stored[0]),
        "n_efetivo": str(stored[1]),
        "hhi_from_landing": str(hhi),
        "n_efetivo_from_landing": str(n_efetivo),
        "landing_rows": len(weights),
    }


def movimentos_outcome(
    rows: Sequence[Mapping[str, Any]],
    atual: Collection[str],
    anterior: Collection[str] | None,
    data_carteira_anterior: date | None,
) -> CheckOutcome:
    """Entries are the tickers of the date missing on the previous landing date, exits the
    reverse (none without a previous date), each once, all against that previous date."""
    expected = {  # keys: MOVIMENTOS_KINDS
        "entrada": sorted(set(atual) - set(anterior or ())) if anterior is not None else [],
        "saida": sorted(set(anterior or ()) - set(atual)),
    }
    found = {k: sorted(r["codigo"] for r in rows if r["movimento"] == k) for k in expected}
    others = sorted({r["movimento"] for r in rows} - set(expected))
    dates = sorted({str(r["data_carteira_anterior"]) for r in rows})
    meta: dict[str, Any] = {
        "data_carteira_anterior": str(data_carteira_anterior),
        "entradas": ", ".join(found["entrada"]) or "none",
        "saidas": ", ".join(found["saida"]) or "none",
    }
    for kind in expected:
        if found[kind] != expected[kind]:
            meta[f"expected_{kind}s"] = ", ".join(expected[kind]) or "none"
    if others:
        meta["unknown_movimentos"] = ", ".join(others)
    passed = found == expected and not others and dates in ([], [str(data_carteira_anterior)])
    return passed, meta


MART_CHECKS: dict[str, dict[str, str]] = {
    MART_MOVIMENTOS: {
        "entries_and_exits_match_landing": "Entries and exits are exactly the set differences "
        "of the tickers of the date and of the previous landing date (a B3 session).",
    },
    MART_INDICADORES: {
        "giro_pct_between_0_and_100": "One-way turnover is between 0 and 100 % (null only "
        "without a previous date).",
        HHI_CHECK: "hhi and n_efetivo are those of the date's landing weights, recomputed apart "
        "from the mart's SQL: hhi = Σ (w/100)² to 6 decimals, n_efetivo = 1/hhi to 3.",
    },
    MART_SETORES: {
        "weights_add_up_to_100": "The sectors' weights add up to 100 ± 0.01 % on every date.",
    },
}


MART_CHECK_KEYS = [
    dg.AssetCheckKey(MART_KEYS[name], check)
    for name, checks in MART_CHECKS.items()
    for check in checks
]


def _check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            check, asset=MART_KEYS[name], description=text, partitions_def=trading_day_partitions
        )
        for name, checks in MART_CHECKS.items()
        for check, text in checks.items()
    ]


def stored_rows(
    store: MartStore, name: str, dates: Collection[date]
) -> dict[date, list[dict[str, Any]]]:
    """The stored rows of ``dates``, by date: each year's file read once."""
    wanted = pa.array(sorted(dates), pa.date32())
    by_date: dict[date, list[dict[str, Any]]] = {d: [] for d in dates}
    for year in sorted({d.year for d in dates}):
        table = store.read(name, year)
        for row in table.filter(pc.is_in(table.column("data_carteira"), wanted)).to_pylist():
            by_date[row["data_carteira"]].append(row)
    return by_date


def evaluate_mart_checks(
    lake: Lake,
    dates: Iterable[date],
    selected: Collection[tuple[str, str]],
    is_session: IsSession = is_known_session,
) -> Iterator[tuple[str, str, date, CheckOutcome]]:
    """(mart, check, date, outcome) of each selected (mart, check) and date, from the stored
    marts (each year file read once) and, for the movements, the landing files."""
    days = sorted(set(dates))
    store = MartStore(lake)
    names = sorted({name for name, _ in selected})
    rows = {name: stored_rows(store, name, days) for name in names}
    sessions = landing_sessions(lake, is_session) if MART_MOVIMENTOS in names else []
    landed: dict[date, dict[str, list[Any]] | str] = {}

    def landing(day: date) -> dict[str, list[Any]] | str:
        """The date's landing rows (codigo, participacao_pct, …), or why they could not be read."""
        if day not in landed:
            try:
                table = read_landing(lake, day)
                landed[day] = table.filter(pc.equal(table.column("data_carteira"), day)).to_pydict()
            except LakeError as exc:
                landed[day] = str(exc)
        return landed[day]

    for day in days:
        for name, check in sorted(selected, key=lambda s: (MART_NAMES.index(s[0]), s[1])):
            day_rows = rows[name][day]
            if name == MART_SETORES:
                outcome = setores_outcome(day_rows)
            elif check == "giro_pct_between_0_and_100":
                outcome = giro_outcome(day_rows)
            elif check == HHI_CHECK:
                atual = landing(day)
                outcome = (
                    (False, {"landing": atual}) if isinstance(atual, str)
                    else hhi_outcome(day_rows, atual["participacao_pct"])
                )
            else:
                anterior = previous_session(sessions, day)
                atual, before = landing(day), landing(anterior) if anterior else None
                if isinstance(atual, str) or isinstance(before, str):
                    outcome = (False, {"landing": atual if isinstance(atual, str) else before})
                else:
                    outcome = movimentos_outcome(
                        day_rows, set(atual["codigo"]),
                        set(before["codigo"]) if before is not None else None, anterior,
                    )
            yield name, check, day, outcome


@dg.multi_asset_check(name="ibov_marts_checks", specs=_check_specs(), can_subset=True)
def ibov_marts_checks(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckEvaluation]:
    """One result per check and per date of the run, read from the stored marts; also for
    the next landing dates the marts' run recomputed with them (same plan)."""
    names = {key: name for name, key in MART_KEYS.items()}
    selected = {(names[k.asset_key], k.name) for k in context.selected_asset_check_keys}
    the_lake = lake.get()
    dates = [date.fromisoformat(k) for k in context.partition_keys]
    followers = plan_marts(landing_sessions(the_lake), dates).followers
    for name, check, day, outcome in evaluate_mart_checks(the_lake, dates + followers, selected):
        yield check_evaluation(MART_KEYS[name], check, day.isoformat(), outcome)
