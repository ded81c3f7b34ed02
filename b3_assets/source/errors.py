"""What can go wrong when collecting the portfolio from B3, each with a message that names
where (URL or file), which portfolio date, what is wrong and what to do.

Two families, because the pipeline answers them differently: :class:`B3PermanentError` is
everything retrying cannot fix (a wrong setting, a host that does not exist, a payload that
breaks the rules, another date), so the step fails at once; any other :class:`B3Error` is
transient (timeouts, 429, 5xx, a WAF block) and worth another try later."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

#: No message quotes more than this many characters of what B3 sent.
MAX_QUOTE = 80
#: No payload problem is longer than this: a 5 MB one-line file must not make a 5 MB message.
MAX_PROBLEM = 4000


def clip(text: str, limit: int = MAX_QUOTE) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def listing(items: Iterable[object], limit: int = 10) -> str:
    """``a, b, c … and N more``: the first ``limit`` items, each clipped, and a count."""
    items = list(items)
    shown = ", ".join(clip(str(item)) for item in items[:limit])
    rest = len(items) - limit
    return f"{shown} … and {rest:,} more" if rest > 0 else shown


class B3Error(Exception):
    """Base of every B3 source error."""


class B3PermanentError(B3Error):
    """What retrying cannot fix: the step fails at once instead of retrying."""


class B3PayloadError(B3PermanentError):
    """B3 answered, but not with a portfolio b3-pipeline can trust. Nothing is written."""

    def __init__(self, where: str, problem: str, data_carteira: date | None = None) -> None:
        self.where = where
        self.problem = clip(problem, MAX_PROBLEM)
        self.data_carteira = data_carteira
        when = f" (portfolio date {data_carteira.isoformat()})" if data_carteira else ""
        super().__init__(f"B3 payload from {clip(where, 300)}{when} rejected: {self.problem}")


class B3ConfigError(B3PermanentError):
    """The configured B3 address cannot work: not an http(s) URL, or B3 answers 404 there."""


class B3UnreachableError(B3PermanentError):
    """The B3 host does not resolve, refuses connections or there is no network at all."""


class B3UnavailableError(B3Error):
    """B3 is slow or failing for now: timeouts, a response over its deadline, 429, 5xx after
    the retries. Transient: the step's retry policy tries again later."""


class B3RateLimitedError(B3PermanentError):
    """B3 answered 429 and asked, with ``Retry-After``, for a wait no run makes: retrying in
    the step (20 to 80 s) would only ask again too soon, so the step fails at once."""

    def __init__(self, url: str, attempts: int, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"B3 API {url} is rate-limiting: HTTP 429 Too Many Requests on {attempts} "
            f"attempt(s), asking to wait {retry_after_s:,.0f} s (Retry-After), longer than a "
            "run waits. Nothing was written. Try again after that time (the 09:45 second "
            "attempt does, for the day's portfolio); if it persists, B3 may be blocking this "
            "address.")


class B3BlockedError(B3Error):
    """B3 refused a non-browser client (403 or an HTML block page instead of JSON).

    ``B3_FETCH=auto`` answers this by falling back to the browser."""


class B3DateMismatchError(B3PermanentError):
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


class B3CaptureDateError(B3PermanentError):
    """A view B3 publishes without a date (the period's theoretical portfolio, the preview)
    can only be captured for the trading date B3 is on now."""

    def __init__(self, where: str, what: str, asked: date, current: date) -> None:
        self.where = where
        self.asked = asked
        self.current = current
        super().__init__(
            f"{what} at {where} is only B3's current one, as of the trading date "
            f"{current.isoformat()}: it cannot be captured for {asked.isoformat()} now (B3 "
            f"keeps no history and puts no date in it). Nothing was written. Materialize "
            f"{current.isoformat()} instead; {asked.isoformat()} can only be rebuilt from its "
            "raw archive, if it was captured that day."
        )


class BrowserMissingError(B3PermanentError):
    """No Chromium executable was found for the browser fetch."""
