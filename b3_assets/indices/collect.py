"""One trading date of every B3 index: archive first, then landing (no Dagster here).

Like IBOV's collection (b3_assets/portfolio/collect.py), each index's payload is validated (B3's
date, the index's rules) and archived byte for byte with its manifest before anything is landed, and
a date already archived is never fetched again. What is new is isolation: the indices are
fetched at most :data:`~b3_assets.source.indices.MAX_IN_FLIGHT` at a time, an index that fails is
retried on its own, and the others are archived and landed whatever it does; the capture says
which indices are missing and why, so a second attempt fetches only those.

``GetStockIndex`` carries no trading date, so it is archived for the date only once an index
portfolio of that date came from B3 in the same capture (proof that B3 is on that date).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa

from b3_assets.source.errors import B3DateMismatchError, B3Error, B3PermanentError
from b3_assets.source.indices import (
    COMPOSICAO_SCHEMA,
    IndexMembership,
    landing_rows,
    parse_membership,
    run_pooled,
)
from b3_assets.source.model import Portfolio
from b3_assets.source.payload import RawPayload
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import Lake
from b3_assets.storage.landing import landing_parquet
from glue.layout import (
    RAW_INDICES_PREFIX,
    RAW_MEMBERSHIP_FOLDER,
    carteiras_key,
    composicao_key,
    index_raw_folder,
)

log = logging.getLogger(__name__)

#: After the first pass, indices that failed for a transient reason get this many more tries,
#: each alone, after a pause (B3 answering 5xx for one index a moment is common).
RETRY_ROUNDS = 1
RETRY_PAUSE_S = 2.0


def index_archive(lake: Lake, index: str) -> RawArchive:
    """``raw/indices/dt=D/indice=CODE/``: one index's payloads of each date."""
    return RawArchive(lake, RAW_INDICES_PREFIX, sub=index_raw_folder(index))


def membership_archive(lake: Lake) -> RawArchive:
    """``raw/indices/dt=D/composicao/``: GetStockIndex as captured on each date."""
    return RawArchive(lake, RAW_INDICES_PREFIX, date_field="data_captura",
                      sub=RAW_MEMBERSHIP_FOLDER)


def archived_indices(lake: Lake, day: date) -> list[str]:
    """The indices with a payload archived for ``day`` (complete or not)."""
    folders = lake.list_folders(f"{RAW_INDICES_PREFIX}/dt={day.isoformat()}")
    return sorted(f.removeprefix("indice=") for f in folders if f.startswith("indice="))


@dataclass
class IndicesCapture:
    """What one capture of a date holds: the membership, each index's validated portfolio,
    where each came from, and every index (or GetStockIndex) that failed, with the error."""

    day: date
    membership: IndexMembership | None = None
    portfolios: dict[str, Portfolio] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failures: dict[str, B3Error] = field(default_factory=dict)
    membership_error: B3Error | None = None
    #: B3 serves another date: only the archive could give this one (set when that mattered).
    other_date: B3DateMismatchError | None = None

    @property
    def expected(self) -> list[str]:
        """The indices the date should have: GetStockIndex's list, plus any collected."""
        listed = set(self.membership.indices) if self.membership else set()
        return sorted(listed | set(self.portfolios) | set(self.failures))

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.expected) - set(self.portfolios))

    def rows_per_index(self) -> dict[str, int]:
        return {i: len(p.constituents) for i, p in sorted(self.portfolios.items())}

    def problems(self) -> list[str]:
        """One line per failure: which index (or GetStockIndex), and B3's error; and a date
        with nothing at all, when B3 serves another one."""
        lines = []
        if self.membership_error is not None:
            lines.append(f"GetStockIndex (the list of indices): {self.membership_error}")
        lines += [f"{i}: {self.failures[i]}" for i in sorted(self.failures)]
        if not self.portfolios and not lines and self.other_date is not None:
            lines.append(f"no index archived for {self.day}: {self.other_date}")
        return lines


def capture_indices(
    lake: Lake,
    day: date,
    fetch_membership: Callable[[], RawPayload],
    fetch_index: Callable[[str], RawPayload],
    *,
    refetch: bool = False,
    retry_rounds: int = RETRY_ROUNDS,
    retry_pause_s: float = RETRY_PAUSE_S,
    workers: int | None = None,
) -> IndicesCapture:
    """Every index of ``day``: from the archive (no network) unless absent or ``refetch``,
    else from B3, validated and archived. Never raises for B3 trouble: the capture names each
    failure.

    One index is asked first: when B3 is on another date, nothing else is asked (B3 serves
    only the current portfolios). A date whose GetStockIndex was not archived then expects
    only the indices archived for it (a CSV import); one whose list was archived names every
    index still missing."""
    capture = IndicesCapture(day)
    members = membership_archive(lake)
    membership_payload: RawPayload | None = None
    archived = None if refetch else members.latest(day)
    try:
        if archived is not None:
            capture.membership = parse_membership(archived, day)
        else:
            membership_payload = fetch_membership()
            capture.membership = parse_membership(membership_payload, day)
    except B3Error as exc:
        capture.membership_error = exc
    wanted = set(capture.membership.indices) if capture.membership else set()
    wanted |= set(archived_indices(lake, day))  # a second attempt whose list failed
    to_fetch = []
    for index in sorted(wanted):
        payload = None if refetch else index_archive(lake, index).latest(day)
        if payload is None:
            to_fetch.append(index)
            continue
        try:
            capture.portfolios[index] = payload.portfolio(day)
            capture.reused.append(index)
        except B3Error as exc:  # an archive that no longer validates: fetch it again
            log.warning("%s of %s: archived payload rejected (%s); fetching it again",
                        index, day, exc)
            to_fetch.append(index)

    def collect_one(index: str) -> Portfolio:
        payload = fetch_index(index)
        portfolio = payload.portfolio(day)
        if portfolio.indice != index:
            raise B3PermanentError(f"B3 answered {payload.url} with index "
                                   f"{portfolio.indice}'s portfolio, not {index}'s")
        index_archive(lake, index).store(payload, day)
        return portfolio

    def record(results: dict[str, Portfolio | B3Error]) -> list[str]:
        """Keep each result; the indices worth another try (transient failures)."""
        again = []
        for index, result in results.items():
            if isinstance(result, Portfolio):
                capture.portfolios[index] = result
                capture.fetched.append(index)
                capture.failures.pop(index, None)
            else:
                capture.failures[index] = result
                if not isinstance(result, B3PermanentError):
                    again.append(index)
        return again

    pending: list[str] = []
    if to_fetch:
        probe = run_pooled(to_fetch[:1], collect_one)
        if isinstance(probe[to_fetch[0]], B3DateMismatchError):
            capture.other_date = probe[to_fetch[0]]
            if membership_payload is not None:  # B3's list is of another date: not ``day``'s
                capture.membership = None
            else:  # the date's list is archived: every index still missing is named
                capture.failures.update({i: capture.other_date for i in to_fetch})
        else:
            pending = record(probe) + to_fetch[1:]
    options = {} if workers is None else {"workers": workers}
    for attempt in range(retry_rounds + 1):
        if not pending:
            break
        if attempt:
            time.sleep(retry_pause_s)
            log.info("retrying %s alone (attempt %d)", ", ".join(pending), attempt + 1)
        pending = record(run_pooled(pending, collect_one, **options))
    if membership_payload is not None and capture.membership is not None and capture.fetched:
        members.store(membership_payload, day)  # B3 is on ``day``: its list is that date's
    capture.fetched.sort()
    capture.reused.sort()
    return capture


@dataclass(frozen=True)
class LandedIndices:
    """The landing files one capture wrote (lake keys) and their tables."""

    carteiras: str | None
    composicao: str | None
    carteiras_table: pa.Table | None = None
    composicao_table: pa.Table | None = None

    @property
    def rows(self) -> int:
        return self.carteiras_table.num_rows if self.carteiras_table is not None else 0


def land_indices(lake: Lake, capture: IndicesCapture) -> LandedIndices:
    """Write ``landing/indices/dt=D/carteiras.parquet`` (every index collected, sorted by
    (indice, codigo)) and ``composicao.parquet`` (when the date's GetStockIndex is known),
    each in one atomic write. Nothing is written for a date with no index at all."""
    carteiras = composicao = None
    table = members = None
    if capture.portfolios:
        table = landing_rows(capture.portfolios.values())
        carteiras = carteiras_key(capture.day)
        lake.write_bytes(carteiras, landing_parquet(table))
    if capture.membership is not None:
        members = capture.membership.to_landing_table()
        composicao = composicao_key(capture.day)
        lake.write_bytes(composicao, landing_parquet(members, COMPOSICAO_SCHEMA))
    return LandedIndices(carteiras, composicao, table, members)
