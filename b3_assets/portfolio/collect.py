"""Collecting one date of a portfolio view into its raw archive: the archive first, B3 when
needed. One path for the day's portfolio and B3's views of the four-month period (theoretical
portfolio, preview), which B3 does not date: they are filed under the trading date of their
capture, and only that date can be fetched (:func:`fetch_only_on`).

No Dagster here: the raw assets and ``b3-pipeline import-csv`` call this."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from b3_assets.portfolio.enrichments import (
    SECTORS,
    EnrichmentMismatchError,
    fill_notes,
    filled_table,
    landing_entry,
    missing,
    missing_notes,
)
from b3_assets.sessions import FIRST_TRADING_DATE, is_trading_day
from b3_assets.source.errors import (
    B3CaptureDateError,
    B3DateMismatchError,
    B3Error,
    B3PayloadError,
    B3UnavailableError,
)
from b3_assets.source.model import INDICE, VIEW_NAMES, Portfolio, PortfolioView
from b3_assets.source.parse import check_size, refuse_non_csv
from b3_assets.source.payload import RawPayload
from b3_assets.source.validate import enrichment_problems
from b3_assets.storage.archive import RawArchive, StoreOutcome
from b3_assets.storage.lake import Lake
from glue.layout import period_raw_prefix

Fetcher = Callable[[], RawPayload]


@dataclass(frozen=True)
class Collected:
    portfolio: Portfolio
    payload: RawPayload
    stored: StoreOutcome | None
    from_archive: bool
    #: The enrichments the fetched day landed without (name -> why): empty when none.
    missing: Mapping[str, str] = field(default_factory=dict)


def collect(
    archive: RawArchive, fetch: Fetcher, data_carteira: date, refetch: bool = False,
    fetch_plain: Fetcher | None = None, *, view: PortfolioView = "day",
) -> Collected:
    """The date's portfolio (of ``view``: a period view is of the trading date of its capture):
    from the archive (no network) unless absent or ``refetch``.

    A fetched payload is parsed, date-checked and validated before anything is written, so a
    bad payload or another date leaves the archive untouched. An enrichment never costs the
    day (b3_assets/portfolio/enrichments.py): when the sector view (``fetch``) fails, times out or
    fails only its own rules (labels missing, subsector totals off), the plain portfolio
    (``fetch_plain``, B3's segment 1) is archived instead, recording the sectors as missing
    and why (``Collected.missing``); :func:`fill_enrichments` fills them in later."""
    if not refetch:
        archived = archive.latest(data_carteira)
        if archived is not None:
            return Collected(archived.portfolio(data_carteira, view=view), archived, None, True)
    if fetch_plain is None:
        payload = fetch()
        portfolio = payload.portfolio(data_carteira, view=view)
        return Collected(portfolio, payload, archive.store(payload, data_carteira), False)
    got = _sector_view(fetch, data_carteira)
    if not isinstance(got, str):
        payload, portfolio = got
        return Collected(portfolio, payload, archive.store(payload, data_carteira), False)
    try:
        payload = fetch_plain()
        portfolio = payload.portfolio(data_carteira)
    except B3Error as exc:
        exc.add_note(f"The plain view was asked because {got}")
        raise
    lacking = {SECTORS.name: got}
    stored = archive.store(payload, data_carteira, missing_notes(lacking))
    return Collected(portfolio, payload, stored, False, lacking)


def _sector_view(fetch: Fetcher, data_carteira: date) -> tuple[RawPayload, Portfolio] | str:
    """The sector view's payload and sound portfolio, or why it cannot enrich the day: it
    failed (timeouts, 5xx past the retries), answered something unreadable, or failed only
    its own rules. What the plain view would share (another date, a portfolio that breaks
    the rules, a wrong address, a long rate limit) is raised."""
    try:
        payload = fetch()
    except B3UnavailableError as exc:
        return f"{SECTORS.source} failed: {exc}"
    except B3PayloadError as exc:
        return f"{SECTORS.source} answered something unreadable: {exc}"
    try:
        return payload, payload.portfolio(data_carteira)
    except B3PayloadError:
        problems = _enrichment_problems(payload, data_carteira)
        if not problems:
            raise
        return f"{SECTORS.source} failed its own rules: " + "; ".join(problems)


def _enrichment_problems(payload: RawPayload, data_carteira: date) -> list[str]:
    """The sector view's problems when the portfolio itself, of the date asked, is sound."""
    try:
        parsed = payload.parse()
    except B3PayloadError:
        return []
    return enrichment_problems(parsed) if parsed.data_carteira == data_carteira else []


@dataclass(frozen=True)
class Filled:
    """What :func:`fill_enrichments` did for one date."""

    #: The enrichments filled in now (the raw archive changed): empty when nothing changed.
    filled: tuple[str, ...]
    #: What a user reads: what was filled, or why not.
    message: str


def fill_enrichments(archive: RawArchive, fetch: Fetcher, data_carteira: date) -> Filled:
    """Fill in what ``data_carteira`` landed without (:func:`enrichments.missing`), keeping
    its rows: the sector view (``fetch``) asked again and, when it is sound now and of the
    very portfolio that landed, archived beside it as its fill (landing then adds its
    columns to the same rows: :func:`enrichments.landing_table`). Anything else (nothing
    missing, B3 still failing, B3 on another date, another portfolio) changes nothing and
    says why; it never raises for B3's sake, an enrichment never fails a run."""
    day = data_carteira.isoformat()
    entry = landing_entry(archive, data_carteira)
    lacking = missing(entry)
    if entry is None or not lacking:
        return Filled((), f"{day}: no enrichment is missing from its landing "
                      "(nothing to fill in); nothing changed.")
    names = sorted(lacking)
    what = ", ".join(names)
    try:
        got = _sector_view(fetch, data_carteira)
    except B3DateMismatchError as exc:
        got = (f"B3 has moved on to {exc.served.isoformat()}, so {day}'s {what} can no longer "
               "be asked from B3")
    except B3Error as exc:
        got = f"{SECTORS.source} could not be asked: {exc}"
    if isinstance(got, str):
        return Filled((), f"{day}: {what} still missing: {got}. Nothing changed: the landed "
                      "rows stay as they are, the next fill attempt asks again.")
    payload, portfolio = got
    base = archive.load(entry).portfolio(data_carteira).to_landing_table()
    try:
        filled_table(base, portfolio.to_landing_table(), names)
    except EnrichmentMismatchError as exc:
        return Filled((), f"{day}: {what} not filled: {exc}. B3 changed the portfolio since "
                      "it landed; the landed one is kept (`refetch: true` replaces it with "
                      "B3's current one). Nothing changed.")
    archive.store(payload, data_carteira, fill_notes(entry, names))
    return Filled(tuple(names), f"{day}: {what} filled in from {SECTORS.source}, the "
                  "landed rows unchanged; landing is rebuilt with them.")


def csv_payload(path: Path) -> RawPayload:
    """A downloaded B3 CSV as a raw payload (source ``csv``), bytes untouched.

    Its ``fetched_at`` (landing's ``coletado_em``) is the time of the import, not the file's
    modification time: the newest import of a date is the one landing uses."""
    data = Path(path).read_bytes()
    refuse_non_csv(data, str(path))
    # Parsed as CSV whatever the file's suffix (a renamed download is still B3's CSV).
    name = path.name if path.suffix.lower() == ".csv" else f"{path.name}.csv"
    return RawPayload("csv", str(Path(path).resolve()), datetime.now(UTC), ((name, data),))


def _session_check(where: str) -> Callable[[date], bool]:
    """``is_trading_day`` for a file's date, where a date outside the calendar the project
    knows is a refusal naming the range (never a traceback that stops the other files)."""

    def is_session(day: date) -> bool:
        try:
            return is_trading_day(day)
        except ValueError as exc:
            raise B3PayloadError(
                where, f"{exc}: b3-pipeline keeps sessions from {FIRST_TRADING_DATE} on, and "
                "later ones once exchange_calendars knows them (upgrade it with uv lock "
                "--upgrade-package exchange-calendars). Check the file's title line and name.",
                day) from exc

    return is_session


def import_csv(archive: RawArchive, path: Path,
               archive_for: Callable[[str], RawArchive] | None = None) -> Collected:
    """Validate a downloaded CSV and put it in the raw archive under its portfolio date:
    ``archive`` for IBOV, ``archive_for(index)`` for any other index's download (its title
    ``SMLL - Carteira do Dia …`` or name ``SMLLDia_…`` says which)."""
    check_size(Path(path).stat().st_size, str(path), "CSV")  # before reading it into memory
    payload = csv_payload(path)
    portfolio = payload.portfolio(is_session=_session_check(str(path)))
    if not portfolio.constituents:
        raise B3PayloadError(str(path), "no constituents")
    if portfolio.indice != INDICE:
        if archive_for is None:
            raise B3PayloadError(str(path), f"this is index {portfolio.indice}'s portfolio, "
                                 "not IBOV's")
        archive = archive_for(portfolio.indice)
    stored = archive.store(payload, portfolio.data_carteira)
    return Collected(portfolio, payload, stored, False)


# --- the period views: theoretical portfolio and preview -------------------------------------

def period_archive(lake: Lake, view: PortfolioView) -> RawArchive:
    """The raw archive of a period view: ``raw/ibov_teorica`` or ``raw/ibov_previa``."""
    return RawArchive(lake, period_raw_prefix(view), date_field="data_captura")


def fetch_only_on(fetch: Fetcher, view: PortfolioView, current_session: date,
                  data_captura: date, where: str) -> Fetcher:
    """``fetch``, for a period view captured on ``data_captura``: B3 neither dates nor keeps
    these views, so only the date B3 is on now (``current_session``) can be fetched; any other
    is :class:`B3CaptureDateError` (``where``: the address named)."""

    def fetch_now() -> RawPayload:
        if data_captura != current_session:
            raise B3CaptureDateError(where, VIEW_NAMES[view], data_captura, current_session)
        return fetch()

    return fetch_now
