"""The portfolio straight from B3's JSON API (``GetPortfolioDay``), every page kept verbatim.

B3 is a public site that sometimes answers slowly, rate-limits or fails for a moment: those
are retried with exponential backoff and full jitter. What retrying cannot fix (a 403 or a
block page for non-browser clients, a 404, a body that is not JSON) fails at once, with a
message naming the URL, so ``B3_FETCH=auto`` can decide to try the browser instead.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from b3_assets.b3.errors import B3BlockedError, B3PayloadError, B3UnavailableError
from b3_assets.b3.payload import RawPayload

log = logging.getLogger(__name__)

API_PATH = "/indexProxy/indexCall/GetPortfolioDay/"
PAGE_PATH = "/indexPage/day/IBOV?language=pt-br"
PAGE_SIZE = 120
#: A real IBOV has ~90 rows; more pages than this means the paging info is nonsense.
MAX_PAGES = 50
#: No single wait between attempts is longer than this, whatever Retry-After asks.
MAX_WAIT_S = 30.0
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def portfolio_query(page_number: int, page_size: int = PAGE_SIZE, *, language: str = "pt-br",
                    index: str = "IBOV", segment: str = "1") -> str:
    """The base64 path segment exactly as B3's page builds it:
    ``btoa(JSON.stringify({language, pageNumber, pageSize, index, segment}))``."""
    params = {"language": language, "pageNumber": page_number, "pageSize": page_size,
              "index": index, "segment": segment}
    return base64.b64encode(json.dumps(params, separators=(",", ":")).encode()).decode()


def portfolio_url(base_url: str, page_number: int, page_size: int = PAGE_SIZE) -> str:
    """``{base}/indexProxy/indexCall/GetPortfolioDay/{base64(json)}`` for one page."""
    return f"{base_url.rstrip('/')}{API_PATH}{portfolio_query(page_number, page_size)}"


def new_session(base_url: str) -> requests.Session:
    """A session that asks like the page's own XHR does (browser UA, JSON accept)."""
    s = requests.Session()
    s.headers.update({
        "User-Agent": USER_AGENT,
        "Accept": "application/json, text/plain, */*",
        "Accept-Language": "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7",
        "Referer": f"{base_url.rstrip('/')}{PAGE_PATH}",
    })
    return s


def _sleep(seconds: float) -> None:
    """The one place this module waits (tests replace it to see the waits)."""
    time.sleep(seconds)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_wait(attempt: int, backoff_s: float, retry_after: float | None = None, *,
               max_wait_s: float = MAX_WAIT_S, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Full jitter (uniform in ``[0, backoff_s * 2**(attempt-1)]``) so many clients hitting a
    struggling B3 do not retry in lockstep; a server's ``Retry-After`` wins when given. Both
    are capped at ``max_wait_s``."""
    if retry_after is not None:
        return min(retry_after, max_wait_s)
    ceiling = min(max_wait_s, backoff_s * (2 ** (attempt - 1)))
    return (rng or random).uniform(0.0, ceiling)


def _looks_html(resp: requests.Response) -> bool:
    ctype = resp.headers.get("Content-Type", "").lower()
    return "html" in ctype or resp.content[:512].lstrip().startswith(b"<")


def _html_title(body: bytes) -> str:
    text = body[:4096].decode("utf-8", "replace")
    lower = text.lower()
    start, end = lower.find("<title>"), lower.find("</title>")
    if 0 <= start < end:
        return text[start + 7:end].strip()
    return text[:80].strip()


def get_page(session: requests.Session, url: str, *, timeout_s: float, retries: int,
             backoff_s: float, max_wait_s: float = MAX_WAIT_S) -> bytes:
    """One API page's body, with the retry policy of this module."""
    attempts = retries + 1
    last = "no answer"
    for attempt in range(1, attempts + 1):
        retry_after: float | None = None
        try:
            resp = session.get(url, timeout=(timeout_s, timeout_s))
        except requests.Timeout:
            last = f"timed out after {timeout_s:g}s"
        except requests.ConnectionError as exc:
            last = f"connection failed ({type(exc).__name__}: {exc})"
        except requests.RequestException as exc:
            last = f"request failed ({type(exc).__name__}: {exc})"
        else:
            status = resp.status_code
            if 200 <= status < 300:
                if _looks_html(resp):
                    raise B3BlockedError(
                        f"{url} answered an HTML page ({_html_title(resp.content)!r}) instead "
                        "of JSON: B3 is refusing non-browser clients. B3_FETCH=auto falls back "
                        "to the browser; B3_FETCH=browser uses it directly."
                    )
                return resp.content
            if status == 403:
                raise B3BlockedError(
                    f"{url} answered HTTP 403 Forbidden ({_html_title(resp.content)!r}): B3 is "
                    "refusing non-browser clients. B3_FETCH=auto falls back to the browser; "
                    "B3_FETCH=browser uses it directly."
                )
            if status != 429 and status < 500:
                raise B3UnavailableError(
                    f"{url} answered HTTP {status} {resp.reason} (a client error, not retried):"
                    " check B3_BASE_URL and whether B3 moved the Carteira do Dia API."
                )
            last = f"HTTP {status} {resp.reason}"
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        if attempt < attempts:
            wait = retry_wait(attempt, backoff_s, retry_after, max_wait_s=max_wait_s)
            log.warning("B3 API %s: %s; retry %d/%d in %.2fs", url, last, attempt, retries, wait)
            _sleep(wait)
    raise B3UnavailableError(
        f"B3 API {url} failed {attempts} attempts; the last: {last}. B3 may be down or "
        "rate-limiting; try again later."
    )


def _decode(url: str, body: bytes) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise B3PayloadError(
            url,
            f"the answer is not valid JSON ({exc}); {len(body)} bytes, ending with "
            f"{body[-60:].decode('utf-8', 'replace')!r} (truncated?)",
        ) from exc
    if not isinstance(doc, Mapping):
        raise B3PayloadError(url, f"the JSON is a {type(doc).__name__}, not an object")
    return doc


def _page_info(doc: Mapping[str, Any]) -> tuple[int | None, int | None]:
    page = doc.get("page")
    if not isinstance(page, Mapping):
        return None, None
    pages, records = page.get("totalPages"), page.get("totalRecords")
    return (pages if isinstance(pages, int) else None,
            records if isinstance(records, int) else None)


#: How many times a fetch starts over from page 1 when B3 switches portfolios between pages.
MAX_RESTARTS = 2


class _PortfolioChanged(B3PayloadError):
    """Page N is for another date than page 1: B3 published a new portfolio mid-fetch."""


def _all_pages(
    base: str, get: Callable[[str], bytes]
) -> tuple[list[tuple[str, bytes]], list[Mapping[str, Any]]]:
    """One pass over every page: (file name, bytes) and the decoded pages, checked to agree."""
    first_url = portfolio_url(base, 1)
    first = get(first_url)
    doc = _decode(first_url, first)
    files, docs = [("page-001.json", first)], [doc]
    total_pages, total_records = _page_info(doc)
    if total_pages is not None and total_pages > MAX_PAGES:
        raise B3PayloadError(first_url, f"page.totalPages is {total_pages}, more than "
                             f"{MAX_PAGES} pages of {PAGE_SIZE}: not the IBOV portfolio")
    header0 = doc.get("header")
    date0 = header0.get("date") if isinstance(header0, Mapping) else None
    rows = len(doc["results"]) if isinstance(doc.get("results"), list) else None
    for number in range(2, (total_pages or 1) + 1):
        url = portfolio_url(base, number)
        body = get(url)
        page = _decode(url, body)
        header = page.get("header")
        date_n = header.get("date") if isinstance(header, Mapping) else None
        if date_n != date0:
            raise _PortfolioChanged(url, f"page {number} is for {date_n!r} but page 1 for "
                                    f"{date0!r}: B3 changed the portfolio mid-fetch")
        if rows is not None and isinstance(page.get("results"), list):
            rows += len(page["results"])
        files.append((f"page-{number:03d}.json", body))
        docs.append(page)
    if total_records is not None and rows is not None and rows != total_records:
        raise B3PayloadError(first_url, f"the {len(files)} page(s) hold {rows} rows but "
                             f"page.totalRecords is {total_records}")
    return files, docs


def fetch_api(
    base_url: str,
    *,
    timeout_s: float = 20.0,
    retries: int = 4,
    backoff_s: float = 0.5,
    session: requests.Session | None = None,
    max_wait_s: float = MAX_WAIT_S,
) -> RawPayload:
    """Every page of today's IBOV portfolio from the JSON API, bytes as B3 sent them.

    Asks 120 rows a page (all of IBOV) but follows ``page.totalPages`` whenever B3 pages
    anyway. When B3 publishes a new portfolio between two pages, starts over from page 1
    (up to :data:`MAX_RESTARTS` times), so the pages kept are always of one portfolio.
    Raises :class:`B3BlockedError` (403 / HTML instead of JSON), :class:`B3PayloadError`
    (not JSON, pages that disagree) or :class:`B3UnavailableError` (retries exhausted,
    other 4xx)."""
    base = base_url.rstrip("/")
    own = session is None
    s = session if session is not None else new_session(base)

    def get(url: str) -> bytes:
        return get_page(s, url, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                        max_wait_s=max_wait_s)

    try:
        for restart in range(MAX_RESTARTS + 1):
            fetched_at = datetime.now(UTC)
            try:
                files, docs = _all_pages(base, get)
                break
            except _PortfolioChanged as exc:
                if restart == MAX_RESTARTS:
                    raise B3PayloadError(
                        exc.where, f"{exc.problem}, {MAX_RESTARTS + 1} times in a row; "
                        "try again in a few minutes") from exc
                log.warning("B3 API: %s; starting over from page 1", exc.problem)
    finally:
        if own:
            s.close()
    first_url = portfolio_url(base, 1)
    log.info("B3 API: %d page(s) from %s", len(files), first_url)
    return RawPayload(source="api", url=first_url, fetched_at=fetched_at, files=tuple(files),
                      decoded_pages=tuple(docs))
