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

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from b3_assets.marts.errors import MartError, PlanChanged
from b3_assets.marts.queries import EXECUCAO_SCHEMA, duckdb_mart_sql
from b3_assets.marts.store import MART_SCHEMAS, MART_TABLES, MartStore
from b3_assets.sessions import is_known_session
from b3_assets.source.model import INDICE, LANDING_SCHEMA, conform_landing
from b3_assets.storage.lake import Lake, LocalLake, S3Lake
from b3_assets.storage.landing import read_landing
from glue.layout import (
    LANDING_PREFIX,
    MART_NAMES,
    MARTS_PREFIX,
    landing_date_from_key,
    landing_key,
    mart_year_key,
)
from glue.published import list_landing
from glue.storage import file_sha256
from glue.transform import (
    duckdb_session,
    publication_inputs,
    relation_to_arrow,
)

log = logging.getLogger(__name__)

IsSession = Callable[[date], bool]

MOVIMENTOS_KINDS = ("entrada", "saida")

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
