"""Collecting one portfolio date into the raw archive: the archive first, B3 when needed;
and likewise B3's views of the four-month period (theoretical portfolio, preview), which B3
does not date: they are filed under the trading date of their capture.

No Dagster here: the raw assets and ``b3-pipeline import-csv`` call this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from b3_assets.archive import RawArchive, StoreOutcome
from b3_assets.b3.errors import B3CaptureDateError, B3PayloadError
from b3_assets.b3.model import INDICE, PERIOD_VIEW_NAMES, PeriodPortfolio, PeriodView, Portfolio
from b3_assets.b3.parse import check_size, refuse_non_csv
from b3_assets.b3.payload import RawPayload
from b3_assets.b3.validate import enrichment_problems
from b3_assets.lake import Lake
from b3_assets.sessions import FIRST_TRADING_DATE, is_trading_day
from glue.layout import period_raw_prefix

Fetcher = Callable[[], RawPayload]


@dataclass(frozen=True)
class Collected:
    portfolio: Portfolio
    payload: RawPayload
    stored: StoreOutcome | None
    from_archive: bool
    #: Why an enrichment was left out (the sector view failed its rules), None when not.
    degraded: str | None = None


def collect(
    archive: RawArchive, fetch: Fetcher, data_carteira: date, refetch: bool = False,
    fetch_plain: Fetcher | None = None,
) -> Collected:
    """The date's portfolio: from the archive (no network) unless absent or ``refetch``.

    A fetched payload is parsed, date-checked and validated before anything is written, so a
    bad payload or another date leaves the archive untouched. An enrichment never costs the
    day: when only the sector view's own rules fail (labels missing, subsector totals off),
    the plain portfolio (``fetch_plain``, B3's segment 1) is collected instead, with null
    sectors, and ``Collected.degraded`` says why; a later ``refetch`` the same day archives the
    labelled view as a newer payload, which landing then uses."""
    if not refetch:
        archived = archive.latest(data_carteira)
        if archived is not None:
            return Collected(archived.portfolio(data_carteira), archived, None, True)
    payload = fetch()
    degraded = None
    try:
        portfolio = payload.portfolio(data_carteira)
    except B3PayloadError:
        problems = _enrichment_problems(payload, data_carteira)
        if fetch_plain is None or not problems:
            raise
        degraded = "B3's sector view failed its own rules (" + "; ".join(problems) + "): " \
            "landed from the plain view (segment 1) with null sectors"
        payload = fetch_plain()
        portfolio = payload.portfolio(data_carteira)
    stored = archive.store(payload, data_carteira)
    return Collected(portfolio, payload, stored, False, degraded)


def _enrichment_problems(payload: RawPayload, data_carteira: date) -> list[str]:
    """The sector view's problems when the portfolio itself, of the date asked, is sound."""
    try:
        parsed = payload.parse()
    except B3PayloadError:
        return []
    return enrichment_problems(parsed) if parsed.data_carteira == data_carteira else []


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

def period_archive(lake: Lake, view: PeriodView) -> RawArchive:
    """The raw archive of a period view: ``raw/ibov_teorica`` or ``raw/ibov_previa``."""
    return RawArchive(lake, period_raw_prefix(view), date_field="data_captura")


@dataclass(frozen=True)
class CollectedPeriod:
    portfolio: PeriodPortfolio
    payload: RawPayload
    stored: StoreOutcome | None
    from_archive: bool


def collect_period(
    archive: RawArchive,
    fetch: Fetcher,
    view: PeriodView,
    data_captura: date,
    *,
    current_session: date,
    where: str,
    refetch: bool = False,
) -> CollectedPeriod:
    """A period view as captured on the trading date ``data_captura``: from the archive (no
    network) unless absent or ``refetch``; else fetched, which only the date B3 is on now
    (``current_session``) can be, since B3 neither dates nor keeps these views. The payload is
    parsed and validated before anything is written. ``where``: the address named in
    errors."""
    if not refetch:
        archived = archive.latest(data_captura)
        if archived is not None:
            return CollectedPeriod(archived.period_portfolio(view, data_captura), archived,
                                   None, True)
    if data_captura != current_session:
        raise B3CaptureDateError(where, PERIOD_VIEW_NAMES[view], data_captura, current_session)
    payload = fetch()
    portfolio = payload.period_portfolio(view, data_captura)
    return CollectedPeriod(portfolio, payload, archive.store(payload, data_captura), False)
