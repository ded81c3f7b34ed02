"""The replica itself: data like B3's, the API's paging/segment/language, the CSV download,
the page's DOM, fault bookkeeping, and running it by hand."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from b3_assets.source.api import portfolio_query
from b3_assets.source.parse import parse_csv
from b3_assets.source.validate import validate_portfolio
from b3_assets_tests.replica import (
    FAULT_MODES,
    Replica,
    csv_bytes,
    generate_period,
    generate_portfolio,
    is_browser,
    period_for,
    portfolio_for,
    sample_dates,
)
from b3_assets_tests.replica.__main__ import parse_fault
from b3_assets_tests.replica.portfolios import fmt_dec, fmt_int, label_order, sector_totals

API = "/indexProxy/indexCall/GetPortfolioDay/"
CSV = "/indexProxy/indexCall/GetDownloadPortfolioDay/"
PERIOD = {"teorica": "/indexProxy/indexCall/GetTheoricalPortfolio/",
          "previa": "/indexProxy/indexCall/GetQuartelyPreview/"}
NOW = datetime(2025, 3, 5, tzinfo=UTC)


def _b64(params: dict) -> str:
    return base64.b64encode(json.dumps(params, separators=(",", ":")).encode()).decode()


def _get(replica, params: dict, **headers) -> requests.Response:
    return requests.get(replica.base_url + API + _b64(params), headers=headers, timeout=5)


def _query(page: int, size: int, **kw) -> dict:
    return {"language": kw.get("language", "pt-br"), "pageNumber": page, "pageSize": size,
            "index": "IBOV", "segment": kw.get("segment", "1")}


def _get_period(replica, view: str, page: int = 1, size: int = 120,
                language: str = "pt-br") -> requests.Response:
    params = {"language": language, "pageNumber": page, "pageSize": size, "index": "IBOV"}
    return requests.get(replica.base_url + PERIOD[view] + _b64(params), timeout=5)


# --- generator ---------------------------------------------------------------------------

@pytest.mark.parametrize("day", [date(2025, 3, 5), date(2024, 12, 30), date(2026, 1, 2)])
def test_generated_portfolios_are_valid_and_b3_like(day: date) -> None:
    p = generate_portfolio(day)
    assert p == generate_portfolio(day)  # deterministic
    assert 80 <= len(p.rows) <= 90
    assert sum(r.qty for r in p.rows) == p.total_qty
    assert sum(r.part for r in p.rows) == Decimal("100.000")
    assert all(r.part == r.part.quantize(Decimal("0.001")) and r.part > 0 for r in p.rows)
    assert any(re.search(r"\S {2,}\S", r.type) for r in p.rows)  # runs of spaces
    assert [r.asset for r in p.rows] == sorted(r.asset for r in p.rows)  # company order
    validate_portfolio(parse_csv(csv_bytes(p), "IBOVDia.csv", NOW))


def test_generated_portfolios_differ_by_date() -> None:
    assert generate_portfolio(date(2025, 3, 5)).rows != generate_portfolio(date(2025, 3, 6)).rows


def test_without_samples_everything_is_generated(tmp_path: Path) -> None:
    assert sample_dates(None) == [] and sample_dates(tmp_path) == []
    assert portfolio_for(date(2025, 3, 5), None).origin == "generated"
    assert portfolio_for(date(2025, 3, 5), tmp_path / "absent").origin == "generated"


def test_number_formats() -> None:
    assert fmt_int(4_394_835_131) == "4.394.835.131"
    assert fmt_int(502_481_592, "en-us") == "502,481,592"
    assert fmt_dec(Decimal("16163925.35005373"), 8) == "16.163.925,35005373"
    assert fmt_dec(Decimal("0.479"), 3, "en-us") == "0.479"
    assert fmt_dec(Decimal("100"), 3) == "100,000"


# --- the API -----------------------------------------------------------------------------

def test_api_shape_and_paging(b3_replica) -> None:
    p = b3_replica.set_portfolio(generate_portfolio(date(2025, 3, 5)))
    first = _get(b3_replica, _query(1, 20))
    assert first.headers["Content-Type"].startswith("application/json")
    doc = first.json()
    assert set(doc) == {"page", "header", "results"}
    n = len(p.rows)
    assert doc["page"] == {"pageNumber": 1, "pageSize": 20, "totalRecords": n,
                           "totalPages": -(-n // 20)}
    assert doc["header"]["part"] == "100,000" and doc["header"]["date"] == "05/03/25"
    assert doc["header"]["text"] == "Quantidade Teórica Total"
    assert list(doc["results"][0]) == ["segment", "cod", "asset", "type", "part", "partAcum",
                                       "theoricalQty"]
    codes = []
    for page in range(1, doc["page"]["totalPages"] + 1):
        codes += [r["cod"] for r in _get(b3_replica, _query(page, 20)).json()["results"]]
    assert codes == [r.cod for r in p.rows]
    assert _get(b3_replica, _query(99, 20)).json()["results"] == []


def test_api_segment_and_language(b3_replica) -> None:
    p = b3_replica.set_portfolio(generate_portfolio(date(2025, 3, 5)))
    doc = _get(b3_replica, _query(1, 120, segment="2")).json()
    by_sector = doc["results"]
    assert doc["header"]["partAcum"] == "100,000"
    assert all(r["segment"] and r["partAcum"] for r in by_sector)
    labels = [r["segment"] for r in by_sector]
    assert labels == sorted(labels, key=label_order)  # grouped by label, B3's order
    assert sorted(r["cod"] for r in by_sector) == sorted(r.cod for r in p.rows)
    totals = sector_totals(p.rows)
    assert all(r["partAcum"] == fmt_dec(totals[r["segment"]], 3) for r in by_sector)
    assert _get(b3_replica, _query(1, 120)).json()["header"]["partAcum"] is None
    en = _get(b3_replica, _query(1, 120, language="en-us")).json()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", en["results"][0]["theoricalQty"])
    assert re.fullmatch(r"\d+\.\d{3}", en["results"][0]["part"])
    assert en["header"]["part"] == "100.000"


def test_api_rejects_a_garbled_parameter(b3_replica) -> None:
    resp = requests.get(b3_replica.base_url + API + "not-base64!!", timeout=5)
    assert resp.status_code == 400


def test_csv_download_is_base64_of_b3s_file(b3_replica, samples_dir: Path) -> None:
    resp = requests.get(
        b3_replica.base_url + CSV + _b64({"index": "IBOV", "language": "pt-br"}), timeout=5)
    data = base64.b64decode(resp.content)
    assert data == (samples_dir / "csv_original" / "IBOVDia_05-03-25.csv").read_bytes()


def test_csv_download_of_a_generated_portfolio(b3_replica) -> None:
    p = b3_replica.set_portfolio(generate_portfolio(date(2024, 6, 3)))
    resp = requests.get(
        b3_replica.base_url + CSV + _b64({"index": "IBOV", "language": "pt-br"}), timeout=5)
    parsed = parse_csv(base64.b64decode(resp.content), "download", NOW)
    assert parsed.data_carteira == date(2024, 6, 3)
    assert parsed.constituents == p.constituents("1")


def test_page_has_the_real_dom(b3_replica) -> None:
    html = requests.get(b3_replica.page_url, timeout=5).text
    for needle in ('id="onetrust-accept-btn-handler"', 'select id="selectPage"',
                   '<option value="20" selected>', '<option value="120">',
                   'id="listing_pagination"', 'select id="segment"',
                   'class="table table-responsive-sm table-responsive-md"',
                   "pagination-next", "Carteira do Dia - ", "GetPortfolioDay/",
                   "btoa(JSON.stringify(query))"):
        assert needle in html, needle
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no external assets


# --- faults and controls -----------------------------------------------------------------

def test_browser_rule() -> None:
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131"
    assert is_browser({"User-Agent": chrome, "Sec-Fetch-Mode": "cors"})
    assert not is_browser({"User-Agent": chrome})  # requests, however it dresses up
    assert not is_browser({"User-Agent": "python-requests/2.32", "Sec-Fetch-Mode": "cors"})


def test_fault_counts_and_targets(b3_replica) -> None:
    b3_replica.fault("5xx", count=2)
    assert [_get(b3_replica, _query(1, 120)).status_code for _ in range(3)] == [503, 503, 200]
    b3_replica.fault("403")  # default target: non-browser clients
    assert _get(b3_replica, _query(1, 120)).status_code == 403
    as_browser = _get(b3_replica, _query(1, 120), **{
        "User-Agent": "Mozilla/5.0 Chrome/131", "Sec-Fetch-Mode": "cors"})
    assert as_browser.status_code == 200
    assert [r.browser for r in b3_replica.api_requests()] == [False] * 4 + [True]


def test_data_faults(b3_replica) -> None:
    b3_replica.fault("renamed_keys", count=1)
    assert "codigo" in _get(b3_replica, _query(1, 120)).json()["results"][0]
    b3_replica.fault("empty", count=1)
    assert _get(b3_replica, _query(1, 120)).json()["results"] == []
    b3_replica.fault("truncated", count=1)
    with pytest.raises(ValueError):
        _get(b3_replica, _query(1, 120)).json()
    b3_replica.fault("other_date", count=1)
    assert _get(b3_replica, _query(1, 120)).json()["header"]["date"] == "06/03/25"
    b3_replica.fault("html", count=1)
    assert _get(b3_replica, _query(1, 120)).headers["Content-Type"].startswith("text/html")
    b3_replica.fault("short_pages", count=1)
    assert _get(b3_replica, _query(1, 120)).json()["page"]["pageSize"] == 20
    assert len(_get(b3_replica, _query(1, 120)).json()["results"]) == len(
        b3_replica.portfolio.rows)


def test_drip_sends_the_body_a_byte_at_a_time(b3_replica) -> None:
    b3_replica.fault("drip", count=1, drip_s=0.05)
    url = b3_replica.base_url + API + _b64(_query(1, 120))
    started = time.monotonic()
    with requests.get(url, stream=True, timeout=5) as resp:
        assert resp.status_code == 200 and int(resp.headers["Content-Length"]) > 1000
        got = b"".join(resp.raw.read1(100) for _ in range(4))
    assert len(got) == 4  # a byte per read: each read is quick, the whole answer never is
    assert time.monotonic() - started >= 0.15
    b3_replica.reset()  # releases the dripping answer
    assert _get(b3_replica, _query(1, 120)).json()["results"]


def test_reset_restores_everything(b3_replica) -> None:
    b3_replica.fault("5xx")
    b3_replica.set_portfolio(date(2024, 6, 3))
    _get(b3_replica, _query(1, 120))
    b3_replica.reset()
    assert b3_replica.requests == []
    assert _get(b3_replica, _query(1, 120)).status_code == 200
    assert b3_replica.portfolio.data_carteira == date(2025, 3, 5)


def test_unknown_fault_is_refused(b3_replica) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        b3_replica.fault("meteor")
    assert {"latency", "5xx", "timeout", "drip", "403", "html", "truncated", "empty",
            "other_date", "renamed_keys", "short_pages"} <= set(FAULT_MODES)


def test_cli_fault_specs() -> None:
    assert parse_fault("5xx:2,status=502") == ("5xx", 2, {"status": 502})
    assert parse_fault("latency,ms=300") == ("latency", None, {"ms": 300})
    assert parse_fault("drip:1,drip_s=0.25") == ("drip", 1, {"drip_s": 0.25})
    assert parse_fault("other_date,serve_date=2025-03-06") == (
        "other_date", None, {"serve_date": date(2025, 3, 6)})
    assert parse_fault("renamed_keys,rename=cod:code") == (
        "renamed_keys", None, {"rename": {"cod": "code"}})


def test_standalone_replica_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "b3_assets_tests.replica", "--port", "0", "--generated",
         "--date", "2024-06-03", "--fault", "5xx:1"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        served = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        assert served, line
        base = served.group(1)
        url = base + API + portfolio_query(1)
        assert requests.get(url, timeout=5).status_code == 503
        assert requests.get(url, timeout=5).json()["header"]["date"] == "03/06/24"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.any_day
def test_standalone_replica_serves_the_session_b3_serves_now_by_default() -> None:
    """The README's first click lands on any day: with no --date the replica serves the
    latest partition's date (today, or the next session on a weekend or holiday)."""
    from b3_assets.sessions import b3_session_now

    before = b3_session_now()
    proc = subprocess.Popen(
        [sys.executable, "-m", "b3_assets_tests.replica", "--port", "0", "--generated"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        served = re.search(r"\((\d{4}-\d{2}-\d{2}), \d+ rows\)", line)
        assert served, line
        assert date.fromisoformat(served.group(1)) in {before, b3_session_now()}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_replica_as_a_context_manager() -> None:
    with Replica(generate_portfolio(date(2025, 1, 6))) as replica:
        assert requests.get(replica.page_url, timeout=5).status_code == 200


# --- the sector view (segment 2) --------------------------------------------------------------

def test_sector_view_quirks_like_b3s(b3_replica) -> None:
    """Real labels, uneven spacing, one-word labels, grouped rows, partAcum per row."""
    p = b3_replica.set_portfolio(generate_portfolio(date(2025, 3, 5)))
    rows = _get(b3_replica, _query(1, 120, segment="2")).json()["results"]
    labels = [r["segment"] for r in rows]
    assert any("  " in label for label in labels)  # "Cons N  Básico / …", "Previd  Seguros"
    assert any("/" in label and " / " not in label for label in labels)  # "Bens Indls/…"
    assert {"Diversos", "Telecomunicação"} & set(labels)
    seen: list[str] = []
    for label in labels:  # each label's rows are contiguous
        if not seen or seen[-1] != label:
            assert label not in seen, label
            seen.append(label)
    assert sum(Decimal(r["part"].replace(",", ".")) for r in rows) == sum(r.part for r in p.rows)


def test_the_recorded_sector_view_is_served_verbatim(b3_replica, samples_dir: Path) -> None:
    """The replica's rendering of B3's 2025-04-07 segment 2 answer is B3's own results,
    order and all (en-us, as recorded)."""
    recorded = json.loads(
        (samples_dir / "api_json" / "GetPortfolioDay_IBOV_segment2_en-us_2025-04-07.json")
        .read_text(encoding="utf-8"))
    b3_replica.set_portfolio(date(2025, 4, 7))
    served = _get(b3_replica, _query(1, 9999, segment="2", language="en-us")).json()
    assert served["results"] == recorded["results"]
    assert served["header"] == recorded["header"]
    assert served["page"] == recorded["page"]


# --- the period views -------------------------------------------------------------------------

@pytest.mark.parametrize("view", ["teorica", "previa"])
def test_period_view_shape(b3_replica, view: str) -> None:
    period = b3_replica.period(view)
    doc = _get_period(b3_replica, view).json()
    assert set(doc) == {"page", "header", "results"}
    assert set(doc["header"]) == {"part", "theoricalQty", "reductor"}  # no date
    assert doc["header"]["theoricalQty"] == fmt_int(period.total_qty)
    assert doc["header"]["reductor"] == fmt_dec(period.redutor, 8)
    assert list(doc["results"][0]) == ["cod", "asset", "type", "theoricalQty", "part", "cont"]
    assert [r["cod"] for r in doc["results"]] == [r.cod for r in period.rows]
    assert doc["page"]["totalRecords"] == len(period.rows)
    assert sum(r.qty for r in period.rows) == period.total_qty
    assert b3_replica.api_requests(kind=view)[0].params["index"] == "IBOV"


def test_generated_period_views() -> None:
    teorica = generate_period("teorica", date(2025, 3, 5))
    previa = generate_period("previa", date(2025, 3, 5))
    assert (teorica.period_start, previa.period_start) == (date(2025, 1, 1), date(2025, 5, 1))
    assert generate_period("previa", date(2025, 11, 3)).period_start == date(2026, 1, 1)
    assert teorica.rows != previa.rows
    for p in (teorica, previa):
        assert [r.cod for r in p.rows] == sorted(r.cod for r in p.rows)
        assert sum(r.part for r in p.rows) == Decimal("100.000")
    assert period_for("teorica", date(2025, 3, 5), None).origin == "generated"


def test_the_recorded_theoretical_portfolio_is_served_verbatim(b3_replica,
                                                                samples_dir: Path) -> None:
    recorded = json.loads(
        (samples_dir / "api_json" / "GetTheoricalPortfolio_IBOV_en-us_2025-04-07.json")
        .read_text(encoding="utf-8"))
    assert b3_replica.period("teorica").origin.startswith("sample:")
    assert _get_period(b3_replica, "teorica", size=9999, language="en-us").json() == recorded


def test_faults_apply_to_the_period_views(b3_replica) -> None:
    b3_replica.fault("5xx", count=1)
    assert _get_period(b3_replica, "teorica").status_code == 503
    b3_replica.fault("empty", count=1)
    assert _get_period(b3_replica, "previa").json()["results"] == []
    b3_replica.fault("short_pages", count=1, max_page_size=20)
    assert _get_period(b3_replica, "teorica").json()["page"]["pageSize"] == 20
    b3_replica.fault("renamed_keys", count=1)
    assert "codigo" in _get_period(b3_replica, "previa").json()["results"][0]
    b3_replica.fault("truncated", count=1)
    with pytest.raises(ValueError):
        _get_period(b3_replica, "teorica").json()
    b3_replica.fault("other_date", count=1)  # no date to change: left alone, not spent
    assert _get_period(b3_replica, "teorica").status_code == 200
    assert _get(b3_replica, _query(1, 120)).json()["header"]["date"] == "06/03/25"


def test_a_fault_can_target_one_endpoint(b3_replica) -> None:
    b3_replica.fault("5xx", endpoint="GetQuartelyPreview")
    assert _get_period(b3_replica, "previa").status_code == 503
    assert _get_period(b3_replica, "teorica").status_code == 200
    assert _get(b3_replica, _query(1, 120)).status_code == 200
    assert [r.kind for r in b3_replica.requests] == ["previa", "teorica", "api"]
    with pytest.raises(ValueError, match="unknown endpoint 'GetEverything'"):
        b3_replica.fault("5xx", endpoint="GetEverything")
    assert parse_fault("5xx,endpoint=GetTheoricalPortfolio") == (
        "5xx", None, {"endpoint": "GetTheoricalPortfolio"})


def test_reset_restores_the_period_views(b3_replica) -> None:
    default = b3_replica.period("previa")
    b3_replica.set_period(generate_period("previa", date(2026, 1, 5)))
    assert b3_replica.period("previa") != default
    b3_replica.reset()
    assert b3_replica.period("previa") == default
