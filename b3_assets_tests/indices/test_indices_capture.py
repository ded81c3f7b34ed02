"""Every B3 index of a date, over real HTTP against the replica: GetStockIndex decides what is
collected, every index is archived and landed exactly as served, one failing index blocks
nothing, the second attempt fetches only what is missing, at most 4 requests at once."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b3_assets.indices.collect import capture_indices, land_indices
from b3_assets.source.api import fetch_stock_index, index_levels_url
from b3_assets.source.errors import B3DateMismatchError, B3PayloadError, B3UnavailableError
from b3_assets.source.indices import (
    COMPOSICAO_SCHEMA,
    MAX_IN_FLIGHT,
    fetch_index_portfolio,
    parse_index_levels_json,
    parse_membership,
)
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.source.parse import parse_csv
from b3_assets.storage.lake import LocalLake
from b3_assets_tests.replica import csv_bytes
from b3_assets_tests.replica.indices import LEVELS_SAMPLE, NO_SECTOR_VIEW, sample_closes
from glue.layout import carteiras_key, composicao_key

FAST = {"timeout_s": 2.0, "retries": 1, "backoff_s": 0.01}
DAY = date(2025, 3, 5)  # the replica's default portfolio date (a real IBOV sample)


def _capture(replica, lake: LocalLake, day: date = DAY, **kw):
    return capture_indices(
        lake, day, lambda: fetch_stock_index(replica.base_url, **FAST),
        lambda index: fetch_index_portfolio(replica.base_url, index, **FAST),
        retry_pause_s=0.01, **kw)


def _read(lake: LocalLake, key: str):
    return pq.read_table(io.BytesIO(lake.read_bytes(key)), use_threads=False)


def test_get_stock_index_lists_the_indices_to_collect(b3_replica):
    membership = parse_membership(fetch_stock_index(b3_replica.base_url, **FAST), DAY)
    assert len(membership.indices) == 34 and {"IBOV", "SMLL", "IFIX", "BDRX"} <= set(
        membership.indices)
    assert membership.members_of("IBOV") == sorted(r.cod for r in b3_replica.portfolio.rows)
    # A new index appears without a code change: it is whatever B3 lists.
    rows = b3_replica.stock_index_rows()
    rows[0]["indexes"] += ",XNEW"
    b3_replica.set_stock_index_rows(rows)
    again = parse_membership(fetch_stock_index(b3_replica.base_url, **FAST), DAY)
    assert "XNEW" in again.indices and len(again.indices) == 35


def test_every_index_lands_exactly_as_served(b3_replica, tmp_path: Path):
    lake = LocalLake(tmp_path)
    capture = _capture(b3_replica, lake)
    assert not capture.failures and capture.membership_error is None
    assert sorted(capture.portfolios) == b3_replica.indices() and len(capture.fetched) == 34
    landed = land_indices(lake, capture)
    carteiras = _read(lake, carteiras_key(DAY))
    assert carteiras.schema.equals(LANDING_SCHEMA, check_metadata=False)
    rows = carteiras.to_pylist()
    assert [(r["indice"], r["codigo"]) for r in rows] == sorted(
        (r["indice"], r["codigo"]) for r in rows)
    assert landed.rows == len(rows)
    for index in b3_replica.indices():
        served = b3_replica.index_portfolio(index)
        mine = [r for r in rows if r["indice"] == index]
        assert {(r["codigo"], r["qtde_teorica"], r["participacao_pct"]) for r in mine} == {
            (r.cod, r.qty, r.part) for r in served.rows}, index
        assert {r["qtde_teorica_total"] for r in mine} == {served.total_qty}
        assert {r["data_carteira"] for r in mine} == {DAY}
        sectors = {r["setor_b3"] for r in mine}
        if index in NO_SECTOR_VIEW:  # no sector view: the code view, null sectors
            assert sectors == {None}, index
        else:
            assert None not in sectors, index
    composicao = _read(lake, composicao_key(DAY))
    assert composicao.schema.equals(COMPOSICAO_SCHEMA, check_metadata=False)
    expected = {(r["code"], i) for r in b3_replica.stock_index_rows()
                for i in r["indexes"].split(",")}
    assert {(r["codigo"], r["indice"]) for r in composicao.to_pylist()} == expected
    # Polite: one GetStockIndex, pageSize 120, never more than 4 requests at once.
    asked = b3_replica.api_requests()
    assert {r.params["pageSize"] for r in asked} == {120}
    assert len(b3_replica.api_requests(kind="stock_index")) == 1
    assert len(b3_replica.requests) <= 46
    assert b3_replica.max_in_flight <= MAX_IN_FLIGHT
    # Archive-first: a second capture of the date asks B3 nothing.
    before = len(b3_replica.requests)
    again = _capture(b3_replica, lake)
    assert again.fetched == [] and len(again.reused) == 34 and not again.failures
    assert len(b3_replica.requests) == before


def test_at_most_four_in_flight_even_when_b3_is_slow(b3_replica, tmp_path: Path):
    b3_replica.fault("latency", ms=50)
    capture = _capture(b3_replica, LocalLake(tmp_path))
    assert len(capture.portfolios) == 34
    assert b3_replica.max_in_flight == MAX_IN_FLIGHT


def test_one_failing_index_blocks_nothing_and_is_retried_alone(b3_replica, tmp_path: Path):
    lake = LocalLake(tmp_path)
    b3_replica.fault("5xx", index="SMLL")
    capture = _capture(b3_replica, lake)
    assert capture.missing == ["SMLL"] and len(capture.portfolios) == 33
    assert isinstance(capture.failures["SMLL"], B3UnavailableError)
    assert "SMLL" in capture.problems()[0] and "503" in capture.problems()[0]
    land_indices(lake, capture)
    landed = {r["indice"] for r in _read(lake, carteiras_key(DAY)).to_pylist()}
    assert "IBOV" in landed and "SMLL" not in landed and len(landed) == 33
    # The retry round asked SMLL again on its own (urllib3's retries inside each round).
    smll = [r for r in b3_replica.api_requests() if r.params["index"] == "SMLL"]
    assert len(smll) == 2 * (FAST["retries"] + 1)
    # Second attempt: B3 is back; only SMLL is fetched, GetStockIndex comes from the archive.
    b3_replica.reset()
    second = _capture(b3_replica, lake)
    assert second.fetched == ["SMLL"] and not second.failures and len(second.reused) == 33
    assert {r.params["index"] for r in b3_replica.api_requests()} == {"SMLL"}
    assert not b3_replica.api_requests(kind="stock_index")
    land_indices(lake, second)
    assert len({r["indice"] for r in _read(lake, carteiras_key(DAY)).to_pylist()}) == 34


def test_a_bad_portfolio_is_refused_and_named_without_retrying(b3_replica, tmp_path: Path):
    smll = b3_replica.index_portfolio("SMLL")
    rows = list(smll.rows)
    rows[0] = rows[0].__class__(**{**rows[0].__dict__, "part": rows[0].part + Decimal("1")})
    b3_replica.set_index_portfolio(smll.with_rows(rows))
    capture = _capture(b3_replica, LocalLake(tmp_path))
    error = capture.failures["SMLL"]
    assert isinstance(error, B3PayloadError)
    assert "index SMLL" in str(error) and "add up to 101" in str(error)
    assert len([r for r in b3_replica.api_requests() if r.params["index"] == "SMLL"]) == 1
    assert len(capture.portfolios) == 33


def test_another_date_is_refused_and_nothing_is_archived(b3_replica, tmp_path: Path):
    lake = LocalLake(tmp_path)
    capture = _capture(b3_replica, lake, day=date(2025, 3, 6))
    assert not capture.portfolios and capture.membership is None
    assert isinstance(capture.other_date, B3DateMismatchError) and not capture.failures
    assert "no index archived for 2025-03-06" in capture.problems()[0]
    assert len(b3_replica.api_requests()) == 1  # one index asked, then nothing more
    assert land_indices(lake, capture).carteiras is None
    assert lake.list_keys("raw/") == []


def test_the_csv_download_of_any_index_parses_as_that_index(b3_replica):
    smll = b3_replica.index_portfolio("SMLL")
    data = csv_bytes(smll)
    assert data.startswith(b"SMLL - Carteira do Dia 05/03/25")
    portfolio = parse_csv(data, "SMLLDia_05-03-25.csv", datetime.now(UTC))
    assert portfolio.indice == "SMLL" and portfolio.data_carteira == DAY
    assert [c.codigo for c in portfolio.constituents] == [r.cod for r in smll.rows]


def test_real_ibov_2022_levels_parse_exactly():
    url = index_levels_url("https://b3.example", "IBOV", 2022, language="en-us")  # as recorded
    levels = parse_index_levels_json(LEVELS_SAMPLE.read_bytes(), url, "IBOV", 2022,
                                     datetime.now(UTC))
    assert len(levels.closes) == 250 and dict(levels.closes) == sample_closes()
    assert levels.closes[0] == (date(2022, 1, 3), Decimal("103921.59"))
    table = levels.to_landing_table()
    assert str(table.schema.field("fechamento").type) == "decimal128(18, 2)"
    doc = json.loads(LEVELS_SAMPLE.read_bytes())
    doc["min"]["rateValue1"] = "100,000.00"  # B3's month extremes must match its closes
    with pytest.raises(B3PayloadError, match="min of 2022-01"):
        parse_index_levels_json(json.dumps(doc), url, "IBOV", 2022, datetime.now(UTC))
