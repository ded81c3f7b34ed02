"""What can go wrong when collecting the portfolio from B3, each with a message that names
where (URL or file), which portfolio date, what is wrong and what to do."""

from __future__ import annotations

from datetime import date


class B3Error(Exception):
    """Base of every B3 source error."""


class B3PayloadError(B3Error):
    """B3 answered, but not with a portfolio b3-pipeline can trust. Nothing is written."""

    def __init__(self, where: str, problem: str, data_carteira: date | None = None) -> None:
        self.where = where
        self.problem = problem
        self.data_carteira = data_carteira
        when = f" (portfolio date {data_carteira.isoformat()})" if data_carteira else ""
        super().__init__(f"B3 payload from {where}{when} rejected: {problem}")


class B3UnavailableError(B3Error):
    """B3 could not be reached or kept failing after the retries (timeouts, 429, 5xx)."""


class B3BlockedError(B3Error):
    """B3 refused a non-browser client (403 or an HTML block page instead of JSON).

    ``B3_FETCH=auto`` answers this by falling back to the browser."""


class B3DateMismatchError(B3Error):
    """B3 serves only the current portfolio: the one it served is not for the date asked."""

    def __init__(self, where: str, asked: date, served: date) -> None:
        self.where = where
        self.asked = asked
        self.served = served
        super().__init__(
            f"B3 at {where} serves the portfolio of {served.isoformat()}, not of "
            f"{asked.isoformat()}: B3 publishes only the current portfolio, so "
            f"{asked.isoformat()} cannot be fetched now. Nothing was written. Import that "
            f"day's downloaded CSV with `b3-pipeline import-csv`, or materialize "
            f"{served.isoformat()} instead."
        )


class BrowserMissingError(B3Error):
    """No Chromium executable was found for the browser fetch."""
