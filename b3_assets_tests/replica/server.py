"""A local stand-in for ``sistemaswebb3-listados.b3.com.br``: the Carteira do Dia page, its
JSON API (``GetPortfolioDay`` by code or by sector, ``GetTheoricalPortfolio``,
``GetQuartelyPreview``) and the CSV download, for IBOV and every index ``GetStockIndex`` lists
(b3_assets_tests/replica/indices.py), plus each index's closes by year
(``indexStatisticsProxy``), with the faults the real site shows (or may show)
switchable per test, so every fetch path can be proven without the network.

Which client is a browser: a page's ``fetch()`` in Chromium sends Fetch Metadata headers
(``Sec-Fetch-Mode: cors``…) that HTTP libraries such as requests never send, whatever
User-Agent they claim. Faults aimed at non-browser clients (a WAF's 403 or block page) use that
rule, which is what lets ``B3_FETCH=auto`` fall back to the browser and succeed.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from b3_assets_tests.replica.indices import (
    NO_SECTOR_VIEW,
    as_index,
    generate_index_portfolio,
    levels_doc,
    levels_for,
    stock_index_doc,
    stock_index_rows,
)
from b3_assets_tests.replica.portfolios import (
    DEFAULT_DATE,
    ReplicaPeriod,
    ReplicaPortfolio,
    api_page,
    csv_bytes,
    period_for,
    period_page,
    portfolio_for,
)

PAGE_PATH = "/indexPage/day/IBOV"
API_PREFIX = "/indexProxy/indexCall/GetPortfolioDay/"
CSV_PREFIX = "/indexProxy/indexCall/GetDownloadPortfolioDay/"
TEORICA_PREFIX = "/indexProxy/indexCall/GetTheoricalPortfolio/"
PREVIA_PREFIX = "/indexProxy/indexCall/GetQuartelyPreview/"
STOCK_INDEX_PREFIX = "/indexProxy/indexCall/GetStockIndex/"
LEVELS_PREFIX = "/indexStatisticsProxy/IndexCall/GetPortfolioDay/"
#: Request kind of each data endpoint (``Request.kind``) and B3's name of it (``Fault.endpoint``).
KINDS: dict[str, tuple[str, str]] = {
    API_PREFIX: ("api", "GetPortfolioDay"),
    CSV_PREFIX: ("csv", "GetDownloadPortfolioDay"),
    TEORICA_PREFIX: ("teorica", "GetTheoricalPortfolio"),
    PREVIA_PREFIX: ("previa", "GetQuartelyPreview"),
    STOCK_INDEX_PREFIX: ("stock_index", "GetStockIndex"),
    LEVELS_PREFIX: ("levels", "IndexStatistics"),
}
#: Kinds that carry no portfolio: only transport faults, ``empty`` and ``truncated`` apply.
_NOT_PORTFOLIOS = {"stock_index", "levels"}
ENDPOINTS = tuple(name for _, name in KINDS.values())
PAGE_HTML = (Path(__file__).with_name("page.html")).read_bytes()

#: Fault modes and what they do to the JSON API endpoints (and, for transport faults, the CSV
#: download). Every fault hits every endpoint unless ``endpoint=`` names one (``ENDPOINTS``);
#: ``other_date`` leaves the period views alone (they carry no date); ``index=`` limits a
#: fault to one index's requests (its portfolio, CSV and closes); ``segment=`` to one view of
#: ``GetPortfolioDay`` ("2": the sector view, "1": the plain one).
FAULT_MODES: dict[str, str] = {
    "latency": "delay the answer by `ms` milliseconds, then answer normally",
    "5xx": "answer HTTP `status` (503) with an HTML error page",
    "429": "answer HTTP 429 with `Retry-After: retry_after`",
    "timeout": "hang `hang_s` seconds without answering (longer than the client's timeout)",
    "drop": "close the connection without answering",
    "drip": "answer normally but send the body one byte every `drip_s` seconds (0.5): each "
            "read succeeds, so only a whole-response deadline ends it",
    "403": "answer HTTP 403 with a WAF 'Access Denied' page (default target: non-browser)",
    "html": "answer 200 with an HTML block page instead of JSON (default target: non-browser)",
    "truncated": "answer 200 with the JSON cut in half",
    "empty": "answer a well-formed page with no results",
    "other_date": "serve the portfolio under another date (`serve_date`, default next weekday)",
    "renamed_keys": "rename result keys (`rename`, default cod -> codigo); the page's JS copes",
    "short_pages": "cap pageSize at `max_page_size` (20): clients must follow totalPages",
    "unlabelled": "answer the sector view (segment 2) with every row's label null (the "
                  "constituents and weights unchanged)",
}
_TRANSPORT = {"latency", "5xx", "429", "timeout", "drop", "drip", "403", "html"}
_DEFAULT_TARGET = {"403": "non-browser", "html": "non-browser"}

BLOCK_PAGE = (
    b"<!DOCTYPE html><html><head><title>Access Denied</title></head><body>"
    b"<h1>Access Denied</h1><p>You don't have permission to access this resource.</p>"
    b"<p>Reference #18.5e3b1002.1741180800.2a6f1b</p></body></html>"
)
ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>"
    b"<h1>Service Unavailable</h1><p>The server is temporarily unable to service your "
    b"request.</p></body></html>"
)


@dataclass
class Fault:
    """One fault: ``count`` matching requests get it (None: all of them), then it is spent."""

    mode: str
    count: int | None = None
    target: str = "all"  # "all" | "non-browser" | "browser"
    ms: int = 0
    status: int = 503
    retry_after: str | None = "1"
    hang_s: float = 10.0
    drip_s: float = 0.5
    serve_date: date | None = None
    rename: dict[str, str] = field(default_factory=lambda: {"cod": "codigo"})
    max_page_size: int = 20
    #: Only this endpoint (``GetPortfolioDay``, ``GetTheoricalPortfolio``, ...); None: all.
    endpoint: str | None = None
    #: Only requests for this index (``SMLL``...: its portfolio, CSV, levels); None: all.
    index: str | None = None
    #: Only ``GetPortfolioDay`` requests of this ``segment`` ("1" plain, "2" sectors); None: all.
    segment: str | None = None
    hits: int = 0

    def applies(self, browser: bool, endpoint: str | None = None,
                index: str | None = None, segment: str | None = None) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        if self.segment is not None and segment != self.segment:
            return False
        if self.endpoint is not None and endpoint is not None and endpoint != self.endpoint:
            return False
        if self.index is not None and index != self.index:
            return False
        if self.target == "non-browser":
            return not browser
        if self.target == "browser":
            return browser
        return True


@dataclass(frozen=True)
class Request:
    """One request the replica saw: enough for tests to assert who asked what."""

    kind: str  # "page" | "api" (GetPortfolioDay) | "teorica" | "previa" | "csv" | "other"
    path: str
    params: dict[str, Any] | None
    browser: bool
    status: int | None
    faults: tuple[str, ...]
    headers: dict[str, str]


def is_browser(headers: Any) -> bool:
    """A browser page's request: Fetch Metadata present and a browser User-Agent."""
    ua = headers.get("User-Agent") or ""
    return bool(headers.get("Sec-Fetch-Mode")) and "Mozilla/" in ua


def decode_param(token: str) -> dict[str, Any]:
    """The base64(JSON) path segment B3's URLs carry (standard or URL-safe alphabet)."""
    raw = unquote(token).strip()
    raw += "=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw.replace("-", "+").replace("_", "/"), validate=True)
        value = json.loads(data)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"parameter {token!r} is not base64 JSON") from exc
    if not isinstance(value, dict):
        raise ValueError(f"parameter {token!r} is not a JSON object")
    return value


class Replica:
    """The replica server and its controls (portfolio served, faults, request log)."""

    def __init__(
        self,
        portfolio: ReplicaPortfolio | None = None,
        *,
        samples_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.samples_dir = samples_dir
        self._default = portfolio or portfolio_for(DEFAULT_DATE, samples_dir)
        self._portfolio = self._default
        self._default_periods = {
            view: period_for(view, self._default.data_carteira, samples_dir)
            for view in ("teorica", "previa")
        }
        self._periods = dict(self._default_periods)
        self._index_portfolios: dict[str, ReplicaPortfolio] = {}
        self._stock_rows: list[dict[str, Any]] | None = None
        self._generated: dict[tuple[str, date], ReplicaPortfolio] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._faults: list[Fault] = []
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._generation = 0
        self._server = _Server((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def page_url(self) -> str:
        return f"{self.base_url}{PAGE_PATH}?language=pt-br"

    def start(self) -> Replica:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="b3-replica")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Replica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- controls ---
    @property
    def portfolio(self) -> ReplicaPortfolio:
        return self._portfolio

    def set_portfolio(self, portfolio: ReplicaPortfolio | date) -> ReplicaPortfolio:
        """Serve ``portfolio`` (or the sample/generated portfolio of a date)."""
        if isinstance(portfolio, date):
            portfolio = portfolio_for(portfolio, self.samples_dir)
        with self._lock:
            self._portfolio = portfolio
        return portfolio

    def period(self, view: str) -> ReplicaPeriod:
        """What ``GetTheoricalPortfolio`` (``teorica``) or ``GetQuartelyPreview`` (``previa``)
        serves now."""
        with self._lock:
            return self._periods[view]

    def set_period(self, period: ReplicaPeriod) -> ReplicaPeriod:
        """Serve ``period`` for its view."""
        with self._lock:
            self._periods[period.view] = period
        return period

    # --- every index ---
    def stock_index_rows(self) -> list[dict[str, Any]]:
        """What ``GetStockIndex`` serves now (B3's sample, IBOV's members those served)."""
        with self._lock:
            rows, ibov = self._stock_rows, self._portfolio
        return [dict(r) for r in rows] if rows is not None else stock_index_rows(ibov)

    def set_stock_index_rows(self, rows: list[dict[str, Any]] | None) -> None:
        """Serve these GetStockIndex rows (``company``, ``spotlight``, ``code``, ``indexes``);
        None: back to B3's sample."""
        with self._lock:
            self._stock_rows = None if rows is None else [dict(r) for r in rows]
            self._generated = {}

    def indices(self) -> list[str]:
        """Every index GetStockIndex lists now."""
        return sorted({c for r in self.stock_index_rows() for c in r["indexes"].split(",") if c})

    def index_portfolio(self, index: str) -> ReplicaPortfolio:
        """What ``GetPortfolioDay`` serves for ``index`` now: IBOV's portfolio for IBOV, one set
        with :meth:`set_index_portfolio`, else one generated from its GetStockIndex members for
        the IBOV portfolio's date."""
        with self._lock:
            chosen = self._index_portfolios.get(index)
            ibov = self._portfolio
        if chosen is not None:
            return chosen
        if index == "IBOV":
            return as_index(ibov, "IBOV")
        key = (index, ibov.data_carteira)
        if key not in self._generated:
            self._generated[key] = generate_index_portfolio(index, ibov.data_carteira,
                                                            self.stock_index_rows())
        return self._generated[key]

    def set_index_portfolio(self, portfolio: ReplicaPortfolio) -> ReplicaPortfolio:
        """Serve ``portfolio`` for its ``indice``."""
        with self._lock:
            self._index_portfolios[portfolio.indice] = portfolio
        return portfolio

    def levels(self, index: str, year: int) -> dict[date, Decimal]:
        """The closes the statistics endpoint serves for ``index`` and ``year`` (sessions
        before the IBOV portfolio's date: that session has not closed yet)."""
        return levels_for(index, year, self._portfolio.data_carteira)

    def fault(self, mode: str, *, count: int | None = None, target: str | None = None,
              **options: Any) -> Fault:
        """Add a fault (see FAULT_MODES); several may be active at once."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULT_MODES)}")
        if options.get("endpoint") not in (None, *ENDPOINTS):
            raise ValueError(f"unknown endpoint {options['endpoint']!r}; one of "
                             f"{', '.join(ENDPOINTS)}")
        f = Fault(mode, count=count, target=target or _DEFAULT_TARGET.get(mode, "all"),
                  **options)
        with self._lock:
            self._faults.append(f)
        return f

    def reset(self) -> None:
        """Back to the default portfolio, no faults, empty log; hung answers are released."""
        with self._lock:
            self._faults = []
            self._requests = []
            self._portfolio = self._default
            self._periods = dict(self._default_periods)
            self._index_portfolios = {}
            self._stock_rows = None
            self._generated = {}
            self._max_in_flight = self._in_flight
            self._release.set()
            self._release = threading.Event()
            self._generation += 1

    @property
    def max_in_flight(self) -> int:
        """The most data requests answered at the same time since the last reset."""
        with self._lock:
            return self._max_in_flight

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def api_requests(self, *, browser: bool | None = None, kind: str = "api") -> list[Request]:
        """The ``GetPortfolioDay`` requests seen (``kind``: ``teorica``, ``previa`` for the
        period views), optionally only the browser's or only the others'."""
        return [r for r in self.requests
                if r.kind == kind and (browser is None or r.browser == browser)]

    # --- used by the handler ---
    def _take_faults(self, kind: str, endpoint: str, browser: bool, index: str | None = None,
                     segment: str | None = None
                     ) -> tuple[ReplicaPortfolio, ReplicaPeriod | None, list[Fault],
                                threading.Event, int]:
        with self._lock:
            active = []
            for f in self._faults:
                if kind == "csv" and f.mode not in _TRANSPORT | {"other_date"}:
                    continue
                if kind in ("teorica", "previa") and f.mode == "other_date":
                    continue
                if kind in _NOT_PORTFOLIOS and f.mode not in _TRANSPORT | {"empty",
                                                                            "truncated"}:
                    continue
                if f.applies(browser, endpoint, index, segment):
                    f.hits += 1
                    active.append(f)
            period = self._periods.get(kind)
            return self._portfolio, period, active, self._release, self._generation

    def _log(self, request: Request, generation: int | None = None) -> None:
        """Record ``request``, unless it began before the last reset (a released hang)."""
        with self._lock:
            if generation is None or generation == self._generation:
                self._requests.append(request)


class _Server(ThreadingHTTPServer):
    """The HTTP server, knowing the replica whose controls its handlers obey."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 replica: Replica) -> None:
        super().__init__(address, handler)
        self.replica = replica

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (an abandoned keep-alive connection after a retry or a
        deadline) is what the faults are for, not a replica error worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the replica's request log instead."""

    @property
    def replica(self) -> Replica:
        return self.server.replica

    def _uncount(self) -> None:
        """No longer in flight: from just before the answer (a client cannot have asked its
        next request before this answer, so in-flight counts are never overstated)."""
        if getattr(self, "_counted", False):
            self._counted = False
            self.replica._leave()

    def _record(self, status: int | None) -> None:
        """Log this request; called BEFORE answering so a client never outruns the log."""
        self._uncount()
        self.replica._log(
            Request(self._kind, self.path, self._params, self._browser, status, self._faults,
                    self._headers),
            self._generation,
        )

    def _send(self, status: int, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self._drip is None:
            self.wfile.write(body)
            return
        drip_s, release = self._drip
        for i in range(len(body)):  # until the client gives up or the replica is reset
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
            if release.wait(drip_s):
                self.close_connection = True
                return

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._browser = is_browser(self.headers)
        self._headers = {k: v for k, v in self.headers.items()
                         if k.lower() in {"user-agent", "accept", "referer", "sec-fetch-mode",
                                          "sec-fetch-site", "accept-language"}}
        self._kind, self._params, self._faults = "other", None, ()
        self._endpoint = ""
        self._drip: tuple[float, threading.Event] | None = None
        self._generation: int | None = None
        if path.rstrip("/") == PAGE_PATH:
            self._kind = "page"
            self._send(200, PAGE_HTML, "text/html; charset=utf-8")
            return
        prefix = next((p for p in KINDS if path.startswith(p)), None)
        if prefix is not None:
            self._kind, self._endpoint = KINDS[prefix]
            try:
                self._params = decode_param(path.rsplit("/", 1)[1])
            except ValueError as exc:
                body = json.dumps({"message": str(exc)}).encode()
                self._send(400, body, "application/json; charset=utf-8")
                return
            self.replica._enter()
            self._counted = True
            try:
                self._serve_data()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                self._uncount()
            return
        self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>",
                   "text/html; charset=utf-8")

    def _serve_data(self) -> None:
        params = self._params or {}
        index = str(params.get("index") or "IBOV") if self._kind != "stock_index" else None
        segment = str(params.get("segment", "1")) if self._kind == "api" else None
        portfolio, period, faults, release, self._generation = self.replica._take_faults(
            self._kind, self._endpoint, self._browser, index, segment)
        if index is not None and index != "IBOV" and self._kind in ("api", "csv"):
            portfolio = self.replica.index_portfolio(index)
        self._faults = tuple(f.mode for f in faults)
        for f in faults:
            if f.mode == "latency":
                time.sleep(f.ms / 1000)
        by_mode = {f.mode: f for f in faults}
        if "drip" in by_mode:
            self._drip = (by_mode["drip"].drip_s, release)
        if "timeout" in by_mode or "drop" in by_mode:
            self._record(None)
            if "timeout" in by_mode:
                release.wait(by_mode["timeout"].hang_s)
            self.close_connection = True
            return
        if "403" in by_mode:
            self._send(403, BLOCK_PAGE, "text/html")
            return
        if "429" in by_mode:
            f = by_mode["429"]
            extra = {"Retry-After": f.retry_after} if f.retry_after is not None else {}
            self._send(429, b"Too Many Requests", "text/plain", extra)
            return
        if "5xx" in by_mode:
            self._send(by_mode["5xx"].status, ERROR_PAGE, "text/html")
            return
        if "html" in by_mode:
            self._send(200, BLOCK_PAGE.replace(b"Access Denied", b"Request Rejected"),
                       "text/html; charset=utf-8")
            return
        if "other_date" in by_mode:
            other = by_mode["other_date"].serve_date or _next_weekday(portfolio.data_carteira)
            portfolio = portfolio.with_date(other)
        if self._kind == "csv":
            body = base64.b64encode(csv_bytes(portfolio))
            self._send(200, body, "application/json; charset=utf-8")
            return
        if self._kind in _NOT_PORTFOLIOS:
            self._send_other(portfolio, params, by_mode)
            return
        self._send_api(portfolio, period, params, by_mode)

    def _send_other(self, portfolio: ReplicaPortfolio, params: dict[str, Any],
                    by_mode: dict[str, Fault]) -> None:
        """GetStockIndex, or one year of an index's closes (indexStatisticsProxy)."""
        language = "en-us" if str(params.get("language", "")).lower() == "en-us" else "pt-br"
        if self._kind == "stock_index":
            doc = stock_index_doc(self.replica.stock_index_rows(),
                                  _int(params.get("pageNumber"), 1),
                                  _int(params.get("pageSize"), 20), portfolio.data_carteira)
        else:
            closes = self.replica.levels(str(params.get("index") or "IBOV"),
                                         _int(params.get("year"), portfolio.data_carteira.year))
            doc = levels_doc(closes, language)
        if "empty" in by_mode:
            doc["results"] = []
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if "truncated" in by_mode:
            body = body[: len(body) // 2]
        self._send(200, body, "application/json; charset=utf-8")

    def _send_api(self, portfolio: ReplicaPortfolio, period: ReplicaPeriod | None,
                  params: dict[str, Any], by_mode: dict[str, Fault]) -> None:
        page_size = _int(params.get("pageSize"), 20)
        if "short_pages" in by_mode:
            page_size = min(page_size, by_mode["short_pages"].max_page_size)
        language = "en-us" if str(params.get("language", "")).lower() == "en-us" else "pt-br"
        page_number = _int(params.get("pageNumber"), 1)
        doc: dict[str, Any]
        if period is not None:
            doc = period_page(period, page_number=page_number, page_size=page_size,
                              language=language)
        else:
            segment = str(params.get("segment", "1"))
            if portfolio.indice in NO_SECTOR_VIEW:  # B3 has no labels for it: code view rows
                segment = "1"
            doc = api_page(portfolio, page_number=page_number, page_size=page_size,
                           language=language, segment=segment)
            if "unlabelled" in by_mode and segment == "2":
                doc["results"] = [{**r, "segment": None} for r in doc["results"]]
        if "empty" in by_mode:
            doc["results"] = []
            doc["page"] = {**doc["page"], "totalRecords": 0, "totalPages": 0}
        if "renamed_keys" in by_mode:
            rename = by_mode["renamed_keys"].rename
            doc["results"] = [{rename.get(k, k): v for k, v in r.items()}
                              for r in doc["results"]]
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if "truncated" in by_mode:
            body = body[: len(body) // 2]
        self._send(200, body, "application/json; charset=utf-8")


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _next_weekday(d: date) -> date:
    d += timedelta(days=1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d
