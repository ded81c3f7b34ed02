"""One year of every index's daily closes: archive first, then landing (no Dagster here).

A year B3 has closed never changes: once archived from a capture made after its last day, it is
landed again from the archive with no network. The current year (or a year last captured
before it ended) is fetched again, so each trading day adds the sessions B3 closed since.
A year B3 serves nothing for (before the index existed) lands no file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache

from b3_assets.source.errors import B3Error
from b3_assets.source.indices import LEVELS_SCHEMA, IndexLevels, parse_index_levels, run_pooled
from b3_assets.source.payload import RawPayload
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import Lake
from b3_assets.storage.landing import landing_parquet
from glue.layout import levels_key, levels_raw_prefix

#: The first year the Dagster partitions reach back to; years an index was not computed in
#: simply land nothing for it.
FIRST_LEVELS_YEAR = 1998


def levels_archive(lake: Lake, index: str, year: int) -> RawArchive:
    """``raw/index_levels/indice=CODE/ano=YYYY/dt=D/``: each capture of the year, by the
    trading date it was made on."""
    return RawArchive(lake, levels_raw_prefix(index, year), date_field="data_captura")


def year_closed(year: int, captured_on: date) -> bool:
    """A capture made after the year's last day holds the whole year."""
    return captured_on > date(year, 12, 31)


def collect_year(lake: Lake, index: str, year: int, today: date,
                 fetch: Callable[[str, int], RawPayload]) -> tuple[IndexLevels, bool]:
    """``index``'s closes of ``year`` and whether they came from the archive: a closed year
    from its archive, else from B3 (validated, then archived under ``today``)."""
    archive = levels_archive(lake, index, year)
    captures = archive.dates()
    if captures and year_closed(year, max(captures)):
        payload = archive.latest(max(captures))
        if payload is not None:
            return parse_index_levels(payload, index, year), True
    payload = fetch(index, year)
    levels = parse_index_levels(payload, index, year)
    archive.store(payload, today)
    return levels, False


@dataclass
class LevelsCapture:
    """One year of every index: the closes of each, and what failed."""

    year: int
    levels: dict[str, IndexLevels] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failures: dict[str, B3Error] = field(default_factory=dict)

    @property
    def served(self) -> dict[str, int]:
        """Sessions per index that B3 serves closes for in the year (0: none, not landed)."""
        return {i: len(lv.closes) for i, lv in sorted(self.levels.items())}


def capture_levels(lake: Lake, indices: Sequence[str], year: int, today: date,
                   fetch: Callable[[str, int], RawPayload]) -> LevelsCapture:
    """Every index's closes of ``year`` (at most 4 requests at once), each failing alone."""
    capture = LevelsCapture(year)
    results = run_pooled(sorted(indices),
                         lambda index: collect_year(lake, index, year, today, fetch))
    for index, result in results.items():
        if isinstance(result, B3Error):
            capture.failures[index] = result
            continue
        levels, reused = result
        capture.levels[index] = levels
        (capture.reused if reused else capture.fetched).append(index)
    return capture


def land_levels(lake: Lake, levels: IndexLevels) -> str | None:
    """``landing/index_levels/indice=CODE/ano=YYYY.parquet`` in one atomic write (None: B3
    serves no close that year, nothing is written)."""
    if not levels.closes:
        return None
    key = levels_key(levels.indice, levels.ano)
    lake.write_bytes(key, landing_parquet(levels.to_landing_table(), LEVELS_SCHEMA))
    return key


@cache
def _sessions_calendar():
    import exchange_calendars as xcals

    return xcals.get_calendar("BVMF", start=f"{FIRST_LEVELS_YEAR}-01-01")


def sessions_before(year: int, before: date) -> list[date]:
    """B3 sessions of ``year`` strictly before ``before`` (the sessions with a close by
    then), from exchange_calendars' BVMF calendar."""
    last = min(date(year, 12, 31), date.fromordinal(before.toordinal() - 1))
    if last < date(year, 1, 1):
        return []
    return [ts.date() for ts in _sessions_calendar().sessions_in_range(date(year, 1, 1), last)]


def missing_sessions(closes: Sequence[date], year: int, captured_on: date) -> list[date]:
    """Sessions from the index's first close of ``year`` up to the day before the capture
    that have no close (an index created mid-year starts at its first close)."""
    if not closes:
        return []
    first = min(closes)
    have = set(closes)
    return [d for d in sessions_before(year, captured_on) if d >= first and d not in have]
