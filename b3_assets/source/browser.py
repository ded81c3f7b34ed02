"""The portfolio through a real (headless) Chromium, for when B3 refuses plain HTTP clients.

It opens the Carteira do Dia page as a person would (accept the cookie banner, consult by
"Setor de Atuação" in ``select#segment`` so every row carries its sector, pick 120 rows a page,
page through if B3 still paginates) and keeps the ``GetPortfolioDay`` JSON the page itself
fetched, verbatim. If that JSON is missing or unusable (say B3 renamed its keys and
updated its own page), it reads the table the page rendered and stores it as one JSON file in
the API's shape, so the same parser serves both. One browser launch, no fixed sleeps: every
wait is on a response or on the page's state.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from b3_assets.source.deadline import run_with_deadline
from b3_assets.source.errors import (
    B3BlockedError,
    B3Error,
    B3PayloadError,
    B3UnavailableError,
    B3UnreachableError,
    BrowserMissingError,
)
from b3_assets.source.parse import api_request_params, parse_api_pages
from b3_assets.source.payload import RawPayload
from b3_assets.source.validate import sector_rules

log = logging.getLogger(__name__)

PAGE_PATH = "/indexPage/day/IBOV?language=pt-br"
API_MARKER = "/GetPortfolioDay/"
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
#: Requests the portfolio never needs: images, fonts, media, analytics.
BLOCKED = re.compile(
    r"(\.(png|jpe?g|gif|webp|svg|ico|woff2?|ttf|otf|eot|mp4|webm)(\?.*)?$)"
    r"|google-analytics\.com|googletagmanager\.com|doubleclick\.net|hotjar\.com",
    re.IGNORECASE,
)
MAX_PAGES = 50
#: How long one action may go without the page fetching the portfolio before the scraper
#: stops waiting for JSON and reads whatever the page shows.
STEP_WAIT_S = 10.0
#: Chromium's network errors for an address that cannot work: not worth a retry.
UNREACHABLE_ERRORS = ("ERR_NAME_NOT_RESOLVED", "ERR_NAME_RESOLUTION_FAILED",
                      "ERR_CONNECTION_REFUSED", "ERR_ADDRESS_UNREACHABLE",
                      "ERR_INTERNET_DISCONNECTED")
COLUMNS = {"cod": "Código", "asset": "Ação", "type": "Tipo", "theoricalQty": "Qtde. Teórica",
           "part": "Part. (%)"}
#: ``select#segment``'s "Setor de Atuação": the value the API gets as ``segment``.
SECTOR_SEGMENT = "2"

# Reads the page as shown: the portfolio table, its footer, the title date and pagination.
_READ_PAGE_JS = r"""
() => {
  const text = el => (el ? el.textContent : '').trim();
  const table = [...document.querySelectorAll('table')].find(
    t => [...t.querySelectorAll('thead th')].some(th => th.textContent.trim() === 'Código'));
  const m = (document.body.innerText || '').match(
    /Carteira do Dia\s*-\s*(\d{2}\/\d{2}\/\d{2,4})/);
  const pag = document.querySelector('#listing_pagination');
  const next = pag && pag.querySelector('li.pagination-next');
  const err = document.querySelector('.alert-danger:not([hidden])');
  return {
    date: m ? m[1] : null,
    headers: table ? [...table.querySelectorAll('thead th')].map(text) : [],
    rows: table ? [...table.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(text)) : [],
    foot: table ? [...table.querySelectorAll('tfoot tr')].map(tr => [...tr.cells].map(text)) : [],
    current: pag ? text(pag.querySelector('li.current')) : null,
    hasNext: !!next && !next.classList.contains('disabled'),
    error: text(err),
  };
}
"""
# Accepts the consent banner when it is shown (one round trip instead of a checked click).
_ACCEPT_COOKIES_JS = """
() => {
  const b = document.querySelector('#onetrust-accept-btn-handler');
  if (!b || !b.getClientRects().length) return false;
  b.click();
  return true;
}
"""
# The value of select#segment's "Setor de Atuação" option (null: no such select or option).
_SECTOR_OPTION_JS = r"""
() => {
  const s = document.querySelector('select#segment');
  if (!s) return null;
  const o = [...s.options].find(o => o.value === '2' || /setor/i.test(o.textContent));
  return o ? {value: o.value, selected: s.value === o.value} : null;
}
"""
# Lets the page's own code run to the end of what a response triggered (parse, render).
_SETTLE_JS = "() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))"


def _playwright_chromium() -> str | None:
    """Playwright's own downloaded Chromium (``playwright install chromium``), if any."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # no driver, no browser: just "not found"
        return None
    return path if path and os.access(path, os.X_OK) else None


def find_chromium(browser_path: str | None) -> str | None:
    """The Chromium to drive: ``browser_path`` (B3_BROWSER_PATH), else the usual system
    locations, else Playwright's own browser; None when there is none."""
    if browser_path:
        found = shutil.which(browser_path) if os.sep not in browser_path else browser_path
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
        log.warning("B3_BROWSER_PATH=%s is not an executable; looking elsewhere", browser_path)
    for candidate in SYSTEM_CHROMIUMS:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return _playwright_chromium()


def missing_browser_message(browser_path: str | None) -> str:
    looked = ([f"B3_BROWSER_PATH={browser_path}"] if browser_path else []) + list(
        SYSTEM_CHROMIUMS) + ["Playwright's own browsers"]
    return (
        f"No Chromium for the browser fetch (looked at {', '.join(looked)}). Install one with "
        "`apt-get install chromium` or `playwright install chromium`, or set B3_BROWSER_PATH "
        "to a Chromium/Chrome executable."
    )


@dataclass
class _Capture:
    """One ``GetPortfolioDay`` answer the page received, and what it asked for."""

    url: str
    status: int
    body: bytes
    page_number: int | None
    page_size: int | None
    segment: str | None = None


class _Stage:
    """What the scraper is doing, for error messages (and timings in the debug log)."""

    def __init__(self) -> None:
        self._name = "starting"
        self._t0 = time.monotonic()

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        log.debug("B3 browser: %s (%.3fs)", value, time.monotonic() - self._t0)
        self._name = value


def fetch_browser(
    base_url: str, *, browser_path: str | None = None, timeout_s: float = 30.0
) -> RawPayload:
    """Today's IBOV portfolio as B3's own page gets it, in a headless Chromium.

    ``files`` are the page's ``GetPortfolioDay`` answers (``page-001.json``…), or
    ``rendered-table.json`` when those were unusable and the table was read off the page.

    Playwright's own timeouts bound every step, but a browser that stops answering (a hung
    close, a request Chromium never finishes) must not hang the pipeline: the work runs under a
    hard deadline of ``2 × timeout_s + 15`` s."""
    deadline_s = timeout_s * 2 + 15

    def too_late() -> B3Error:
        return B3UnavailableError(
            f"The browser did not finish at {base_url.rstrip('/')}{PAGE_PATH} within "
            f"{deadline_s:g}s (hard deadline); B3 or Chromium stopped answering.")

    return run_with_deadline(
        lambda: _fetch_browser(base_url, browser_path=browser_path, timeout_s=timeout_s),
        deadline_s, too_late, "b3-browser")


def _fetch_browser(
    base_url: str, *, browser_path: str | None = None, timeout_s: float = 30.0
) -> RawPayload:
    executable = find_chromium(browser_path)
    if executable is None:
        raise BrowserMissingError(missing_browser_message(browser_path))
    page_url = f"{base_url.rstrip('/')}{PAGE_PATH}"
    fetched_at = datetime.now(UTC)
    started = time.monotonic()
    captures, views = _drive(executable, browser_path, page_url, timeout_s, started)
    files, reason = _json_files(captures, page_url, fetched_at)
    if files is None and not all(view["rows"] for view in views):
        statuses = sorted({c.status for c in captures})
        if 403 in statuses:
            raise B3BlockedError(f"{page_url}: B3 answered the page's own request with HTTP 403"
                                 f" ({reason}): it is blocking this machine, browser or not.")
        if any(s == 429 or s >= 500 for s in statuses):
            raise B3UnavailableError(f"{page_url}: the page could not load the portfolio "
                                     f"({reason}); B3 is failing, try again later.")
    if files is None:
        log.warning("B3 browser: the page's JSON is unusable (%s); reading the rendered table",
                    reason)
        files = (("rendered-table.json", _rendered_json(views, page_url, reason)),)
    log.info("B3 browser: %s from %s in %.2fs", ", ".join(n for n, _ in files), page_url,
             time.monotonic() - started)
    return RawPayload(source="browser", url=page_url, fetched_at=fetched_at, files=files)


def _drive(executable: str, browser_path: str | None, page_url: str, timeout_s: float,
           started: float) -> tuple[list[_Capture], list[dict[str, Any]]]:
    """Launch Chromium, scrape, close; Playwright's errors as B3 errors naming the stage."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    stage = _Stage()
    with sync_playwright() as p:
        stage.name = "launching Chromium"
        try:
            browser = p.chromium.launch(
                executable_path=executable, headless=True, args=list(LAUNCH_ARGS),
                timeout=timeout_s * 1000,
            )
        except PlaywrightError as exc:
            raise BrowserMissingError(
                f"Chromium at {executable} did not start ({exc.message.splitlines()[0]}). "
                + missing_browser_message(browser_path)
            ) from exc
        try:
            return _scrape(browser, page_url, timeout_s, started, stage)
        except B3Error:
            raise
        except PlaywrightError as exc:
            first = (exc.message or str(exc)).splitlines()[0]
            if any(code in first for code in UNREACHABLE_ERRORS):
                raise B3UnreachableError(
                    f"The browser could not reach {page_url} ({first}). Check B3_BASE_URL and "
                    "this machine's network and DNS; not retried, as waiting does not fix it."
                ) from exc
            kind = "timed out" if "Timeout" in type(exc).__name__ else "failed"
            raise B3UnavailableError(
                f"The browser {kind} at {page_url} while {stage.name} "
                f"(budget {timeout_s:g}s): {first}"
            ) from exc
        finally:
            browser.close()


class _Driver:
    """The page being driven, and the time left of the fetch's budget."""

    def __init__(self, page: Any, stage: _Stage, started: float, timeout_s: float) -> None:
        self.page = page
        self.stage = stage
        self.started = started
        self.timeout_s = timeout_s

    def remaining_ms(self) -> float:
        return max(1.0, (self.timeout_s - (time.monotonic() - self.started)) * 1000)

    def step(self, action: Callable[[], Any]) -> _Capture | None:
        """Run ``action``; the portfolio answer it made the page fetch, once rendered (None
        when the page fetched none within :data:`STEP_WAIT_S`)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        failure: list[BaseException] = []

        def guarded() -> None:
            try:
                action()
            except BaseException as exc:  # re-raised below, after the wait
                failure.append(exc)
                raise

        page = self.page
        try:
            with page.expect_response(lambda r: API_MARKER in r.url, timeout=min(
                    self.remaining_ms(), STEP_WAIT_S * 1000)) as info:
                guarded()
            response = info.value
        except PlaywrightTimeout:
            if failure:
                raise
            log.warning("B3 browser: no GetPortfolioDay answer while %s", self.stage.name)
            page.wait_for_load_state("networkidle")
            return None
        body = b""
        if response.ok:
            # Only a successful answer's body is read: the page never reads an error's body,
            # and Chromium then never reports that request finished.
            try:
                body = response.body()
            except Exception:  # no body (aborted): an unusable answer
                body = b""
        page.evaluate(_SETTLE_JS)
        params = api_request_params(response.url)
        segment = params.get("segment")
        return _Capture(response.url, response.status, body, params.get("pageNumber"),
                        params.get("pageSize"), None if segment is None else str(segment))


def _open_page(page: Any, page_url: str) -> None:
    """Navigate; a page that failed to load never fetches the portfolio: fail now, not after
    a wait."""
    nav = page.goto(page_url, wait_until="commit")
    status = nav.status if nav is not None else None
    if status == 403:
        raise B3BlockedError(f"{page_url} answered HTTP 403 to the browser too: B3 is "
                             "blocking this machine; try later or from another network.")
    if status is not None and status >= 400:
        raise B3UnavailableError(f"{page_url} answered HTTP {status} to the browser.")


def _scrape(browser: Any, page_url: str, timeout_s: float, started: float,
            stage: _Stage) -> tuple[list[_Capture], list[dict[str, Any]]]:
    """Drive the page; return the 120-a-page JSON answers and the table as shown per page."""
    stage.name = "opening a browser context"
    context = browser.new_context(locale="pt-BR", service_workers="block",
                                  viewport={"width": 1280, "height": 900})
    context.route(BLOCKED, lambda route: route.abort())
    driver = _Driver(context.new_page(), stage, started, timeout_s)
    page = driver.page
    page.set_default_timeout(driver.remaining_ms())

    stage.name = "opening the page"
    first = driver.step(lambda: _open_page(page, page_url))

    stage.name = "accepting the cookie banner"
    if page.evaluate(_ACCEPT_COOKIES_JS):
        log.debug("B3 browser: cookie banner accepted")
    # A banner that shows up late would swallow the clicks: accept it whenever it is seen.
    page.add_locator_handler(page.locator("#onetrust-accept-btn-handler"),
                             lambda loc: loc.click())

    stage.name = "consulting by sector (Setor de Atuação)"
    option = page.evaluate(_SECTOR_OPTION_JS)
    if option is None:
        log.warning("B3 browser: the page has no 'Setor de Atuação' in select#segment")
    elif not option["selected"]:
        segment = page.locator("select#segment")
        first = driver.step(lambda: segment.select_option(option["value"]))

    stage.name = "choosing 120 rows a page"
    select = page.locator("select#selectPage")
    if select.count() and select.input_value() != "120":
        first = driver.step(lambda: select.select_option("120"))
    captures = [first] if first is not None else []
    views = _read_pages(driver, captures)
    stage.name = "closing"
    context.close()
    return captures, views


def _read_pages(driver: _Driver, captures: list[_Capture]) -> list[dict[str, Any]]:
    """The table as shown on each page, clicking "next" while there is one; the answers the
    clicks made the page fetch are added to ``captures``."""
    page = driver.page
    driver.stage.name = "reading page 1"
    views = [page.evaluate(_READ_PAGE_JS)]
    next_item = page.locator("#listing_pagination li.pagination-next")
    while views[-1]["hasNext"] and len(views) < MAX_PAGES:
        driver.stage.name = f"going to page {len(views) + 1}"
        before = views[-1]["current"]
        capture = driver.step(lambda: next_item.first.click())
        page.wait_for_function(
            "prev => { const c = document.querySelector('#listing_pagination li.current');"
            " return !c || c.textContent.trim() !== prev; }",
            arg=before,
        )
        if capture is not None:
            captures.append(capture)
        views.append(page.evaluate(_READ_PAGE_JS))
    return views


def _json_files(captures: list[_Capture], page_url: str, fetched_at: datetime
                ) -> tuple[tuple[tuple[str, bytes], ...] | None, str]:
    """The captured answers as ``page-NNN.json`` when they make one whole portfolio, else
    None and why not."""
    if not captures:
        return None, "the page fetched no GetPortfolioDay JSON"
    for i, c in enumerate(captures, start=1):
        if c.status != 200:
            return None, f"{c.url} answered HTTP {c.status}"
        if c.page_number not in (None, i):
            return None, f"answer {i} was for page {c.page_number}"
        if c.segment not in (None, SECTOR_SEGMENT):
            return None, (f"answer {i} was for segment {c.segment}, not the sector view "
                          f"(segment {SECTOR_SEGMENT})")
    bodies = [c.body for c in captures]
    try:
        portfolio = parse_api_pages(bodies, captures[0].url, fetched_at, by_sector=True)
        total = json.loads(bodies[0]).get("page", {}).get("totalRecords")
    except B3PayloadError as exc:
        return None, str(exc)
    except (ValueError, AttributeError) as exc:
        return None, f"{captures[0].url}: {exc}"
    if isinstance(total, int) and total != len(portfolio.constituents):
        return None, (f"captured {len(portfolio.constituents)} rows but page.totalRecords "
                      f"is {total}")
    labels = sector_rules(portfolio)["every_row_has_a_sector"]
    if not labels.passed:
        return None, f"{captures[0].url}: {labels.problem}"
    return tuple((f"page-{i:03d}.json", b) for i, b in enumerate(bodies, start=1)), ""


def _rendered_json(views: list[Mapping[str, Any]], page_url: str, reason: str) -> bytes:
    """The table as the page showed it, as one API-shaped JSON document (texts as shown),
    with the sector view's ``segment`` (Setor) and, when shown, ``partAcum`` columns."""
    first = views[0]
    for number, view in enumerate(views, start=1):
        if not view["rows"]:
            shown = f" The page says: {view['error']!r}." if view.get("error") else ""
            where = "" if number == 1 else f" on table page {number}"
            raise B3PayloadError(
                page_url, f"the page showed no portfolio rows{where} and its JSON was "
                f"unusable ({reason}).{shown}"
            )
    headers = list(first["headers"])
    missing = [label for label in COLUMNS.values() if label not in headers]
    if missing:
        raise B3PayloadError(page_url, f"the rendered table lacks {', '.join(missing)} "
                             f"(it has {', '.join(headers)})")
    idx = {key: headers.index(label) for key, label in COLUMNS.items()}
    sector = [i for i, h in enumerate(headers) if h.casefold().startswith(("setor", "sector"))]
    if not sector:
        raise B3PayloadError(page_url, f"the rendered table has no Setor column (it has "
                             f"{', '.join(headers)}): the page did not show B3's sector view "
                             "('Setor de Atuação' in select#segment), so the sectors are "
                             "missing")
    idx["segment"] = sector[0]
    acum = [i for i, h in enumerate(headers) if "acum" in h.casefold()]
    if acum:
        idx["partAcum"] = acum[0]
    results = [
        {key: row[i] for key, i in idx.items()}
        for view in views for row in view["rows"] if len(row) >= len(headers)
    ]
    if not first["date"]:
        raise B3PayloadError(page_url, "the page shows no 'Carteira do Dia - dd/mm/yy' title")
    total = part = reductor = ""
    for cells in views[-1]["foot"]:
        values = [c for c in cells[1:] if c]
        label = cells[0].casefold() if cells else ""
        if label.startswith("quantidade te") and values:
            total = values[0]
            part = values[1] if len(values) > 1 else ""
        elif label.startswith("redutor") and values:
            reductor = values[0]
    if not total or not reductor:
        raise B3PayloadError(page_url, "the rendered table has no 'Quantidade Teórica Total' "
                             "and 'Redutor' footer")
    doc = {
        "header": {"date": first["date"], "theoricalQty": total, "reductor": reductor,
                   "part": part},
        "results": results,
    }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
