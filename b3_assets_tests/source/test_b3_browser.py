"""The browser fetcher: a real headless Chromium on the replica's page.

One browser launch per test (about 2-4 s each), so only the paths that need a real browser
are here; the rendered-table conversion and the Chromium lookup are unit-tested without one."""

from __future__ import annotations

import json
import stat
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from b3_assets.source import browser as browser_mod
from b3_assets.source.api import portfolio_url
from b3_assets.source.browser import _rendered_json, fetch_browser, find_chromium
from b3_assets.source.errors import (
    B3BlockedError,
    B3PayloadError,
    B3UnavailableError,
    B3UnreachableError,
    BrowserMissingError,
)
from b3_assets.source.parse import parse_api_pages


@pytest.mark.browser
def test_keeps_the_json_the_page_fetched(b3_replica, chromium) -> None:
    started = time.monotonic()
    payload = fetch_browser(b3_replica.base_url, browser_path=chromium, timeout_s=30)
    elapsed = time.monotonic() - started
    assert payload.source == "browser"
    assert payload.url == b3_replica.page_url
    assert [name for name, _ in payload.files] == ["page-001.json"]
    # Verbatim: the same bytes the API serves for the page's own 120-row request.
    assert payload.files[0][1] == requests.get(portfolio_url(b3_replica.base_url, 1),
                                               timeout=5).content
    portfolio = payload.portfolio(b3_replica.portfolio.data_carteira)
    assert portfolio.constituents == b3_replica.portfolio.constituents()
    assert portfolio.by_sector and all(c.setor_b3 for c in portfolio.constituents)
    asked = [(r.params["segment"], r.params["pageNumber"], r.params["pageSize"])
             for r in b3_replica.api_requests(browser=True)]
    # The page's default, then by sector ("Setor de Atuação"), then the 120 the scraper chose.
    assert asked == [("1", 1, 20), ("2", 1, 20), ("2", 1, 120)]
    assert elapsed < 15, f"browser fetch took {elapsed:.1f}s"


@pytest.mark.browser
def test_pages_through_when_b3_still_paginates(b3_replica, chromium) -> None:
    b3_replica.fault("short_pages", max_page_size=20)
    payload = fetch_browser(b3_replica.base_url, browser_path=chromium)
    n_pages = -(-len(b3_replica.portfolio.rows) // 20)
    assert [name for name, _ in payload.files] == [f"page-{i:03d}.json"
                                                   for i in range(1, n_pages + 1)]
    assert payload.portfolio().constituents == b3_replica.portfolio.constituents()


@pytest.mark.browser
def test_reads_the_rendered_table_when_the_json_is_unusable(b3_replica, chromium) -> None:
    """B3 renamed its keys and updated its page: the JSON no longer parses, the table does."""
    b3_replica.fault("renamed_keys", rename={"cod": "codigo", "theoricalQty": "qtdeTeorica"})
    payload = fetch_browser(b3_replica.base_url, browser_path=chromium)
    assert [name for name, _ in payload.files] == ["rendered-table.json"]
    doc = json.loads(payload.files[0][1])
    assert set(doc) == {"header", "results"}
    assert set(doc["header"]) == {"date", "theoricalQty", "reductor", "part"}
    first = next(r for r in b3_replica.portfolio.rows
                 if r.cod == b3_replica.portfolio.constituents()[0].codigo)
    assert doc["results"][0]["cod"] == first.cod
    assert doc["results"][0]["type"] == first.type  # texts as shown, runs of spaces kept
    assert doc["results"][0]["segment"] == first.sector  # the sector view's Setor column
    served = b3_replica.portfolio
    portfolio = payload.portfolio(served.data_carteira)
    assert portfolio.constituents == served.constituents()
    assert portfolio.qtde_teorica_total == served.total_qty
    assert portfolio.redutor == served.redutor


@pytest.mark.browser
def test_site_down_for_everyone_is_unavailable(b3_replica, chromium) -> None:
    b3_replica.fault("5xx")
    with pytest.raises(B3UnavailableError) as err:
        fetch_browser(b3_replica.base_url, browser_path=chromium)
    msg = str(err.value)
    assert b3_replica.page_url in msg and "HTTP 503" in msg


@pytest.mark.browser
def test_blocked_for_browsers_too_is_blocked(b3_replica, chromium) -> None:
    b3_replica.fault("403", target="all")
    with pytest.raises(B3BlockedError) as err:
        fetch_browser(b3_replica.base_url, browser_path=chromium)
    assert b3_replica.page_url in str(err.value) and "403" in str(err.value)


@pytest.mark.browser
def test_a_page_that_does_not_load_fails_at_once(b3_replica, chromium) -> None:
    started = time.monotonic()
    with pytest.raises(B3UnavailableError, match="HTTP 404") as err:
        fetch_browser(b3_replica.base_url + "/moved", browser_path=chromium)
    assert "/moved/indexPage/day/IBOV" in str(err.value)
    assert time.monotonic() - started < browser_mod.STEP_WAIT_S  # no wait for the JSON


@pytest.mark.browser
def test_a_host_that_does_not_resolve_fails_at_once(chromium) -> None:
    started = time.monotonic()
    with pytest.raises(B3UnreachableError, match="ERR_NAME_NOT_RESOLVED") as err:
        fetch_browser("http://b3.invalid", browser_path=chromium)
    assert "B3_BASE_URL" in str(err.value)
    assert time.monotonic() - started < browser_mod.STEP_WAIT_S


def test_missing_browser_says_how_to_get_one(monkeypatch) -> None:
    monkeypatch.setattr(browser_mod, "SYSTEM_CHROMIUMS", ())
    monkeypatch.setattr(browser_mod, "_playwright_chromium", lambda: None)
    assert find_chromium("/nonexistent/chrome") is None
    with pytest.raises(BrowserMissingError) as err:
        fetch_browser("http://127.0.0.1:9", browser_path="/nonexistent/chrome")
    msg = str(err.value)
    assert "apt-get install chromium" in msg and "playwright install chromium" in msg
    assert "B3_BROWSER_PATH=/nonexistent/chrome" in msg


def test_find_chromium_order(tmp_path: Path, monkeypatch) -> None:
    exe = tmp_path / "my-chrome"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    system = tmp_path / "system-chromium"
    system.write_text("#!/bin/sh\n")
    system.chmod(system.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(browser_mod, "SYSTEM_CHROMIUMS", (str(tmp_path / "absent"),
                                                          str(system)))
    monkeypatch.setattr(browser_mod, "_playwright_chromium", lambda: "/pw/chrome")
    assert find_chromium(str(exe)) == str(exe)  # B3_BROWSER_PATH first
    not_exe = tmp_path / "not-executable"
    not_exe.write_text("")
    assert find_chromium(str(not_exe)) == str(system)  # then the system ones
    monkeypatch.setattr(browser_mod, "SYSTEM_CHROMIUMS", ())
    assert find_chromium(None) == "/pw/chrome"  # then Playwright's own


ROW = ["Diversos", "AAAA3", "A", "ON", "1", "1,0", "1,0"]
SECTOR_HEADERS = ["Setor", "Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)",
                  "Part. (%)Acum."]


def _view(rows, *, date="05/03/25", headers=None, foot=None, has_next=False):
    return {
        "date": date,
        "headers": headers or SECTOR_HEADERS,
        "rows": rows,
        "foot": foot if foot is not None else [
            ["Quantidade Teórica Total", "300", "100,000"], ["Redutor", "1,5", ""]],
        "current": "1", "hasNext": has_next, "error": "",
    }


def test_rendered_table_becomes_an_api_shaped_document() -> None:
    views = [_view([["Bens Indls/Transporte", "AAAA3", "A", "ON      NM", "100", "40,000",
                     "40,000"]], has_next=True),
             _view([["Cons N  Básico / Bebidas", "BBBB4", "B", "PN  EX N1", "200", "60,000",
                     "60,000"]])]
    body = _rendered_json(views, "http://b3.test/page", "renamed keys")
    doc = json.loads(body)
    assert doc["header"] == {"date": "05/03/25", "theoricalQty": "300", "reductor": "1,5",
                             "part": "100,000"}
    assert [r["cod"] for r in doc["results"]] == ["AAAA3", "BBBB4"]
    assert doc["results"][1]["segment"] == "Cons N  Básico / Bebidas"  # as shown
    from datetime import UTC, datetime

    portfolio = parse_api_pages([body], "http://b3.test/page", datetime.now(UTC))
    assert portfolio.qtde_teorica_total == 300 and portfolio.constituents[1].tipo == "PN EX N1"
    assert portfolio.by_sector
    assert portfolio.constituents[1].setor_b3 == "Cons N Básico / Bebidas"
    assert portfolio.constituents[1].part_acum == Decimal("60.000")


def test_a_rendered_table_without_sectors_is_refused() -> None:
    """The page did not switch to "Setor de Atuação": the sectors would be missing."""
    plain = ["Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)"]
    with pytest.raises(B3PayloadError, match="no Setor column") as err:
        _rendered_json([_view([ROW], headers=plain)],
                       "http://b3.test/page", "x")
    assert "Setor de Atuação" in str(err.value) and err.value.where == "http://b3.test/page"


def test_rendered_table_problems_name_the_page() -> None:
    with pytest.raises(B3PayloadError, match="lacks Tipo") as err:
        _rendered_json([_view([["S", "A", "B", "C", "D"]],
                              headers=["Setor", "Código", "Ação", "Qtde. Teórica", "Part. (%)"])],
                       "http://b3.test/page", "x")
    assert err.value.where == "http://b3.test/page"
    with pytest.raises(B3PayloadError, match="no 'Carteira do Dia - dd/mm/yy' title"):
        _rendered_json([_view([ROW], date=None)],
                       "http://b3.test/page", "x")
    with pytest.raises(B3PayloadError, match=r"no portfolio rows and .*\(answered HTTP 500\)"):
        _rendered_json([_view([])], "http://b3.test/page", "answered HTTP 500")
    with pytest.raises(B3PayloadError, match="no portfolio rows on table page 2"):
        _rendered_json([_view([ROW], has_next=True), _view([])],
                       "http://b3.test/page", "answered HTTP 500")
    with pytest.raises(B3PayloadError, match="footer"):
        _rendered_json([_view([ROW], foot=[])],
                       "http://b3.test/page", "x")
