"""The JSON API fetcher against the local replica: pages, retries, and every fault's outcome."""

from __future__ import annotations

import json
import random
import socket
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from b3_assets.b3 import api
from b3_assets.b3.api import (
    fetch_api,
    portfolio_query,
    portfolio_url,
    retry_after_seconds,
    retry_wait,
)
from b3_assets.b3.errors import (
    B3BlockedError,
    B3DateMismatchError,
    B3PayloadError,
    B3UnavailableError,
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
    assert portfolio_query(1) == REAL_TOKEN
    assert portfolio_url("https://b3.example/", 1).endswith(
        "/indexProxy/indexCall/GetPortfolioDay/" + REAL_TOKEN)


def test_one_page_kept_verbatim(b3_replica) -> None:
    payload = fetch_api(b3_replica.base_url, **FAST)
    assert payload.source == "api"
    assert [name for name, _ in payload.files] == ["page-001.json"]
    assert payload.files[0][1] == requests.get(payload.url, timeout=5).content
    portfolio = payload.portfolio(b3_replica.portfolio.data_carteira)
    assert portfolio.constituents == b3_replica.portfolio.constituents()
    req = b3_replica.api_requests()[0]
    assert req.params == {"language": "pt-br", "pageNumber": 1, "pageSize": 120,
                          "index": "IBOV", "segment": "1"}
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


def test_429_honors_retry_after(b3_replica, monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(api, "_sleep", waits.append)
    b3_replica.fault("429", count=1, retry_after="7")
    payload = fetch_api(b3_replica.base_url, timeout_s=2.0, retries=2, backoff_s=0.001)
    assert waits == [7.0]
    assert [r.status for r in b3_replica.api_requests()] == [429, 200]
    assert payload.files


def test_429_retry_after_is_capped(b3_replica, monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(api, "_sleep", waits.append)
    b3_replica.fault("429", count=1, retry_after="3600")
    fetch_api(b3_replica.base_url, timeout_s=2.0, retries=2, backoff_s=0.001)
    assert waits == [api.MAX_WAIT_S]


def test_hang_longer_than_the_timeout_is_retried(b3_replica) -> None:
    b3_replica.fault("timeout", count=1, hang_s=5)
    started = time.monotonic()
    payload = fetch_api(b3_replica.base_url, **{**FAST, "timeout_s": 0.3})
    assert time.monotonic() - started < 3
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


def test_other_4xx_is_not_retried(b3_replica) -> None:
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(b3_replica.base_url + "/moved", **FAST)
    assert "HTTP 404" in str(err.value) and "/moved/indexProxy" in str(err.value)
    assert len([r for r in b3_replica.requests if r.kind == "other"]) == 1


def test_connection_refused_exhausts_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(B3UnavailableError) as err:
        fetch_api(f"http://127.0.0.1:{port}", **FAST)
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "3 attempts" in str(err.value) and "connection failed" in str(err.value)


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
        def get(self, url, **kw):  # type: ignore[override]
            calls.append(url)
            return super().get(url, **kw)

    with Counting() as session:
        fetch_api(b3_replica.base_url, session=session, **FAST)
        assert calls == [portfolio_url(b3_replica.base_url, 1)]
        assert session.adapters  # still usable: not closed by fetch_api


class _Resp:
    def __init__(self, doc: dict) -> None:
        self.status_code, self.reason = 200, "OK"
        self.headers = {"Content-Type": "application/json"}
        self.content = json.dumps(doc).encode()


class _StubSession:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def get(self, url: str, timeout: object = None) -> _Resp:
        return _Resp(self.docs.pop(0))

    def close(self) -> None:
        pass


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
    with pytest.raises(B3PayloadError) as err:
        fetch_api("http://b3.test", session=session, **FAST)  # type: ignore[arg-type]
    assert err.value.where == portfolio_url("http://b3.test", 2)
    assert "changed the portfolio mid-fetch, 3 times in a row" in str(err.value)
    assert session.docs == []  # page 1 and 2 asked three times, nothing more


def test_rows_must_match_total_records() -> None:
    session = _StubSession([_doc(1, 1, 90, "05/03/25", 85)])
    with pytest.raises(B3PayloadError) as err:
        fetch_api("http://b3.test", session=session, **FAST)  # type: ignore[arg-type]
    assert "hold 85 rows but page.totalRecords is 90" in str(err.value)


def test_absurd_page_count_is_rejected() -> None:
    session = _StubSession([_doc(1, 5000, 600000, "05/03/25", 120)])
    with pytest.raises(B3PayloadError, match="totalPages is 5000"):
        fetch_api("http://b3.test", session=session, **FAST)  # type: ignore[arg-type]


def test_retry_wait_is_full_jitter_exponential_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 8):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        waits = [retry_wait(attempt, 0.5, rng=rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range
    assert retry_wait(1, 0.5, retry_after=4.0) == 4.0
    assert retry_wait(1, 0.5, retry_after=400.0, max_wait_s=30.0) == 30.0


def test_retry_after_parsing() -> None:
    now = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True),
                               now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True),
                               now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
