"""The portfolio straight from B3's JSON API, every page kept verbatim: the day's portfolio
(``GetPortfolioDay`` with ``segment`` 2, B3's sector view: the same constituents as the code
view plus each one's "Setor / Subsetor"), and B3's views of the four-month period
(``GetTheoricalPortfolio``, ``GetQuartelyPreview``): one fetcher, :func:`fetch_api`, with the
view as an option.

B3 is a public site that sometimes answers slowly, rate-limits or fails for a moment: 429 and
5xx answers, read timeouts and dropped connections are retried by urllib3's ``Retry`` (see
:func:`retry_policy`). What retrying cannot fix fails at once, each as its own error: a 403 or
a block page for non-browser clients (:class:`B3BlockedError`, so ``B3_FETCH=auto`` tries the
browser), a host that does not resolve or refuses connections (:class:`B3UnreachableError`),
an address that is not B3's API (:class:`B3ConfigError`), a body that is not a portfolio
(:class:`B3PayloadError`).

Deadlines: each answer must arrive whole within ``timeout_s`` of its headers (a server
dripping bytes cannot stretch it: a per-read timeout alone never fires then), and the whole
fetch, every page, retry and wait, within ``deadline_s`` (:func:`default_deadline`).
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    InvalidHeader,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from b3_assets.source.deadline import run_with_deadline
from b3_assets.source.errors import (
    B3BlockedError,
    B3ConfigError,
    B3Error,
    B3PayloadError,
    B3RateLimitedError,
    B3UnavailableError,
    B3UnreachableError,
    clip,
)
from b3_assets.source.model import PortfolioView
from b3_assets.source.parse import check_size
from b3_assets.source.payload import RawPayload

log = logging.getLogger(__name__)

B3_SITE = "https://sistemaswebb3-listados.b3.com.br"
API_PATH = "/indexProxy/indexCall/GetPortfolioDay/"
#: B3's "Consulta por": 1 = Código, 2 = Setor de Atuação (the same rows plus the sector label
#: and partAcum). b3-pipeline asks 2.
SEGMENT = "2"
#: B3's three views of an index's portfolio, the same rows from three endpoints: the day's
#: portfolio (dated by B3), the theoretical portfolio of the four-month period and the preview
#: of the next one (both undated, and asked without ``segment``).
PORTFOLIO_ENDPOINTS: dict[str, str] = {
    "day": "GetPortfolioDay",
    "teorica": "GetTheoricalPortfolio",
    "previa": "GetQuartelyPreview",
}
PAGE_PATH = "/indexPage/day/IBOV?language=pt-br"
PAGE_SIZE = 120
#: ``GetStockIndex``: the membership of every index (one row per ticker).
STOCK_INDEX_PATH = "/indexProxy/indexCall/GetStockIndex/"
#: B3's page asks every ticker at once (~540 rows, ~70 KB).
STOCK_INDEX_PAGE_SIZE = 9999
#: The index statistics: one year of daily closes of one index.
LEVELS_PATH = "/indexStatisticsProxy/IndexCall/GetPortfolioDay/"
#: The biggest index (IGCX, ~240 rows) fits in 2 pages of 120; more than this is nonsense.
MAX_PAGES = 50
#: How many times a fetch starts over from page 1 when B3 switches portfolios between pages.
MAX_RESTARTS = 2
#: No single wait between attempts is longer than this, whatever Retry-After asks.
MAX_WAIT_S = 30.0
#: Connecting never waits longer than this (and is not retried): no network fails in seconds.
CONNECT_TIMEOUT_S = 10.0
#: Transient answers worth another attempt (Retry-After is honoured on 429 and 503).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: One read: small enough that the answer's deadline is looked at often.
CHUNK_BYTES = 64 * 1024
#: Of an error page, only this much is read (for its title).
ERROR_PAGE_BYTES = 4096
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
_FIX_ADDRESS = (f"Check B3_BASE_URL (B3's is {B3_SITE}) and this machine's network and DNS; "
                "not retried, as waiting does not fix it.")


def _token(params: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(params, separators=(",", ":")).encode()).decode()


def portfolio_query(page_number: int, page_size: int = PAGE_SIZE, *, language: str = "pt-br",
                    index: str = "IBOV", segment: str | None = SEGMENT) -> str:
    """The base64 path segment exactly as B3's page builds it:
    ``btoa(JSON.stringify({language, pageNumber, pageSize, index, segment}))`` (no
    ``segment`` for the period views: ``segment=None``)."""
    params: dict[str, Any] = {"language": language, "pageNumber": page_number,
                              "pageSize": page_size, "index": index}
    if segment is not None:
        params["segment"] = segment
    return _token(params)


def portfolio_url(base_url: str, page_number: int, page_size: int = PAGE_SIZE,
                  segment: str = SEGMENT, index: str = "IBOV", *,
                  view: PortfolioView = "day") -> str:
    """``{base}/indexProxy/indexCall/GetPortfolioDay/{base64(json)}`` for one page of
    ``index``'s portfolio (every B3 index is served by the same endpoint); ``view``
    ``teorica`` or ``previa``: the same page of the period's view
    (:data:`PORTFOLIO_ENDPOINTS`). An unknown view is a ValueError, before any network."""
    if view not in PORTFOLIO_ENDPOINTS:
        raise ValueError(f"unknown portfolio view {view!r}: one of "
                         f"{', '.join(PORTFOLIO_ENDPOINTS)}")
    query = portfolio_query(page_number, page_size, index=index,
                            segment=segment if view == "day" else None)
    return f"{base_url.rstrip('/')}/indexProxy/indexCall/{PORTFOLIO_ENDPOINTS[view]}/{query}"


def stock_index_url(base_url: str, page_number: int = 1) -> str:
    """``{base}/indexProxy/indexCall/GetStockIndex/{base64(json)}``: every listed ticker with
    the indices it belongs to this period, in one page of :data:`STOCK_INDEX_PAGE_SIZE` (as
    B3's own page asks), so the list of indices to collect comes from B3, not from code."""
    token = _token({"pageNumber": page_number, "pageSize": STOCK_INDEX_PAGE_SIZE})
    return f"{base_url.rstrip('/')}{STOCK_INDEX_PATH}{token}"


def index_levels_url(base_url: str, index: str, year: int, *, language: str = "pt-br") -> str:
    """``{base}/indexStatisticsProxy/IndexCall/GetPortfolioDay/{base64(json)}``: one year of
    ``index``'s daily closes (one answer, no paging)."""
    token = _token({"language": language, "index": index, "year": year})
    return f"{base_url.rstrip('/')}{LEVELS_PATH}{token}"


def check_base_url(base_url: str) -> str:
    """``base_url`` without its trailing ``/``, or :class:`B3ConfigError` (before any network
    is touched) when it cannot be an address: not http(s), no host, spaces, a bad port."""
    text = base_url.strip()
    try:
        parts = urlsplit(text)
        usable = (parts.scheme in ("http", "https") and bool(parts.hostname)
                  and (parts.port is None or parts.port > 0)  # .port raises on a non-number
                  and not any(c.isspace() for c in text))
    except ValueError:
        usable = False
    if not usable:
        raise B3ConfigError(
            f"B3_BASE_URL={clip(repr(base_url))} is not an http(s) address: set B3_BASE_URL "
            f"to {B3_SITE} (B3) or to a replica's http://host:port.")
    return text.rstrip("/")


def default_deadline(timeout_s: float, retries: int) -> float:
    """The whole API fetch's deadline: ``timeout_s × (retries + 2)``, at least 60 s
    (120 s with the defaults: 20 s, 4 retries)."""
    return max(60.0, timeout_s * (retries + 2))


#: A ``Retry-After`` longer than this makes a 429 final for the step (its own retries wait
#: 20 to 80 s: asking again that soon helps nobody).
RATE_LIMIT_GIVE_UP_S = 300.0


class ObservedRetry(Retry):
    """urllib3's ``Retry`` that also keeps every retried answer's status and ``Retry-After``
    in ``observed`` (shared by the copies urllib3 makes), so a fetch that ends on its
    deadline can still say what B3 was answering."""

    def __init__(self, *args: Any, observed: list[tuple[int, str | None]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observed: list[tuple[int, str | None]] = [] if observed is None else observed

    def new(self, **kw: Any) -> ObservedRetry:
        copy = super().new(**kw)
        copy.observed = self.observed
        return copy

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None,
                  _stacktrace: Any = None) -> ObservedRetry:
        if response is not None:
            self.observed.append((response.status, response.headers.get("Retry-After")))
        return super().increment(method, url, response, error, _pool, _stacktrace)


def retry_after_s(header: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (seconds or an HTTP date), None if absent."""
    if not header:
        return None
    try:
        return max(0.0, Retry(retry_after_max=10**9).parse_retry_after(header))
    except InvalidHeader:  # an unreadable header counts as none
        return None


def rate_limit_error(url: str, observed: list[tuple[int, str | None]]) -> B3RateLimitedError | None:
    """The step's end when B3's last answer was a 429 asking for a wait no run makes."""
    if not observed or observed[-1][0] != 429:
        return None
    wait = retry_after_s(observed[-1][1])
    if wait is None or wait <= RATE_LIMIT_GIVE_UP_S:
        return None
    return B3RateLimitedError(url, sum(1 for status, _ in observed if status == 429), wait)


def last_answer(observed: list[tuple[int, str | None]]) -> str:
    """What B3 answered last, for a deadline's message (e.g. HTTP 503, Retry-After: 5)."""
    if not observed:
        return ""
    status, header = observed[-1]
    after = f", Retry-After: {header}" if header else ""
    return f" The last answer: HTTP {status}{after} ({len(observed)} retried answer(s))."


def retry_policy(retries: int, backoff_s: float, max_wait_s: float = MAX_WAIT_S,
                 observed: list[tuple[int, str | None]] | None = None) -> Retry:
    """urllib3's retries as B3 needs them.

    Retried, GET only, up to ``retries`` times: :data:`RETRY_STATUSES`, read timeouts and
    dropped connections. urllib3 retries the first at once, then waits ``backoff_s × 2^(n-1)``
    plus up to ``backoff_s`` of jitter (so clients hitting a struggling B3 do not retry in
    lockstep), or the ``Retry-After`` B3 asks; never more than ``max_wait_s``. Never retried:
    connecting (``connect=0``: a refused connection, a name that does not resolve or no
    network does not heal in seconds) and every other status: 403 is B3 refusing non-browser
    clients, the browser's job, and a 404 is a wrong address."""
    return ObservedRetry(
        observed=observed,
        total=retries,
        connect=0,
        read=retries,
        status=retries,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_s,
        backoff_jitter=backoff_s,
        backoff_max=max_wait_s,
        respect_retry_after_header=True,
        retry_after_max=int(max_wait_s),
        raise_on_status=False,
    )


def new_session(base_url: str, *, retries: int = 4, backoff_s: float = 0.5,
                max_wait_s: float = MAX_WAIT_S,
                observed: list[tuple[int, str | None]] | None = None) -> requests.Session:
    """A session that asks like the page's own XHR does (browser UA, JSON accept), with
    :func:`retry_policy` mounted for http and https."""
    s = requests.Session()
    s.headers.update({
        "User-Agent": USER_AGENT,
        "Accept": "application/json, text/plain, */*",
        "Accept-Language": "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7",
        "Referer": f"{base_url.rstrip('/')}{PAGE_PATH}",
    })
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff_s, max_wait_s, observed))
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def _cause(exc: BaseException) -> BaseException:
    """The urllib3 error under requests' wrapping (a MaxRetryError's reason)."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        return inner.reason
    return inner


def _unreachable(url: str, cause: NewConnectionError) -> B3UnreachableError:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if isinstance(cause, NameResolutionError):
        return B3UnreachableError(f"B3 host {parts.hostname} does not resolve (DNS lookup "
                                  f"failed) for {url}. {_FIX_ADDRESS}")
    os_error = cause.__cause__
    if isinstance(os_error, ConnectionRefusedError):
        what = "refused the connection"
    elif isinstance(os_error, OSError) and os_error.errno in (errno.ENETUNREACH,
                                                              errno.EHOSTUNREACH):
        what = "is unreachable (no route: no network?)"
    else:
        what = f"could not be connected to ({clip(str(os_error or cause))})"
    return B3UnreachableError(f"B3 at {where} {what} for {url}. {_FIX_ADDRESS}")


def _transport_error(url: str, exc: requests.RequestException, attempts: int,
                     timeout_s: float) -> B3Error:
    """What a failed request means: permanent (a wrong address) or transient (the rest)."""
    cause = _cause(exc)
    if isinstance(cause, NewConnectionError):
        return _unreachable(url, cause)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return B3ConfigError(f"{url} is not a usable address ({clip(str(exc))}). "
                             f"{_FIX_ADDRESS}")
    if isinstance(cause, ConnectTimeoutError):
        return B3UnavailableError(
            f"B3 API {url}: no connection within {min(timeout_s, CONNECT_TIMEOUT_S):g}s; B3 or "
            "the network is not answering. Try again later.")
    if isinstance(cause, ReadTimeoutError):
        last = f"timed out after {timeout_s:g}s"
    elif isinstance(cause, ProtocolError):
        last = f"connection dropped ({clip(str(cause))})"
    else:
        last = f"request failed ({type(cause).__name__}: {clip(str(cause))})"
    return B3UnavailableError(f"B3 API {url} failed {attempts} attempts; the last: {last}. "
                              "B3 may be down or rate-limiting; try again later.")


def _too_slow(url: str, timeout_s: float, size: int) -> B3UnavailableError:
    return B3UnavailableError(
        f"B3 API {url} did not send its whole answer within {timeout_s:g}s ({size:,} bytes "
        "arrived): B3 is answering too slowly; try again later.")


def _read_body(resp: requests.Response, url: str, timeout_s: float, *, already: int = 0,
               keep: int | None = None) -> bytes:
    """The body, whole within ``timeout_s`` of the headers: each wait on the socket is cut to
    the time left. More than :data:`MAX_PAYLOAD_BYTES` (counting ``already``, the pages
    before) is refused as it arrives; ``keep``: stop quietly after that many bytes."""
    declared = resp.headers.get("Content-Length", "")
    if keep is None and declared.isdigit():
        check_size(already + int(declared), url, "API answer")
    raw = resp.raw
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    size = 0
    try:
        while keep is None or size < keep:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _too_slow(url, timeout_s, size)
            if raw.connection is not None and raw.connection.sock is not None:
                raw.connection.sock.settimeout(left)
            chunk = raw.read1(CHUNK_BYTES, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if keep is None:
                check_size(already + size, url, "API answer")
            chunks.append(chunk)
    except (ReadTimeoutError, TimeoutError) as exc:
        raise _too_slow(url, timeout_s, size) from exc
    except (HTTPError, OSError) as exc:
        raise B3UnavailableError(f"B3 API {url}: the connection broke after {size:,} bytes of "
                                 f"the answer ({clip(str(exc))}); try again later.") from exc
    finally:
        resp.close()
    return b"".join(chunks)


def _html_title(body: bytes) -> str:
    text = body[:4096].decode("utf-8", "replace")
    lower = text.lower()
    start, end = lower.find("<title>"), lower.find("</title>")
    if 0 <= start < end:
        return clip(text[start + 7:end].strip())
    return text[:80].strip()


def _blocked(url: str, what: str) -> B3BlockedError:
    return B3BlockedError(f"{url} answered {what}: B3 is refusing non-browser clients. "
                          "B3_FETCH=auto falls back to the browser; B3_FETCH=browser uses it "
                          "directly.")


def get_page(session: requests.Session, url: str, *, timeout_s: float, retries: int,
             already: int = 0) -> bytes:
    """One API page's body, after the session's retries; every failure classified."""
    try:
        resp = session.get(url, timeout=(min(timeout_s, CONNECT_TIMEOUT_S), timeout_s),
                           stream=True)
    except requests.RequestException as exc:
        raise _transport_error(url, exc, retries + 1, timeout_s) from exc
    status = resp.status_code
    if 200 <= status < 300:
        body = _read_body(resp, url, timeout_s, already=already)
        ctype = resp.headers.get("Content-Type", "").lower()
        if "html" in ctype or body[:512].lstrip().startswith(b"<"):
            raise _blocked(url, f"an HTML page ({_html_title(body)!r}) instead of JSON")
        return body
    head = _read_body(resp, url, timeout_s, keep=ERROR_PAGE_BYTES)
    if status == 403:
        raise _blocked(url, f"HTTP 403 Forbidden ({_html_title(head)!r})")
    if status in RETRY_STATUSES or status >= 500:
        tried = resp.raw.retries.history if resp.raw.retries is not None else ()
        limited = rate_limit_error(url, [*((h.status, None) for h in tried if h.status),
                                         (status, resp.headers.get("Retry-After"))])
        if limited is not None:
            raise limited
        raise B3UnavailableError(
            f"B3 API {url} failed {len(tried) + 1} attempts; the last: HTTP {status} "
            f"{resp.reason}. B3 may be down or rate-limiting; try again later.")
    raise B3ConfigError(
        f"{url} answered HTTP {status} {resp.reason} (a client error, not retried): B3's "
        f"portfolio API is not at this address. Check B3_BASE_URL (B3's is {B3_SITE}) and "
        "whether B3 moved the Carteira do Dia API.")


def _decode(url: str, body: bytes) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise B3PayloadError(
            url,
            f"the answer is not valid JSON ({clip(str(exc))}); {len(body)} bytes, ending with "
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


class _PortfolioChanged(B3UnavailableError):
    """Page N is for another date than page 1: B3 published a new portfolio mid-fetch."""


def _header_date(doc: Mapping[str, Any]) -> Any:
    header = doc.get("header")
    return header.get("date") if isinstance(header, Mapping) else None


def _header_totals(doc: Mapping[str, Any]) -> Any:
    """What identifies a period view's answer (it has no date): its header's totals."""
    header = doc.get("header")
    if not isinstance(header, Mapping):
        return None
    return header.get("theoricalQty"), header.get("reductor")


def _all_pages(
    url_for: Callable[[int], str], get: Callable[[str], bytes],
    identity: Callable[[Mapping[str, Any]], Any],
) -> tuple[list[tuple[str, bytes]], list[Mapping[str, Any]]]:
    """One pass over every page: (file name, bytes) and the decoded pages, checked to be of
    one answer (the same ``identity``: the header date, or a period view's header)."""
    first_url = url_for(1)
    first = get(first_url)
    doc = _decode(first_url, first)
    files, docs = [("page-001.json", first)], [doc]
    total_pages, total_records = _page_info(doc)
    if total_pages is not None and total_pages > MAX_PAGES:
        raise B3PayloadError(first_url, f"page.totalPages is {total_pages}, more than "
                             f"{MAX_PAGES} pages of {PAGE_SIZE}: not an index's portfolio")
    id0 = identity(doc)
    rows = len(doc["results"]) if isinstance(doc.get("results"), list) else None
    for number in range(2, (total_pages or 1) + 1):
        url = url_for(number)
        body = get(url)
        page = _decode(url, body)
        if identity(page) != id0:
            raise _PortfolioChanged(f"B3 API {url}: page {number} is for "
                                    f"{clip(repr(identity(page)))} but page 1 for "
                                    f"{clip(repr(id0))}: B3 changed the portfolio mid-fetch")
        if rows is not None and isinstance(page.get("results"), list):
            rows += len(page["results"])
        files.append((f"page-{number:03d}.json", body))
        docs.append(page)
    if total_records is not None and rows is not None and rows != total_records:
        raise B3PayloadError(first_url, f"the {len(files)} page(s) hold {rows} rows but "
                             f"page.totalRecords is {total_records}")
    return files, docs


def _fetch(session: requests.Session, url_for: Callable[[int], str],
           identity: Callable[[Mapping[str, Any]], Any], *, timeout_s: float, retries: int
           ) -> RawPayload:
    """Every page, starting over when B3 switches portfolios mid-fetch."""
    received = 0

    def get(url: str) -> bytes:
        nonlocal received
        body = get_page(session, url, timeout_s=timeout_s, retries=retries, already=received)
        received += len(body)
        return body

    for restart in range(MAX_RESTARTS + 1):
        fetched_at = datetime.now(UTC)
        try:
            files, docs = _all_pages(url_for, get, identity)
            break
        except _PortfolioChanged as exc:
            if restart == MAX_RESTARTS:
                raise B3UnavailableError(f"{exc}, {MAX_RESTARTS + 1} times in a row; try again "
                                         "in a few minutes") from exc
            log.warning("%s; starting over from page 1", exc)
    first_url = url_for(1)
    log.info("B3 API: %d page(s) from %s", len(files), first_url)
    return RawPayload(source="api", url=first_url, fetched_at=fetched_at, files=tuple(files),
                      decoded_pages=tuple(docs))


class FetchOptions(TypedDict, total=False):
    """How patiently every fetcher asks B3 (the defaults of :func:`_fetch_all`)."""

    #: Each answer arrives whole within this many seconds of its headers.
    timeout_s: float
    #: Attempts after the first, for 429, 5xx, timeouts and dropped connections.
    retries: int
    backoff_s: float
    #: Used as given (its own retry policy) and left open; by default one is made and closed.
    session: requests.Session | None
    max_wait_s: float
    #: The whole fetch, every page, retry and wait (default :func:`default_deadline`).
    deadline_s: float | None


def fetch_api(
    base_url: str,
    *,
    view: PortfolioView = "day",
    index: str = "IBOV",
    segment: str = SEGMENT,
    **options: Unpack[FetchOptions],
) -> RawPayload:
    """Every page of the portfolio of ``index`` (IBOV by default; B3 serves every index the
    same way) as B3 serves it now, bytes as B3 sent them: the day's portfolio in B3's
    ``segment`` view, or with ``view`` the period's theoretical portfolio (``teorica``) or the
    preview of the next one (``previa``), which B3 does not date: the caller knows the trading
    date of the capture.

    Asks 120 rows a page (all of IBOV) but follows ``page.totalPages`` whenever B3 pages
    anyway. When B3 publishes a new portfolio between two pages (another header date, or for a
    period view other header totals), starts over from page 1 (up to :data:`MAX_RESTARTS`
    times), so the pages kept are always of one portfolio. ``options``: :class:`FetchOptions`;
    the whole fetch ends within ``deadline_s`` or raises :class:`B3UnavailableError`."""
    base = check_base_url(base_url)
    portfolio_url(base, 1, view=view)  # an unknown view fails here, before any network
    identity = _header_date if view == "day" else _header_totals
    return _fetch_all(
        base, lambda n: portfolio_url(base, n, segment=segment, index=index, view=view),
        identity, **options)


def fetch_stock_index(base_url: str, **options: Unpack[FetchOptions]) -> RawPayload:
    """``GetStockIndex`` as B3 serves it now (which indices exist and who is in each), bytes
    as B3 sent them; the same retries, errors and deadlines as :func:`fetch_api`."""
    base = check_base_url(base_url)
    return _fetch_all(base, lambda n: stock_index_url(base, n), _stock_index_identity,
                      **options)


def fetch_index_levels(base_url: str, index: str, year: int,
                       **options: Unpack[FetchOptions]) -> RawPayload:
    """One year of ``index``'s daily closes (the index statistics endpoint), bytes as B3 sent
    them; the same retries, errors and deadlines as :func:`fetch_api`."""
    base = check_base_url(base_url)
    return _fetch_all(base, lambda n: index_levels_url(base, index, year), lambda doc: None,
                      **options)


def _stock_index_identity(doc: Mapping[str, Any]) -> Any:
    """What identifies a ``GetStockIndex`` answer across pages: its header (period, update)."""
    header = doc.get("header")
    return dict(header) if isinstance(header, Mapping) else None


def _fetch_all(
    base: str, url_for: Callable[[int], str], identity: Callable[[Mapping[str, Any]], Any], *,
    timeout_s: float = 20.0, retries: int = 4, backoff_s: float = 0.5,
    session: requests.Session | None = None, max_wait_s: float = MAX_WAIT_S,
    deadline_s: float | None = None,
) -> RawPayload:
    budget = deadline_s if deadline_s is not None else default_deadline(timeout_s, retries)

    observed: list[tuple[int, str | None]] = []

    def work() -> RawPayload:
        s = session or new_session(base, retries=retries, backoff_s=backoff_s,
                                   max_wait_s=max_wait_s, observed=observed)
        try:
            return _fetch(s, url_for, identity, timeout_s=timeout_s, retries=retries)
        finally:
            if session is None:
                s.close()

    def too_late() -> B3Error:
        limited = rate_limit_error(url_for(1), observed)
        if limited is not None:
            return limited
        return B3UnavailableError(
            f"B3 API {url_for(1)} did not finish within {budget:g}s, the deadline "
            "of the whole fetch (every page, retry and wait): B3 is too slow or failing; try "
            f"again later.{last_answer(observed)}")

    return run_with_deadline(work, budget, too_late, "b3-api")
