"""``B3_FETCH``: which way to get the portfolio from B3, and the fallback of ``auto``.

``auto`` asks the JSON API first (fast, no browser needed) and takes the browser only when
the API refuses non-browser clients or answers something the parser cannot read: the two
cases a real browser can get past. Outages (timeouts, 5xx after the retries) are not worked
around: the browser would hit the same outage, only slower; nor is an address that does not
work (:class:`B3ConfigError`, :class:`B3UnreachableError`), which fails in seconds.

Deadlines: the API fetch ends within ``deadline_s`` (``api.default_deadline``: 120 s with the
defaults), the browser within ``2 × max(timeout_s, 30) + 15`` s (75 s with the defaults); so
``auto`` ends within their sum.
"""

from __future__ import annotations

import logging

from b3_assets.source.api import check_base_url, fetch_api
from b3_assets.source.browser import fetch_browser
from b3_assets.source.errors import B3BlockedError, B3Error, B3PayloadError
from b3_assets.source.model import PortfolioView
from b3_assets.source.payload import RawPayload

log = logging.getLogger(__name__)

MODES = ("auto", "api", "browser")


def fetch_portfolio(
    mode: str,
    base_url: str,
    *,
    browser_path: str | None = None,
    timeout_s: float = 20.0,
    retries: int = 4,
    backoff_s: float = 0.5,
    deadline_s: float | None = None,
    segment: str = "2",
    view: PortfolioView = "day",
) -> RawPayload:
    """Today's portfolio as B3 sent it, by ``mode`` (``auto`` | ``api`` | ``browser``).

    With ``auto`` the returned payload always parses; validation and the date check are the
    caller's (``payload.portfolio(expected_date)``). ``deadline_s`` bounds the API fetch.
    ``segment`` "2" is B3's sector view (the portfolio plus sector labels); "1", the plain
    code view, is asked from the JSON API whatever the mode: it is the fallback when the
    sector view fails its own rules (:func:`b3_assets.portfolio.collect.collect`). So is a
    period ``view`` (``teorica``, ``previa``): B3's page has no table of them to read."""
    if mode not in MODES:
        raise ValueError(f"B3_FETCH={mode!r} is not one of {', '.join(MODES)}")
    base_url = check_base_url(base_url)

    def api() -> RawPayload:
        return fetch_api(base_url, view=view, segment=segment, timeout_s=timeout_s,
                         retries=retries, backoff_s=backoff_s, deadline_s=deadline_s)

    if mode == "api" or segment != "2" or view != "day":
        return api()
    if mode == "browser":
        return _browser(base_url, browser_path, timeout_s)

    try:
        payload = api()
        payload.parse()
    except B3BlockedError as exc:
        reason = f"the API refused a non-browser client: {exc}"
    except B3PayloadError as exc:
        reason = f"the API answered something unparsable: {exc}"
    else:
        log.info("B3 fetch (auto): JSON API, %d page(s) from %s", len(payload.files),
                 payload.url)
        return payload
    log.warning("B3 fetch (auto): falling back to the browser because %s", reason)
    try:
        payload = _browser(base_url, browser_path, timeout_s)
    except B3Error as exc:
        exc.add_note(f"B3_FETCH=auto tried the JSON API first: {reason}")
        raise
    log.info("B3 fetch (auto): browser, %s from %s",
             ", ".join(name for name, _ in payload.files), payload.url)
    return payload


def _browser(base_url: str, browser_path: str | None, timeout_s: float) -> RawPayload:
    # The browser needs a launch and a page load on top of the API calls: never less than 30s.
    return fetch_browser(base_url, browser_path=browser_path, timeout_s=max(timeout_s, 30.0))
