"""The JSON API fetcher against the local replica: pages, retries, and every fault's outcome."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPResponse

from b3_assets.source import api, parse
from b3_assets.source.api import (
    check_base_url,
    fetch_api,
    portfolio_query,
    portfolio_url,
    retry_policy,
)
from b3_assets.source.errors import (
    B3BlockedError,
    B3ConfigError,
    B3DateMismatchError,
    B3Error,
    B3PayloadError,
    B3PermanentError,
    B3RateLimitedError,
    B3UnavailableError,
    B3UnreachableError,
    BrowserMissingError,
)
from b3_assets_tests.replica import generate_portfolio

# Tiny waits so retry tests take milliseconds.
FAST = {"timeout_s": 2.0, "retries": 2, "backoff_s": 0.001, "max_wait_s": 0.01}

# The token in the URL the real page calls (seen in public scrapers of B3).
REAL_TOKEN = (
    "eyJsYW5ndWFnZSI6InB0LWJyIiwicGFnZU51bWJlciI6MSwicGFnZVNpemUiOjEyMCwiaW5kZXgiOiJJQk9WIiwic2Vn"
    "bWVudCI6IjEifQ=="
)


def test_query_token_is_byte_for_byte_the_pages() -> None:
    assert portfolio_query(1, segment="1") == REAL_TOKEN
    assert portfolio_url("https://b3.example/", 1, segment="1").endswith(
        "/indexProxy/indexCall/GetPortfolioDay/" + REAL_TOKEN)
    # b3-pipeline asks the sector view: the same token with "segment":"2".
    by_sector = base64.b64encode(base64.b64decode(REAL_TOKEN).replace(
        b'"segment":"1"', b'"segment":"2"')).decode()
    assert portfolio_url("https://b3.example/", 1).endswith("/GetPortfolioDay/" + by_sector)
    assert portfolio_url("https://b3.example", 1, view="previa").endswith(
        "/indexProxy/indexCall/GetQuartelyPreview/" + base64.b64encode(
            b'{"language":"pt-br","pageNumber":1,"pageSize":120,"index":"IBOV"}').decode())
    with pytest.raises(ValueError, match="unknown portfolio view 'semanal'"):
        portfolio_url("https://b3.example", 1, view="semanal")


def test_one_page_kept_verbatim(b3_replica) -> None:
    payload = fetch_api(b3_replica.base_url, **FAST)
    assert payload.source == "api"
    assert [name for name, _ in payload.files] == ["page-001.json"]
    assert payload.files[0][1] == requests.get(payload.url, timeout=5).content
    portfolio = payload.portfolio(b3_replica.portfolio.data_carteira)
    assert portfolio.constituents == b3_replica.portfolio.constituents()
    assert portfolio.by_sector and all(c.setor_b3 for c in portfolio.constituents)
    req = b3_replica.api_requests()[0]
    assert req.params == {"language": "pt-br", "pageNumber": 1, "pageSize": 120,
                          "index": "IBOV", "segment": "2"}
    assert "Chrome/" in req.headers["User-Agent"]
    assert req.headers["Accept"].startswith("application/json")
    assert not req.browser


def test_generated_portfolio_round_trips(b3_replica) -> None:
    """Without the real samples the same path is covered by a generated portfolio."""
    served = b3_replica.set_portfolio(generate_portfolio(date(2024, 6, 3)))
    portfolio = fetch_api(b3_replica.base_url, **FAST).portfolio(date(2024, 6, 3))
    assert portfolio.constituents == served.constituents()
    assert portfolio.qtde_teorica_total == served.total_qty
    assert portfolio.redutor == served.redutor


def test_short_pages_follow_total_pages(b3_replica) -> None:
    b3_replica.fault("short_pages", max_page_size=20)
    payload = fetch_api(b3_replica.base_url, **FAST)
    n = len(b3_replica.portfolio.rows)
    assert [name for name, _ in payload.files] == [
        f"page-{i:03d}.json" for i in range(1, -(-n // 20) + 1)]
    assert [r.params["pageNumber"] for r in b3_replica.api_requests()] == list(
        range(1, -(-n // 20) + 1))
    assert payload.portfolio().constituents == b3_replica.portfolio.constituents()
    # The pages the fetcher decoded parse exactly like the bytes the archive keeps.
    assert payload.decoded_pages is not None and len(payload.decoded_pages) == -(-n // 20)
    from_bytes = replace(payload, decoded_pages=None)
    assert from_bytes == payload and from_bytes.portfolio() == payload.portfolio()


def test_latency_under_the_timeout_is_fine(b3_replica) -> None:
    b3_replica.fault("latency", ms=150)
    started = time.monotonic()
    payload = fetch_api(b3_replica.base_url, **FAST)
    assert time.monotonic() - started >= 0.15
    assert payload.portfolio().constituents == b3_replica.portfolio.constituents()


def test_latency_over_the_timeout_exhausts_retries(b3_replica) -> None:
    b3_replica.fault("latency", ms=700)
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(b3_replica.base_url, **{**FAST, "timeout_s": 0.2, "retries": 1})
    msg = str(err.value)
    assert portfolio_url(b3_replica.base_url, 1) in msg
    assert "2 attempts" in msg and "timed out after 0.2s" in msg


def test_5xx_burst_is_retried(b3_replica) -> None:
    b3_replica.fault("5xx", count=2)
    payload = fetch_api(b3_replica.base_url, **FAST)
    assert [r.status for r in b3_replica.api_requests()] == [503, 503, 200]
    assert payload.portfolio().constituents == b3_replica.portfolio.constituents()


def test_5xx_beyond_the_retries_is_unavailable(b3_replica) -> None:
    b3_replica.fault("5xx", status=502)
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(b3_replica.base_url, **FAST)
    msg = str(err.value)
    assert portfolio_url(b3_replica.base_url, 1) in msg
    assert "3 attempts" in msg and "HTTP 502" in msg
    assert len(b3_replica.api_requests()) == 3


def test_429_honors_retry_after(b3_replica) -> None:
    b3_replica.fault("429", count=1, retry_after="1")
    started = time.monotonic()
    payload = fetch_api(b3_replica.base_url, timeout_s=2.0, retries=2, backoff_s=0.001)
    assert time.monotonic() - started >= 1.0  # urllib3 alone would retry the first at once
    assert [r.status for r in b3_replica.api_requests()] == [429, 200]
    assert payload.files


def test_429_retry_after_is_capped(b3_replica) -> None:
    b3_replica.fault("429", count=1, retry_after="3600")
    started = time.monotonic()
    fetch_api(b3_replica.base_url, timeout_s=2.0, retries=2, backoff_s=0.001, max_wait_s=1.0)
    assert 1.0 <= time.monotonic() - started < 5


def test_a_429_asking_for_hours_fails_at_once_naming_it(b3_replica) -> None:
    """Before: 591 s of retries (fetch deadline × step retries) ending on a message that never
    said 429. A Retry-After no run waits for is final for the step, and says so."""
    b3_replica.fault("429", retry_after="100000")
    started = time.monotonic()
    with pytest.raises(B3RateLimitedError) as err:
        fetch_api(b3_replica.base_url, timeout_s=2.0, retries=2, backoff_s=0.001, max_wait_s=0.2)
    assert time.monotonic() - started < 5
    assert isinstance(err.value, B3PermanentError)  # the step does not retry it
    msg = str(err.value)
    assert "HTTP 429" in msg and "100,000 s (Retry-After)" in msg and "3 attempt(s)" in msg


def _until_quiet(b3_replica, quiet_s: float = 1.0, limit_s: float = 15.0) -> None:
    """Wait until a fetch abandoned at its deadline (its worker thread goes on to the end of
    its retries) stops asking, so its requests never land in the next test's log."""
    end = time.monotonic() + limit_s
    seen, since = len(b3_replica.requests), time.monotonic()
    while time.monotonic() < end and time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        if len(b3_replica.requests) != seen:
            seen, since = len(b3_replica.requests), time.monotonic()


def test_a_deadline_says_what_b3_was_answering(b3_replica) -> None:
    b3_replica.fault("429", retry_after="100000")
    with pytest.raises(B3RateLimitedError):  # the deadline came first: still named a 429
        fetch_api(b3_replica.base_url, timeout_s=2.0, retries=4, backoff_s=0.001,
                  max_wait_s=0.3, deadline_s=0.6)
    _until_quiet(b3_replica)
    b3_replica.reset()
    b3_replica.fault("5xx")
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(b3_replica.base_url, timeout_s=2.0, retries=6, backoff_s=0.05,
                  max_wait_s=0.3, deadline_s=0.6)
    assert "deadline" in str(err.value) and "The last answer: HTTP 5" in str(err.value)
    _until_quiet(b3_replica)


def test_hang_longer_than_the_timeout_is_retried(b3_replica) -> None:
    b3_replica.fault("timeout", count=1, hang_s=8)
    started = time.monotonic()
    # 1.5 s, not less: on a loaded 2-core machine a healthy answer can take longer than 0.3 s,
    # and its read timeout would be retried too (4 requests instead of 2).
    payload = fetch_api(b3_replica.base_url, **{**FAST, "timeout_s": 1.5})
    assert time.monotonic() - started < 6
    assert payload.portfolio().constituents == b3_replica.portfolio.constituents()
    assert len(b3_replica.api_requests()) == 2


def test_dropped_connections_are_retried(b3_replica) -> None:
    b3_replica.fault("drop", count=2)
    assert fetch_api(b3_replica.base_url, **FAST).files
    assert len(b3_replica.api_requests()) == 3


def test_403_is_blocked_and_not_retried(b3_replica) -> None:
    b3_replica.fault("403")
    with pytest.raises(B3BlockedError) as err:
        fetch_api(b3_replica.base_url, **FAST)
    msg = str(err.value)
    assert portfolio_url(b3_replica.base_url, 1) in msg and "403" in msg
    assert "browser" in msg
    assert len(b3_replica.api_requests()) == 1


def test_html_page_instead_of_json_is_blocked(b3_replica) -> None:
    b3_replica.fault("html")
    with pytest.raises(B3BlockedError) as err:
        fetch_api(b3_replica.base_url, **FAST)
    msg = str(err.value)
    assert portfolio_url(b3_replica.base_url, 1) in msg
    assert "HTML page ('Request Rejected')" in msg
    assert len(b3_replica.api_requests()) == 1


def test_truncated_json_is_a_payload_error(b3_replica) -> None:
    b3_replica.fault("truncated")
    with pytest.raises(B3PayloadError) as err:
        fetch_api(b3_replica.base_url, **FAST)
    assert err.value.where == portfolio_url(b3_replica.base_url, 1)
    assert "not valid JSON" in str(err.value) and "truncated?" in str(err.value)
    assert len(b3_replica.api_requests()) == 1


def test_other_4xx_is_a_config_error_not_retried(b3_replica) -> None:
    with pytest.raises(B3ConfigError) as err:
        fetch_api(b3_replica.base_url + "/moved", **FAST)
    msg = str(err.value)
    assert "HTTP 404" in msg and "/moved/indexProxy" in msg and "B3_BASE_URL" in msg
    assert len([r for r in b3_replica.requests if r.kind == "other"]) == 1


# --- what cannot heal fails in seconds, unretried ----------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_fails_fast_without_retries() -> None:
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(B3UnreachableError) as err:
        fetch_api(f"http://127.0.0.1:{port}", timeout_s=5.0, retries=4, backoff_s=1.0)
    assert time.monotonic() - started < 2  # 4 retries with backoff would take > 7 s
    msg = str(err.value)
    assert f"127.0.0.1:{port} refused the connection" in msg and "B3_BASE_URL" in msg


def test_unresolvable_host_fails_fast_without_retries() -> None:
    started = time.monotonic()
    with pytest.raises(B3UnreachableError) as err:
        fetch_api("http://b3.invalid", timeout_s=5.0, retries=4, backoff_s=1.0)
    assert time.monotonic() - started < 5
    msg = str(err.value)
    assert "b3.invalid does not resolve" in msg and "B3_BASE_URL" in msg


@pytest.mark.parametrize("bad", ["sistemaswebb3-listados.b3.com.br", "ftp://b3.example",
                                 "http://", "http://b3 .example", "http://b3.example:port",
                                 "http://[::1"])
def test_malformed_base_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(B3ConfigError, match="B3_BASE_URL=.* is not an http\\(s\\) address"):
        fetch_api(bad, **FAST)
    assert check_base_url("http://127.0.0.1:8765/ ") == "http://127.0.0.1:8765"


def test_permanent_and_transient_errors() -> None:
    """The raw asset fails without its RetryPolicy on B3PermanentError: exactly these."""
    for permanent in (B3PayloadError, B3DateMismatchError, BrowserMissingError,
                      B3UnreachableError, B3ConfigError):
        assert issubclass(permanent, B3PermanentError)
    for transient in (B3UnavailableError, B3BlockedError):
        assert issubclass(transient, B3Error) and not issubclass(transient, B3PermanentError)


# --- deadlines ------------------------------------------------------------------------------

def test_a_dripping_answer_ends_at_its_deadline(b3_replica) -> None:
    """One byte every 0.2 s: every read succeeds within the 1 s timeout, the answer never
    would; the whole-response deadline ends it, as a transient error, without a retry."""
    b3_replica.fault("drip", drip_s=0.2)
    started = time.monotonic()
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(b3_replica.base_url, timeout_s=1.0, retries=2, backoff_s=0.001)
    assert 1.0 <= time.monotonic() - started < 2.5
    msg = str(err.value)
    assert portfolio_url(b3_replica.base_url, 1) in msg
    assert "did not send its whole answer within 1s" in msg
    assert len(b3_replica.api_requests()) == 1


def test_the_whole_fetch_has_a_deadline(b3_replica) -> None:
    b3_replica.fault("timeout", hang_s=30)
    started = time.monotonic()
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(b3_replica.base_url, timeout_s=0.5, retries=20, backoff_s=0.001,
                  deadline_s=1.5)
    assert time.monotonic() - started < 2.5
    assert "did not finish within 1.5s, the deadline of the whole fetch" in str(err.value)
    assert api.default_deadline(20.0, 4) == 120.0 and api.default_deadline(1.0, 1) == 60.0


def test_retry_policy_is_urllib3s() -> None:
    policy = retry_policy(4, 0.5, max_wait_s=30.0)
    assert (policy.total, policy.connect, policy.read, policy.status) == (4, 0, 4, 4)
    assert set(policy.status_forcelist or ()) == {429, 500, 502, 503, 504}
    assert policy.allowed_methods == frozenset({"GET"})
    assert (policy.backoff_factor, policy.backoff_jitter, policy.backoff_max) == (0.5, 0.5, 30)
    assert policy.respect_retry_after_header and policy.retry_after_max == 30
    assert not policy.is_retry("GET", 403) and not policy.is_retry("GET", 404)
    assert policy.is_retry("GET", 503) and not policy.is_retry("POST", 503)


# --- size caps ------------------------------------------------------------------------------

def test_an_answer_over_the_size_cap_is_refused(b3_replica, monkeypatch) -> None:
    monkeypatch.setattr(parse, "MAX_PAYLOAD_BYTES", 1000)
    with pytest.raises(B3PayloadError, match="over the 1,000-byte cap") as err:
        fetch_api(b3_replica.base_url, **FAST)
    assert err.value.where == portfolio_url(b3_replica.base_url, 1)


def test_empty_results_fail_validation_with_the_url(b3_replica) -> None:
    b3_replica.fault("empty")
    payload = fetch_api(b3_replica.base_url, **FAST)
    with pytest.raises(B3PayloadError) as err:
        payload.portfolio()
    msg = str(err.value)
    assert payload.url in msg and "the results are empty" in msg
    assert b3_replica.portfolio.data_carteira.isoformat() in msg


def test_other_date_is_a_date_mismatch(b3_replica) -> None:
    asked = b3_replica.portfolio.data_carteira
    served = asked + timedelta(days=7)
    b3_replica.fault("other_date", serve_date=served)
    payload = fetch_api(b3_replica.base_url, **FAST)
    with pytest.raises(B3DateMismatchError) as err:
        payload.portfolio(asked)
    msg = str(err.value)
    assert payload.url in msg and asked.isoformat() in msg and served.isoformat() in msg


def test_renamed_keys_fetch_but_do_not_parse(b3_replica) -> None:
    b3_replica.fault("renamed_keys")
    payload = fetch_api(b3_replica.base_url, **FAST)
    with pytest.raises(B3PayloadError) as err:
        payload.parse()
    assert payload.url in str(err.value) and "missing cod" in str(err.value)


def test_given_session_is_used_and_left_open(b3_replica) -> None:
    calls: list[str] = []

    class Counting(requests.Session):
        def get(self, url: str | bytes, params: Any = None, **kw: Any) -> requests.Response:
            calls.append(str(url))
            return super().get(url, params=params, **kw)

    with Counting() as session:
        fetch_api(b3_replica.base_url, session=session, **FAST)
        assert calls == [portfolio_url(b3_replica.base_url, 1)]
        assert session.adapters  # still usable: not closed by fetch_api


def _response(body: bytes, headers: dict[str, str]) -> requests.Response:
    """A streamed 200 as requests builds it, over bytes instead of a socket."""
    resp = requests.Response()
    resp.status_code, resp.reason = 200, "OK"
    resp.headers = CaseInsensitiveDict(headers)
    resp.raw = HTTPResponse(io.BytesIO(body), headers=headers, status=200,
                            preload_content=False)
    return resp


class _StubSession(requests.Session):
    """Answers ``docs`` in order, as JSON without a Content-Length (read as it streams)."""

    def __init__(self, docs: list[dict]) -> None:
        super().__init__()
        self.docs = docs

    def get(self, url: str | bytes, params: Any = None, **kw: Any) -> requests.Response:
        return _response(json.dumps(self.docs.pop(0)).encode(),
                         {"Content-Type": "application/json"})


def _doc(page: int, pages: int, records: int, date_text: str, rows: int) -> dict:
    return {"page": {"pageNumber": page, "pageSize": 120, "totalRecords": records,
                     "totalPages": pages},
            "header": {"date": date_text}, "results": [{}] * rows}


def test_a_portfolio_published_mid_fetch_starts_the_fetch_over(b3_replica) -> None:
    """Page 1 is served under the next date once, as if B3 rolled over between pages."""
    b3_replica.fault("short_pages", max_page_size=20)
    b3_replica.fault("other_date", count=1)
    payload = fetch_api(b3_replica.base_url, **FAST)
    pages = -(-len(b3_replica.portfolio.rows) // 20)
    asked = [r.params["pageNumber"] for r in b3_replica.api_requests()]
    assert asked == [1, 2, *range(1, pages + 1)]  # page 2 disagreed with page 1: over again
    assert len(payload.files) == pages
    assert payload.portfolio(b3_replica.portfolio.data_carteira).constituents == (
        b3_replica.portfolio.constituents())


def test_pages_that_keep_disagreeing_are_rejected() -> None:
    docs = [_doc(1, 2, 3, "05/03/25", 2), _doc(2, 2, 3, "06/03/25", 1)] * (api.MAX_RESTARTS + 1)
    session = _StubSession(docs)
    with pytest.raises(B3UnavailableError) as err:  # transient: try again in a few minutes
        fetch_api("http://b3.test", session=session, **FAST)
    assert portfolio_url("http://b3.test", 2) in str(err.value)
    assert "changed the portfolio mid-fetch, 3 times in a row" in str(err.value)
    assert session.docs == []  # page 1 and 2 asked three times, nothing more


def test_rows_must_match_total_records() -> None:
    session = _StubSession([_doc(1, 1, 90, "05/03/25", 85)])
    with pytest.raises(B3PayloadError) as err:
        fetch_api("http://b3.test", session=session, **FAST)
    assert "hold 85 rows but page.totalRecords is 90" in str(err.value)


def test_absurd_page_count_is_rejected() -> None:
    session = _StubSession([_doc(1, 5000, 600000, "05/03/25", 120)])
    with pytest.raises(B3PayloadError, match="totalPages is 5000"):
        fetch_api("http://b3.test", session=session, **FAST)


def test_a_streamed_answer_over_the_size_cap_is_refused(monkeypatch) -> None:
    """No Content-Length to refuse up front: the body is cut as it passes the cap."""
    monkeypatch.setattr(parse, "MAX_PAYLOAD_BYTES", 200_000)
    doc = _doc(1, 1, 90, "05/03/25", 1)
    doc["results"] = [{"cod": "X" * 1000}] * 1000  # ~1 MB
    with pytest.raises(B3PayloadError, match="over the 200,000-byte cap"):
        fetch_api("http://b3.test", session=_StubSession([doc]), **FAST)


# --- the period views: GetTheoricalPortfolio and GetQuartelyPreview -----------------------

@pytest.mark.parametrize("view", ["teorica", "previa"])
def test_a_period_view_round_trips(b3_replica, view: str) -> None:
    payload = fetch_api(b3_replica.base_url, view=view, **FAST)
    assert payload.source == "api"
    assert payload.url == portfolio_url(b3_replica.base_url, 1, view=view)
    assert [name for name, _ in payload.files] == ["page-001.json"]
    assert payload.files[0][1] == requests.get(payload.url, timeout=5).content
    served = b3_replica.period(view)
    got = payload.portfolio(date(2025, 3, 5), view=view)
    assert got.constituents == served.constituents()
    assert (got.qtde_teorica_total, got.redutor) == (served.total_qty, served.redutor)
    assert got.data_carteira == date(2025, 3, 5) and got.view == view
    req = b3_replica.api_requests(kind=view)[0]  # then the test's own get
    assert req.params == {"language": "pt-br", "pageNumber": 1, "pageSize": 120, "index": "IBOV"}
    assert b3_replica.api_requests() == []  # GetPortfolioDay not asked


def test_period_views_follow_pages_and_retry(b3_replica) -> None:
    b3_replica.fault("short_pages", max_page_size=20, endpoint="GetTheoricalPortfolio")
    b3_replica.fault("5xx", count=1, endpoint="GetTheoricalPortfolio")
    payload = fetch_api(b3_replica.base_url, view="teorica", **FAST)
    n = len(b3_replica.period("teorica").rows)
    assert len(payload.files) == -(-n // 20)
    assert [r.status for r in b3_replica.api_requests(kind="teorica")][:2] == [503, 200]
    assert payload.portfolio(date(2025, 3, 5), view="teorica").constituents == (
        b3_replica.period("teorica").constituents())
    previa = fetch_api(b3_replica.base_url, view="previa", **FAST)  # the faults named one view
    assert len(previa.files) == 1


@pytest.mark.parametrize("fault,error,text", [
    ("403", B3BlockedError, "403"),
    ("truncated", B3PayloadError, "not valid JSON"),
    ("5xx", B3UnavailableError, "3 attempts"),
])
def test_period_view_faults(b3_replica, fault: str, error: type, text: str) -> None:
    b3_replica.fault(fault)
    with pytest.raises(error) as err:
        fetch_api(b3_replica.base_url, view="previa", **FAST)
    assert portfolio_url(b3_replica.base_url, 1, view="previa") in str(err.value)
    assert text in str(err.value)


def test_an_empty_period_view_is_refused_naming_it(b3_replica) -> None:
    b3_replica.fault("empty")
    payload = fetch_api(b3_replica.base_url, view="previa", **FAST)
    with pytest.raises(B3PayloadError) as err:
        payload.portfolio(date(2025, 3, 5), view="previa")
    msg = str(err.value)
    assert payload.url in msg and "GetQuartelyPreview" in msg and "2025-03-05" in msg
    assert "the results are empty" in msg


def test_period_pages_that_disagree_start_over() -> None:
    def doc(page: int, qty: str) -> dict:
        return {"page": {"pageNumber": page, "pageSize": 120, "totalRecords": 3,
                         "totalPages": 2},
                "header": {"theoricalQty": qty, "reductor": "1,0"}, "results": [{}] * (
                    2 if page == 1 else 1)}
    docs = [doc(1, "10"), doc(2, "11")] * (api.MAX_RESTARTS + 1)
    with pytest.raises(B3UnavailableError, match="changed the portfolio mid-fetch, 3 times"):
        fetch_api("http://b3.test", view="teorica", session=_StubSession(docs), **FAST)
