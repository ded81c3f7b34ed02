"""``B3_FETCH``: the API first, the browser when the API refuses or answers garbage, and
every replica fault's outcome at this level (the path taken, or the clear error)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from b3_assets.source import browser as browser_mod
from b3_assets.source import fetch as fetch_mod
from b3_assets.source.api import portfolio_url
from b3_assets.source.errors import (
    B3BlockedError,
    B3ConfigError,
    B3DateMismatchError,
    B3PayloadError,
    B3UnavailableError,
    B3UnreachableError,
    BrowserMissingError,
)
from b3_assets.source.fetch import fetch_portfolio
from b3_assets.source.payload import RawPayload

FAST = {"timeout_s": 2.0, "retries": 2, "backoff_s": 0.001}


def _auto(replica, **kw) -> RawPayload:
    return fetch_portfolio("auto", replica.base_url, **{**FAST, **kw})


def _same_portfolio(payload: RawPayload, replica) -> None:
    portfolio = payload.portfolio(replica.portfolio.data_carteira)
    assert portfolio.constituents == replica.portfolio.constituents()


# --- the API path: no browser involved --------------------------------------------------

def test_auto_uses_the_api_when_it_works(b3_replica, caplog) -> None:
    caplog.set_level(logging.INFO, "b3_assets.source.fetch")
    payload = _auto(b3_replica)
    assert payload.source == "api"
    _same_portfolio(payload, b3_replica)
    assert not b3_replica.api_requests(browser=True)
    assert "JSON API" in caplog.text


@pytest.mark.parametrize("fault,options", [
    ("5xx", {"count": 2}),
    ("429", {"count": 1, "retry_after": "0"}),
    ("timeout", {"count": 1, "hang_s": 5}),
    ("drop", {"count": 1}),
    ("latency", {"ms": 100}),
])
def test_transient_faults_are_retried_on_the_api(b3_replica, fault, options) -> None:
    b3_replica.fault(fault, **options)
    payload = _auto(b3_replica, timeout_s=0.5)
    assert payload.source == "api"
    _same_portfolio(payload, b3_replica)
    assert not b3_replica.api_requests(browser=True)


def test_short_pages_are_followed_on_the_api(b3_replica) -> None:
    b3_replica.fault("short_pages")
    payload = _auto(b3_replica)
    assert payload.source == "api" and len(payload.files) > 1
    _same_portfolio(payload, b3_replica)


def test_outage_is_not_sent_to_the_browser(b3_replica) -> None:
    b3_replica.fault("5xx")
    with pytest.raises(B3UnavailableError) as err:
        _auto(b3_replica)
    msg = str(err.value)
    assert portfolio_url(b3_replica.base_url, 1) in msg and "3 attempts" in msg
    assert "HTTP 503" in msg
    assert not b3_replica.api_requests(browser=True)


def test_empty_results_are_returned_and_rejected_by_validation(b3_replica) -> None:
    b3_replica.fault("empty")
    payload = _auto(b3_replica)
    assert payload.source == "api"
    with pytest.raises(B3PayloadError) as err:
        payload.portfolio(b3_replica.portfolio.data_carteira)
    assert payload.url in str(err.value) and "the results are empty" in str(err.value)


def test_other_date_is_returned_and_rejected_by_the_date_check(b3_replica) -> None:
    asked = b3_replica.portfolio.data_carteira
    b3_replica.fault("other_date", serve_date=asked + timedelta(days=1))
    payload = _auto(b3_replica)
    with pytest.raises(B3DateMismatchError) as err:
        payload.portfolio(asked)
    assert payload.url in str(err.value)
    assert (asked + timedelta(days=1)).isoformat() in str(err.value)


def test_api_mode_never_falls_back(b3_replica) -> None:
    b3_replica.fault("403")
    with pytest.raises(B3BlockedError, match="403"):
        fetch_portfolio("api", b3_replica.base_url, **FAST)
    assert not b3_replica.api_requests(browser=True)


def test_browser_mode_goes_straight_to_the_browser(b3_replica, monkeypatch) -> None:
    calls: list[tuple] = []
    fake = RawPayload("browser", b3_replica.page_url, datetime.now(UTC), ())

    def fake_browser(base_url, *, browser_path=None, timeout_s=30.0):
        calls.append((base_url, browser_path, timeout_s))
        return fake

    monkeypatch.setattr(fetch_mod, "fetch_browser", fake_browser)
    assert fetch_portfolio("browser", b3_replica.base_url, browser_path="/x/chrome") is fake
    assert calls == [(b3_replica.base_url, "/x/chrome", 30.0)]
    assert not b3_replica.api_requests()


def _no_browser(*args: object, **kwargs: object) -> RawPayload:
    raise AssertionError("the browser must not be tried")


def test_unreachable_host_fails_fast_without_the_browser(monkeypatch) -> None:
    monkeypatch.setattr(fetch_mod, "fetch_browser", _no_browser)
    started = time.monotonic()
    with pytest.raises(B3UnreachableError, match="b3.invalid does not resolve"):
        fetch_portfolio("auto", "http://b3.invalid", timeout_s=20.0, retries=4)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("mode", ["auto", "api", "browser"])
def test_malformed_base_url_fails_before_any_fetch(monkeypatch, mode: str) -> None:
    monkeypatch.setattr(fetch_mod, "fetch_browser", _no_browser)
    with pytest.raises(B3ConfigError, match="B3_BASE_URL='b3.com.br' is not an http"):
        fetch_portfolio(mode, "b3.com.br")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="B3_FETCH='scrape'"):
        fetch_portfolio("scrape", "http://127.0.0.1:9")


def test_fallback_without_a_browser_says_both_things(b3_replica, monkeypatch) -> None:
    monkeypatch.setattr(browser_mod, "SYSTEM_CHROMIUMS", ())
    monkeypatch.setattr(browser_mod, "_playwright_chromium", lambda: None)
    b3_replica.fault("403")
    with pytest.raises(BrowserMissingError) as err:
        _auto(b3_replica, browser_path="/nonexistent/chrome")
    text = str(err.value) + "\n".join(getattr(err.value, "__notes__", []))
    assert "apt-get install chromium" in text
    assert "tried the JSON API first" in text and "403" in text


# --- the fallback: a real browser -------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("fault,options,files", [
    ("403", {}, ["page-001.json"]),
    ("html", {}, ["page-001.json"]),
    ("truncated", {"count": 1}, ["page-001.json"]),
    ("renamed_keys", {}, ["rendered-table.json"]),
])
def test_auto_falls_back_to_the_browser(b3_replica, chromium, caplog, fault, options,
                                         files) -> None:
    caplog.set_level(logging.INFO, "b3_assets.source")
    b3_replica.fault(fault, **options)
    payload = _auto(b3_replica, browser_path=chromium)
    assert payload.source == "browser"
    assert [name for name, _ in payload.files] == files
    _same_portfolio(payload, b3_replica)
    assert b3_replica.api_requests(browser=False)  # the API was tried first
    assert b3_replica.api_requests(browser=True)
    assert all(r.status == 200 for r in b3_replica.api_requests(browser=True))
    reason = ("refused a non-browser client" if fault in {"403", "html"}
              else "answered something unparsable")
    assert "falling back to the browser because the API " + reason in caplog.text
