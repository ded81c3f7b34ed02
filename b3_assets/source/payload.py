"""What B3 sent, byte for byte: the unit the raw archive stores and landing is rebuilt from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from b3_assets.source.errors import B3DateMismatchError, B3PayloadError
from b3_assets.source.model import Portfolio, PortfolioView
from b3_assets.source.parse import (
    api_request_params,
    date_from_filename,
    parse_api_pages,
    parse_csv,
)
from b3_assets.source.validate import validate_portfolio

Source = Literal["api", "browser", "csv"]


@dataclass(frozen=True)
class RawPayload:
    """B3's answer for one portfolio, verbatim.

    ``files`` are (name, bytes) in order: ``page-001.json``… for the JSON API (as the API or
    the browser received them; ``rendered-table.json`` when the browser had to read the
    table off the page, in the API's shape), or the CSV file's own name and bytes."""

    source: Source
    url: str
    fetched_at: datetime
    files: tuple[tuple[str, bytes], ...]
    #: The JSON pages already decoded by the fetcher (same order as ``files``), so parsing
    #: does not decode them twice. Not part of the payload's identity.
    decoded_pages: tuple[Mapping[str, Any], ...] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def digest(self) -> str:
        """sha256 over names and bytes: equal payloads share it, different ones never do."""
        h = hashlib.sha256()
        for name, data in self.files:
            h.update(name.encode())
            h.update(b"\0")
            h.update(hashlib.sha256(data).digest())
        return h.hexdigest()

    def _pages(self) -> Sequence[Mapping[str, Any] | bytes]:
        pages = [d for n, d in self.files if n.lower().endswith(".json")]
        if self.decoded_pages is not None and len(self.decoded_pages) == len(pages):
            return self.decoded_pages
        return pages

    @property
    def asked_by_sector(self) -> bool:
        """The fetch asked B3's sector view (``GetPortfolioDay`` with ``segment`` 2, in the
        URL kept in the manifest): then the sector rules apply even if B3 left the labels
        out. Payloads archived before the sector view asked ``segment`` 1."""
        return str(api_request_params(self.url).get("segment", "")) == "2"

    def parse(self, view: PortfolioView = "day", data_captura: date | None = None) -> Portfolio:
        """The portfolio in the payload, parsed but not validated (``view``, ``data_captura``:
        :func:`parse_api_pages`'s)."""
        csvs = [(n, d) for n, d in self.files if n.lower().endswith(".csv")]
        if csvs:
            name, data = csvs[0]
            return parse_csv(data, self.url, self.fetched_at, date_from_filename(name))
        return parse_api_pages(self._pages(), self.url, self.fetched_at,
                               by_sector=True if self.asked_by_sector else None, view=view,
                               data_captura=data_captura)

    def portfolio(self, expected_date: date | None = None, *,
                  is_session: Callable[[date], bool] | None = None,
                  view: PortfolioView = "day") -> Portfolio:
        """The validated portfolio; with ``expected_date``, a different B3 date is an error;
        with ``is_session`` (the exchange calendar), so is a date B3 did not trade on (a
        CSV's title or file name can say anything). A period ``view`` is undated by B3:
        ``expected_date`` is then the trading date of its capture, and dates it."""
        portfolio = self.parse(view, expected_date if view != "day" else None)
        if expected_date is not None and portfolio.data_carteira != expected_date:
            raise B3DateMismatchError(self.url, expected_date, portfolio.data_carteira)
        if is_session is not None and not is_session(portfolio.data_carteira):
            raise B3PayloadError(
                self.url, f"{portfolio.data_carteira.isoformat()} "
                f"({portfolio.data_carteira:%A}) is not a B3 session (a weekend or holiday): "
                "no portfolio is published for it. Check the file's title line and name.",
                portfolio.data_carteira)
        return validate_portfolio(portfolio)
