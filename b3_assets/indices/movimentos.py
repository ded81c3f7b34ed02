"""The mart ``b3_movimentos``: who entered and left every index, and when (no Dagster here).

ibov_movimentos for every index (docs/contracts.md "Every B3 index"): one SQL text in Athena's
dialect (``b3_assets/marts/sql/b3_movimentos.sql``) run on DuckDB like the IBOV marts, over
the daily landing files ``landing/indices/dt=D/carteiras.parquet``. Each index of D is compared
with the latest earlier landing date that holds *that index*, so a collection that missed an
index one day (landed later by the second attempt, or never) never reads as every ticker of it
leaving. Rows are stored as ``marts/b3_movimentos/ano=YYYY.parquet`` (one file per year, each
date's rows replaced by one atomic write, :class:`~b3_assets.marts.store.MartStore`), so a
query over years reads a few files. The landing date after each date computed is computed again (its
previous date may have changed), so every date converges to what a full backfill gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from b3_assets.marts.queries import EXECUCAO_SCHEMA, duckdb_mart_sql
from b3_assets.marts.store import MartStore, YearTable
from b3_assets.platform.check_results import CheckOutcome
from b3_assets.sessions import is_known_session
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.storage.lake import Lake, LakeError
from b3_assets.storage.landing import read_parquet_key
from glue.layout import (
    INDEX_TABLE_COLUMNS,
    LANDING_INDICES_PREFIX,
    MART_B3_MOVIMENTOS,
    carteiras_key,
    index_table_prefix,
)
from glue.transform import arrow_type, duckdb_session, relation_to_arrow

IsSession = Callable[[date], bool]

#: The rows as stored (glue/layout.py is the one definition of the columns).
B3_MOVIMENTOS_SCHEMA = pa.schema(
    [pa.field(c.name, arrow_type(c.glue_type)) for c in INDEX_TABLE_COLUMNS[MART_B3_MOVIMENTOS]]
)
B3_MOVIMENTOS_TABLE = YearTable(
    B3_MOVIMENTOS_SCHEMA,
    [("data_carteira", "ascending"), ("indice", "ascending"), ("movimento", "ascending"),
     ("codigo", "ascending")],
    index_table_prefix(MART_B3_MOVIMENTOS),
)
#: How many earlier landing dates are searched for an index missing on the date just before
#: (a failed collection); an index absent longer starts again with no movements.
LOOKBACK_DATES = 10

_CARTEIRAS_KEY = re.compile(re.escape(LANDING_INDICES_PREFIX) + r"/dt=(\d{4}-\d{2}-\d{2})/"
                            r"carteiras\.parquet")


def movimentos_store(lake: Lake) -> MartStore:
    """The year files of ``b3_movimentos`` (the marts' atomic, locked store)."""
    return MartStore(lake, tables={MART_B3_MOVIMENTOS: B3_MOVIMENTOS_TABLE})


# --- which dates, against which previous dates --------------------------------------------


def carteiras_sessions(lake: Lake, is_session: IsSession = is_known_session) -> list[date]:
    """Dates with a ``carteiras.parquet`` that are B3 sessions, ascending (a stray file on a
    holiday is never some date's previous portfolio)."""
    found = (_CARTEIRAS_KEY.fullmatch(k) for k in lake.list_keys(LANDING_INDICES_PREFIX + "/"))
    days = set()
    for match in found:
        if match is None:
            continue
        try:
            days.add(date.fromisoformat(match.group(1)))
        except ValueError:
            continue
    return sorted(d for d in days if is_session(d))


@dataclass(frozen=True)
class MovimentosPlan:
    """The dates a run computes: those asked for that landed, plus the next landing date of
    each (computed again: its previous date may be the one just landed)."""

    dates: list[date]
    missing: list[date]
    followers: list[date]


def plan_movimentos(sessions: Sequence[date], requested: Iterable[date]) -> MovimentosPlan:
    ordered = sorted(set(sessions))
    wanted = set(requested)
    present = wanted & set(ordered)
    followers = {ordered[i + 1] for i, d in enumerate(ordered[:-1]) if d in present} - wanted
    return MovimentosPlan(sorted(present | followers), sorted(wanted - set(ordered)),
                          sorted(followers))


class CarteirasReader:
    """Each date's ``carteiras.parquet`` read once per run (a date and its previous dates)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._tables: dict[date, pa.Table] = {}

    def table(self, day: date) -> pa.Table:
        """The rows of ``day`` only (a stray row of another date is never compared)."""
        if day not in self._tables:
            table = read_parquet_key(self.lake, carteiras_key(day), LANDING_SCHEMA)
            self._tables[day] = table.filter(pc.equal(table.column("data_carteira"), day))
        return self._tables[day]

    def indices(self, day: date) -> set[str]:
        return set(self.table(day).column("indice").to_pylist())

    def codes(self, day: date, index: str) -> set[str]:
        table = self.table(day)
        return set(table.filter(pc.equal(table.column("indice"), index))
                   .column("codigo").to_pylist())


def previous_dates(reader: CarteirasReader, sessions: Sequence[date], day: date,
                   lookback: int = LOOKBACK_DATES) -> dict[str, date | None]:
    """Each index landed on ``day`` -> the latest earlier landing date holding it (None: not
    within ``lookback`` landing dates, e.g. a new index or the first date)."""
    wanted = reader.indices(day)
    found: dict[str, date | None] = dict.fromkeys(sorted(wanted))
    earlier = [d for d in sessions if d < day][-lookback:]
    for before in reversed(earlier):
        pending = {i for i, d in found.items() if d is None}
        if not pending:
            break
        for index in pending & reader.indices(before):
            found[index] = before
    return found


# --- computing ---------------------------------------------------------------------------


def compute_movimentos(reader: CarteirasReader,
                       previous: Mapping[date, Mapping[str, date | None]]) -> pa.Table:
    """The rows of every date in ``previous`` (date -> index -> its previous landing date), in
    one DuckDB query whatever the number of dates (a backfill range costs one query)."""
    dates = sorted(previous)
    anteriores = sorted({p for by_index in previous.values() for p in by_index.values()
                         if p is not None})

    def rows(days: Sequence[date]) -> pa.Table:
        tables = [reader.table(d) for d in days]
        return pa.concat_tables(tables) if tables else LANDING_SCHEMA.empty_table()

    pairs = [(d, i, p) for d in dates for i, p in sorted(previous[d].items())]
    execucao = pa.Table.from_pydict(
        {"data_carteira": [d for d, _, _ in pairs], "indice": [i for _, i, _ in pairs],
         "data_carteira_anterior": [p for _, _, p in pairs]}, schema=EXECUCAO_SCHEMA)
    with duckdb_session() as con:
        con.register("carteira_atual", rows(dates))
        con.register("carteira_anterior", rows(anteriores))
        con.register("execucao", execucao)
        result = relation_to_arrow(con.sql(duckdb_mart_sql(MART_B3_MOVIMENTOS)))
    return B3_MOVIMENTOS_TABLE.conform(MART_B3_MOVIMENTOS, result)


@dataclass
class MovimentosRun:
    """What one run computed and stored."""

    plan: MovimentosPlan
    previous: dict[date, dict[str, date | None]] = field(default_factory=dict)
    rows: pa.Table = field(default_factory=B3_MOVIMENTOS_SCHEMA.empty_table)

    @property
    def computed(self) -> list[date]:
        return sorted(self.previous)

    def rows_of(self, day: date) -> list[dict[str, Any]]:
        return self.rows.filter(pc.equal(self.rows.column("data_carteira"), day)).to_pylist()


def build_movimentos(lake: Lake, requested: Iterable[date],
                     is_session: IsSession = is_known_session) -> MovimentosRun:
    """Compute the dates asked for (and the landing date after each) and store them: each
    year's file is rewritten once. A date asked for without a carteiras file is left out
    (``plan.missing``); the caller says so."""
    sessions = carteiras_sessions(lake, is_session)
    plan = plan_movimentos(sessions, requested)
    reader = CarteirasReader(lake)
    run = MovimentosRun(plan)
    if not plan.dates:
        return run
    run.previous = {d: previous_dates(reader, sessions, d) for d in plan.dates}
    run.rows = compute_movimentos(reader, run.previous)
    store = movimentos_store(lake)
    for year in sorted({d.year for d in plan.dates}):
        days = {d for d in plan.dates if d.year == year}
        in_year = pc.is_in(run.rows.column("data_carteira"),
                           value_set=pa.array(sorted(days), pa.date32()))
        store.replace(MART_B3_MOVIMENTOS, year, days, run.rows.filter(in_year))
    return run


# --- the per-date check -------------------------------------------------------------------


def stored_movimentos(lake: Lake, dates: Iterable[date]) -> dict[date, list[dict[str, Any]]]:
    """The stored rows of ``dates``, by date: each year's file read once."""
    return movimentos_store(lake).rows_by_date(MART_B3_MOVIMENTOS, dates)


def movimentos_outcome(lake: Lake, day: date, rows: Sequence[Mapping[str, Any]],
                       is_session: IsSession = is_known_session,
                       sessions: Sequence[date] | None = None) -> CheckOutcome:
    """For every index landed on ``day``, the stored entries and exits are exactly the set
    differences with that index's previous landing date, each once, against that date; no row
    names an index that did not land on ``day``. The metadata names each index that differs."""
    sessions = carteiras_sessions(lake, is_session) if sessions is None else sessions
    reader = CarteirasReader(lake)
    try:
        previous = previous_dates(reader, sessions, day)
    except LakeError as exc:
        return False, {"problem": f"{exc}: materialize daily_b3_indices for {day}"}
    wrong: list[str] = []
    entradas = saidas = 0
    for index, before in previous.items():
        atual = reader.codes(day, index)
        anterior = reader.codes(before, index) if before else set()
        expected = {"entrada": sorted(atual - anterior) if before else [],
                    "saida": sorted(anterior - atual)}
        mine = [r for r in rows if r["indice"] == index]
        found = {k: sorted(r["codigo"] for r in mine if r["movimento"] == k) for k in expected}
        against = {r["data_carteira_anterior"] for r in mine}
        entradas, saidas = entradas + len(found["entrada"]), saidas + len(found["saida"])
        if found != expected or len(mine) != sum(map(len, found.values())) or (
                mine and against != {before}):
            wrong.append(f"{index} (expected {_moves(expected)} against {before}; stored "
                         f"{_moves(found)})")
    strays = sorted({r["indice"] for r in rows} - set(previous))
    if strays:
        wrong.append(f"rows for indices not landed on {day}: {', '.join(strays)}")
    meta: dict[str, Any] = {
        "indices_compared": sum(1 for p in previous.values() if p is not None),
        "indices_without_previous_date": ", ".join(i for i, p in previous.items() if p is None)
        or "none",
        "entradas": entradas, "saidas": saidas,
        "differences": "; ".join(wrong)[:2000] or "none",
    }
    if wrong:
        meta["fix"] = f"materialize daily_b3_indices for {day} again (it recomputes the mart)"
    return not wrong, meta


def _moves(moves: Mapping[str, Sequence[str]]) -> str:
    return (f"entradas {','.join(moves['entrada']) or 'none'}, "
            f"saidas {','.join(moves['saida']) or 'none'}")


def summary_markdown(rows: Sequence[Mapping[str, Any]], limit: int = 40) -> str:
    """Each index's entries and exits of one date, as the UI shows them."""
    by_index: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        by_index.setdefault(r["indice"], {"entrada": [], "saida": []})[r["movimento"]].append(
            r["codigo"])
    lines = ["| índice | entradas | saídas |", "|---|---|---|"]
    lines += [f"| {i} | {', '.join(m['entrada']) or '-'} | {', '.join(m['saida']) or '-'} |"
              for i, m in sorted(by_index.items())[:limit]]
    if not by_index:
        lines.append("| (none) | - | - |")
    return "\n".join(lines)

