"""Parsing and validation: every real B3 sample passes; every rejection rule fires with a
message that names where the payload came from, its portfolio date and the problem.

The rejection cases are built from a generated portfolio, so they run on a fresh clone."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from b3_assets.source.errors import B3PayloadError
from b3_assets.source.model import Constituent, Portfolio
from b3_assets.source.parse import (
    MAX_PAYLOAD_BYTES,
    MAX_ROWS,
    date_from_filename,
    parse_api_pages,
    parse_csv,
)
from b3_assets.source.payload import RawPayload
from b3_assets.source.validate import validate_portfolio
from b3_assets_tests.replica import api_page, csv_bytes, generate_portfolio, portfolio_for
from b3_assets_tests.replica.portfolios import ReplicaPortfolio, load_sample

NOW = datetime(2025, 3, 5, 9, 30, tzinfo=UTC)
DAY = date(2025, 3, 5)
URL = "http://b3.test/indexProxy/indexCall/GetPortfolioDay/eyJwYWdlIjoxfQ=="
CSV_NAME = "IBOVDia_05-03-25.csv"


def _page_bytes(p: ReplicaPortfolio, **kw) -> bytes:
    doc = api_page(p, page_number=1, page_size=120, **kw)
    return json.dumps(doc, ensure_ascii=False).encode()


def _pages(p: ReplicaPortfolio) -> list[bytes]:
    """Every API page of ``p``, 120 rows a page."""
    return [json.dumps(api_page(p, page_number=n, page_size=120)).encode()
            for n in range(1, max(1, -(-len(p.rows) // 120)) + 1)]


def _validate_api(p: ReplicaPortfolio) -> None:
    validate_portfolio(parse_api_pages([_page_bytes(p)], URL, NOW))


def _reject(p: ReplicaPortfolio, problem: str) -> None:
    """Both B3 formats reject ``p``, naming URL/file, date and ``problem``."""
    for where, parse in ((URL, lambda: parse_api_pages(_pages(p), URL, NOW)),
                         (CSV_NAME, lambda: parse_csv(csv_bytes(p), CSV_NAME, NOW))):
        with pytest.raises(B3PayloadError) as err:
            validate_portfolio(parse())
        msg = str(err.value)
        assert where in msg, msg
        assert p.data_carteira.isoformat() in msg, msg
        assert problem in msg, msg


@pytest.fixture
def good() -> ReplicaPortfolio:
    return generate_portfolio(DAY)


# --- the real samples -------------------------------------------------------------------

def test_every_original_csv_parses_and_validates(samples_dir: Path) -> None:
    files = sorted((samples_dir / "csv_original").glob("*.csv"))
    assert len(files) >= 12
    for path in files:
        p = validate_portfolio(parse_csv(path.read_bytes(), path.name, NOW))
        assert p.data_carteira == date_from_filename(path.name), path.name
        assert 80 <= len(p.constituents) <= 95
        assert sum(c.qtde_teorica for c in p.constituents) == p.qtde_teorica_total
        assert p.participacao_total == Decimal("100.000")
        assert all("  " not in c.tipo for c in p.constituents)
        table = p.to_landing_table()
        assert table.num_rows == len(p.constituents)
        assert table.column("codigo").to_pylist() == sorted(c.codigo for c in p.constituents)


def test_the_sample_of_2025_03_05_in_detail(samples_dir: Path) -> None:
    data = (samples_dir / "csv_original" / CSV_NAME).read_bytes()
    p = RawPayload("csv", "file://" + CSV_NAME, NOW, ((CSV_NAME, data),)).portfolio(DAY)
    assert len(p.constituents) == 87
    assert p.qtde_teorica_total == 98_454_079_581
    assert p.redutor == Decimal("16163925.35005373")
    alos = next(c for c in p.constituents if c.codigo == "ALOS3")
    assert (alos.acao, alos.tipo, alos.qtde_teorica, alos.participacao_pct) == (
        "ALLOS", "ON ED NM", 476_976_044, Decimal("0.435"))


def test_crlf_copy_parses(samples_dir: Path) -> None:
    (path,) = (samples_dir / "csv_original").glob("*_crlf.csv")
    assert b"\r\n" in path.read_bytes()
    assert validate_portfolio(parse_csv(path.read_bytes(), path.name, NOW)).data_carteira == (
        date_from_filename(path.name))


def test_every_untitled_utf8_csv_takes_its_date_from_the_file_name(samples_dir: Path) -> None:
    files = sorted((samples_dir / "csv_utf8_no_title").glob("IBOVDia_*.csv"))
    assert len(files) == 32
    for path in files:
        p = validate_portfolio(parse_csv(path.read_bytes(), str(path), NOW))
        assert p.data_carteira == date_from_filename(path.name)


def test_real_api_results_parse_and_validate(samples_dir: Path) -> None:
    df = pd.read_parquet(samples_dir / "api_results_parquet" / "results_2025-07-14.parquet")
    results = df.astype(object).where(df.notna(), None).to_dict("records")
    total = sum(int(r["theoricalQty"].replace(".", "")) for r in results)
    page = {
        "page": {"pageNumber": 1, "pageSize": 120, "totalRecords": len(results),
                 "totalPages": 1},
        "header": {"date": "14/07/25", "text": "Quantidade Teórica Total", "part": "100,000",
                   "partAcum": None, "textReductor": "Redutor",
                   "reductor": "15.438.607,05630450",
                   "theoricalQty": f"{total:,}".replace(",", ".")},
        "results": results,
    }
    p = validate_portfolio(parse_api_pages([json.dumps(page).encode()], URL, NOW))
    assert p.data_carteira == date(2025, 7, 14) and len(p.constituents) == len(df)
    assert {c.tipo for c in p.constituents} >= {"ON NM", "PN N1"}


def test_replica_json_of_each_sample_parses_like_its_csv(samples_dir: Path) -> None:
    """The replica's API rendering is faithful: same portfolio as B3's own CSV."""
    for path in sorted((samples_dir / "csv_original").glob("*.csv")):
        served = load_sample(path)
        from_csv = parse_csv(path.read_bytes(), path.name, NOW)
        from_api = parse_api_pages([_page_bytes(served)], URL, NOW)
        assert from_api.constituents == from_csv.constituents, path.name
        assert (from_api.data_carteira, from_api.qtde_teorica_total, from_api.redutor) == (
            from_csv.data_carteira, from_csv.qtde_teorica_total, from_csv.redutor)
        assert csv_bytes(served) == path.read_bytes()  # the download is byte-exact


# --- generated data: both formats agree -------------------------------------------------

def test_generated_portfolio_passes_in_both_formats(good: ReplicaPortfolio) -> None:
    _validate_api(good)
    from_csv = validate_portfolio(parse_csv(csv_bytes(good), CSV_NAME, NOW))
    assert from_csv.constituents == good.constituents("1")
    assert not from_csv.by_sector and {c.setor_b3 for c in from_csv.constituents} == {None}


def test_us_number_format_is_not_taken_for_pt_br(good: ReplicaPortfolio) -> None:
    """language=en-us switches to 502,481,592 / 0.479: refused, not misread."""
    with pytest.raises(B3PayloadError, match="is not a pt-BR"):
        parse_api_pages([_page_bytes(good, language="en-us")], URL, NOW)


def test_api_pages_are_concatenated(good: ReplicaPortfolio) -> None:
    pages = [json.dumps(api_page(good, page_number=n, page_size=20)).encode()
             for n in range(1, 6)]
    assert parse_api_pages(pages, URL, NOW).constituents == good.constituents("1")
    by_sector = [json.dumps(api_page(good, page_number=n, page_size=20, segment="2")).encode()
                 for n in range(1, 6)]
    assert parse_api_pages(by_sector, URL, NOW).constituents == good.constituents("2")


# --- the rejection rules ----------------------------------------------------------------

def test_not_json() -> None:
    with pytest.raises(B3PayloadError) as err:
        parse_api_pages([b"<!DOCTYPE html><html><title>Access Denied</title>"], URL, NOW)
    assert URL in str(err.value) and "page 1 is not JSON" in str(err.value)


def test_truncated_json(good: ReplicaPortfolio) -> None:
    body = _page_bytes(good)
    with pytest.raises(B3PayloadError) as err:
        parse_api_pages([body[: len(body) // 2]], URL, NOW)
    assert URL in str(err.value) and "is not JSON" in str(err.value)


def test_not_csv() -> None:
    with pytest.raises(B3PayloadError, match=r"a ZIP archive \(or an \.xlsx workbook\)") as err:
        parse_csv(b"PK\x03\x04\x00\x00zipped", CSV_NAME, NOW)
    assert CSV_NAME in str(err.value)
    with pytest.raises(B3PayloadError, match="a Parquet file, not B3's CSV"):
        parse_csv(b"PAR1\x15\x04", CSV_NAME, NOW)
    with pytest.raises(B3PayloadError, match="binary"):
        parse_csv(b"\x00\x01\x02IBOV\n", CSV_NAME, NOW)
    with pytest.raises(B3PayloadError, match="empty"):
        parse_csv(b"  \n", CSV_NAME, NOW)
    with pytest.raises(B3PayloadError) as err:
        parse_csv(b'{"page": 1}', CSV_NAME, NOW)
    assert CSV_NAME in str(err.value) and DAY.isoformat() in str(err.value)
    assert "header lacks" in str(err.value)


def test_missing_csv_column(good: ReplicaPortfolio) -> None:
    data = csv_bytes(good).replace("Tipo;".encode("latin-1"), b"Tp;", 1)
    with pytest.raises(B3PayloadError) as err:
        parse_csv(data, CSV_NAME, NOW)
    msg = str(err.value)
    assert CSV_NAME in msg and DAY.isoformat() in msg and "lacks Tipo" in msg


def test_missing_api_key(good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120)
    doc["results"][3] = {k: v for k, v in doc["results"][3].items() if k != "theoricalQty"}
    with pytest.raises(B3PayloadError) as err:
        parse_api_pages([json.dumps(doc).encode()], URL, NOW)
    msg = str(err.value)
    assert URL in msg and DAY.isoformat() in msg and "result 4 is missing theoricalQty" in msg


def test_missing_header_key(good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120)
    del doc["header"]["reductor"]
    with pytest.raises(B3PayloadError, match="header is missing reductor") as err:
        parse_api_pages([json.dumps(doc).encode()], URL, NOW)
    assert URL in str(err.value)


def test_empty_results(good: ReplicaPortfolio) -> None:
    _reject(good.with_rows([]), "the results are empty")


def test_fewer_than_50_rows(good: ReplicaPortfolio) -> None:
    rows = good.rows[:40]
    _reject(good.with_rows(rows, total_qty=sum(r.qty for r in rows)),
            "only 40 constituents (IBOV has at least 50)")


def test_duplicated_code(good: ReplicaPortfolio) -> None:
    rows = list(good.rows)
    rows[1] = replace(rows[1], cod=rows[0].cod)
    _reject(good.with_rows(rows), f"duplicated codes: {rows[0].cod}")


@pytest.mark.parametrize("bad", ["PETR", "petr4", "PETR4F", "XP-T3", "1234"])
def test_not_a_ticker(good: ReplicaPortfolio, bad: str) -> None:
    rows = list(good.rows)
    rows[5] = replace(rows[5], cod=bad)
    _reject(good.with_rows(rows), f"not B3 tickers: {bad!r}")


def test_quantity_not_positive(good: ReplicaPortfolio) -> None:
    rows = list(good.rows)
    rows[2] = replace(rows[2], qty=0)
    _reject(good.with_rows(rows, total_qty=sum(r.qty for r in rows)),
            f"quantities not positive: {rows[2].cod}=0")


def test_quantities_not_adding_to_the_header_total(good: ReplicaPortfolio) -> None:
    total = good.total_qty + 1
    _reject(good.with_rows(good.rows, total_qty=total),
            f"quantities add up to {good.total_qty:,}, not to the header total {total:,}")


@pytest.mark.parametrize("delta,ok", [
    (Decimal("0.010"), True), (Decimal("-0.010"), True),
    (Decimal("0.011"), False), (Decimal("-0.011"), False), (Decimal("1.000"), False),
])
def test_participations_must_add_to_100_within_001(good: ReplicaPortfolio, delta: Decimal,
                                                   ok: bool) -> None:
    rows = list(good.rows)
    rows[0] = replace(rows[0], part=rows[0].part + delta)
    p = good.with_rows(rows)
    if ok:
        _validate_api(p)
    else:
        _reject(p, f"participations add up to {Decimal('100.000') + delta}, not to 100 ± 0.01")


def test_every_problem_is_reported_at_once(good: ReplicaPortfolio) -> None:
    rows = list(good.rows)
    rows[1] = replace(rows[1], cod=rows[0].cod)
    rows[2] = replace(rows[2], qty=0)
    with pytest.raises(B3PayloadError) as err:
        _validate_api(good.with_rows(rows))
    msg = str(err.value)
    assert "duplicated codes" in msg and "not positive" in msg and "add up to" in msg


def test_malformed_numbers_and_dates(good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120)
    code = doc["results"][0]["cod"]
    doc["results"][0]["part"] = "1.5e2"
    with pytest.raises(B3PayloadError, match=f"{code} part '1.5e2' is not a pt-BR decimal"):
        parse_api_pages([json.dumps(doc).encode()], URL, NOW)
    doc = api_page(good, page_number=1, page_size=120)
    doc["results"][1]["theoricalQty"] = "12x"
    code = doc["results"][1]["cod"]
    with pytest.raises(B3PayloadError, match=f"{code} quantity '12x' is not a pt-BR integer"):
        parse_api_pages([json.dumps(doc).encode()], URL, NOW)
    doc = api_page(good, page_number=1, page_size=120)
    doc["header"]["date"] = "31/02/25"
    with pytest.raises(B3PayloadError, match="not a calendar date"):
        parse_api_pages([json.dumps(doc).encode()], URL, NOW)


def test_sample_or_generated_for_any_date(samples_dir: Path) -> None:
    assert portfolio_for(DAY, samples_dir).origin.startswith("sample:")
    assert portfolio_for(date(2024, 6, 3), samples_dir).origin == "generated"


# --- what an attack on the pipeline found ------------------------------------------------

def _api_doc(p: ReplicaPortfolio) -> dict:
    return api_page(p, page_number=1, page_size=120)


def test_negative_participation_is_refused_even_when_the_sum_balances(
        good: ReplicaPortfolio) -> None:
    rows = list(good.rows)
    rows[0] = replace(rows[0], part=Decimal("-1.000"))
    rows[1] = replace(rows[1], part=good.rows[1].part + good.rows[0].part + Decimal("1.000"))
    p = good.with_rows(rows)
    assert sum(r.part for r in p.rows) == Decimal("100.000")
    _reject(p, f"negative participations: {rows[0].cod}=-1.000")


def test_a_fourth_decimal_is_refused_not_rounded(good: ReplicaPortfolio) -> None:
    doc = _api_doc(good)
    row = doc["results"][0]
    code, part, qty = row["cod"], row["part"], row["theoricalQty"]
    row["part"] = part + "4"  # 0.0004 off: inside the sum's tolerance, so only this rule sees it
    expected = f"participations with more than 3 decimals: {code}={part.replace(',', '.')}4"
    with pytest.raises(B3PayloadError, match=expected):
        validate_portfolio(parse_api_pages([json.dumps(doc).encode()], URL, NOW))
    data = csv_bytes(good).replace(f";{qty};{part};".encode(), f";{qty};{part}4;".encode(), 1)
    with pytest.raises(B3PayloadError, match=expected):
        validate_portfolio(parse_csv(data, CSV_NAME, NOW))
    row["part"] = part + "0"  # a trailing zero loses nothing: fine
    validate_portfolio(parse_api_pages([json.dumps(doc).encode()], URL, NOW))


def test_quantities_beyond_int64_are_refused_not_crashed_later(good: ReplicaPortfolio) -> None:
    rows = list(good.rows)
    rows[0] = replace(rows[0], qty=2**63)
    p = good.with_rows(rows, total_qty=sum(r.qty for r in rows))
    _reject(p, f"quantities beyond int64 (9,223,372,036,854,775,807): {rows[0].cod}={2**63}, "
               f"header total={p.total_qty}")
    doc = _api_doc(good)
    doc["results"][0]["theoricalQty"] = "9" * 5000  # Python would refuse to even convert it
    with pytest.raises(B3PayloadError, match="has 5,000 digits, more than int64 holds") as err:
        parse_api_pages([json.dumps(doc).encode()], URL, NOW)
    assert len(str(err.value)) < 400


@pytest.mark.parametrize("redutor", ["0", "-16163925.35005373"])
def test_non_positive_reductor_is_refused(good: ReplicaPortfolio, redutor: str) -> None:
    _reject(good.with_rows(good.rows, redutor=Decimal(redutor)),
            f"reductor not positive: {Decimal(redutor).quantize(Decimal('1E-8')):f}")


def test_a_reductor_landing_would_round_is_refused(good: ReplicaPortfolio) -> None:
    doc = _api_doc(good)
    doc["header"]["reductor"] = "16.163.925,350053731"
    with pytest.raises(B3PayloadError,
                       match=r"reductor beyond decimal\(24, 8\): 16163925.350053731"):
        validate_portfolio(parse_api_pages([json.dumps(doc).encode()], URL, NOW))


def test_more_than_200_constituents_is_refused(good: ReplicaPortfolio) -> None:
    rows = [replace(good.rows[0], cod=f"Z{i:03d}3", qty=1000, part=Decimal("0.400"))
            for i in range(250)]
    _reject(good.with_rows(rows, total_qty=250_000),
            "250 constituents, more than 200 (IBOV has about 90): not the IBOV portfolio")


def test_reading_stops_past_max_rows(good: ReplicaPortfolio) -> None:
    rows = [replace(good.rows[0], cod=f"Z{i:04d}3") for i in range(MAX_ROWS + 1)]
    p = good.with_rows(rows)
    for parse in (lambda: parse_api_pages(_pages(p), URL, NOW),
                  lambda: parse_csv(csv_bytes(p), CSV_NAME, NOW)):
        with pytest.raises(B3PayloadError, match="more than 2,000 constituent rows"):
            parse()


def test_payloads_over_the_size_cap_are_refused_unread() -> None:
    big = b"x" * (MAX_PAYLOAD_BYTES + 1)
    for parse in (lambda: parse_csv(big, CSV_NAME, NOW),
                  lambda: parse_api_pages([big], URL, NOW)):
        with pytest.raises(B3PayloadError, match="over the 20,971,520-byte cap"):
            parse()


def test_csv_parsing_streams(good: ReplicaPortfolio) -> None:
    """A CSV just under the cap costs a fraction of its size: read line by line, and
    reading stops once it cannot be the IBOV."""
    title, header, row, *_ = csv_bytes(good).split(b"\n")
    data = b"\n".join([title, header] + [row] * (MAX_PAYLOAD_BYTES // (len(row) + 1) - 2))
    assert len(data) > MAX_PAYLOAD_BYTES * 0.99
    tracemalloc.start()
    try:
        with pytest.raises(B3PayloadError, match="more than 2,000 constituent rows"):
            parse_csv(data, CSV_NAME, NOW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(data) / 4


@pytest.mark.parametrize("data", [
    b"A" * 5_000_000,  # one 5 MB cell
    b"A;" * 2_500_000,  # 2.5 million cells
    b"IBOV - Carteira do Dia 05/03/25\n" + "Código;Ação;Tipo;Qtde. Teórica;Part. (%)\n".encode()
    + b"X" * 5_000_000,  # one 5 MB row
])
def test_a_huge_line_yields_a_short_message(data: bytes) -> None:
    with pytest.raises(B3PayloadError) as err:
        parse_csv(data, CSV_NAME, NOW)
    assert len(str(err.value)) < 1000
    assert "more characters)" in str(err.value) or "more)" in str(err.value)


def test_every_listing_in_a_rejection_is_bounded() -> None:
    rows = tuple(Constituent(f"bad{i}", "A", "ON", -i, Decimal("-0.0001")) for i in range(1500))
    p = Portfolio(DAY, rows, 1, Decimal(0), NOW, URL)
    with pytest.raises(B3PayloadError) as err:
        validate_portfolio(p)
    msg = str(err.value)
    assert len(msg) < 4000
    for problem in ("not B3 tickers", "quantities not positive", "negative participations",
                    "more than 3 decimals", "constituents, more than 200",
                    "reductor not positive"):
        assert problem in msg, problem
    assert "… and 1,490 more" in msg


def test_a_csv_of_a_day_that_is_no_session_is_refused(good: ReplicaPortfolio) -> None:
    """B3's calendar is the caller's (b3_assets.sessions): an untitled CSV's date comes from
    its file name, and a weekend's is refused naming it."""
    untitled = csv_bytes(good).split(b"\n", 1)[1]
    saturday = RawPayload("csv", "file://x", NOW, (("IBOVDia_08-03-25.csv", untitled),))
    with pytest.raises(B3PayloadError, match=r"2025-03-08 \(Saturday\) is not a B3 session"):
        saturday.portfolio(is_session=lambda d: d.weekday() < 5)
    assert saturday.portfolio(is_session=lambda d: True).data_carteira == date(2025, 3, 8)
