"""Every B3 index the replica serves: ``GetStockIndex`` (B3's real answer of 2025-04-07, 34
indices, with IBOV's members made those of the IBOV portfolio served), a synthetic but
realistic portfolio of each index (its members from that answer, B3's pt-BR numbers, weights
adding up to exactly 100, quantities to the header's total, sector labels for equity indices
only), and each index's daily closes by year (``indexStatisticsProxy``, the shape of B3's real
IBOV 2022 answer, which is served as is for IBOV 2022)."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from b3_assets_tests.replica.portfolios import (
    FALLBACK_SECTOR,
    PART_Q,
    REDUTOR_Q,
    SECTORS,
    ReplicaPortfolio,
    Row,
    fmt_dec,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "b3" / "api_json"
STOCK_INDEX_SAMPLE = FIXTURES / "GetStockIndex_2025-04-07.json"
LEVELS_SAMPLE = FIXTURES / "GetPortfolioDay_IndexStatistics_IBOV_2022_en-us_2025-04-07.json"
#: Indices of real-estate funds and BDRs: B3 has no sector view of them (their segment-2
#: answer carries no labels), so clients must ask the code view.
NO_SECTOR_VIEW = frozenset({"IFIX", "IFIL", "BDRX"})
#: The first year the replica serves each index's closes (earlier years: every value null).
FIRST_LEVELS_YEAR = {"IBOV": 1998}
DEFAULT_FIRST_LEVELS_YEAR = 2008


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


@cache
def sample_stock_index() -> dict[str, Any]:
    """B3's recorded ``GetStockIndex`` answer (537 tickers, 34 indices)."""
    return json.loads(STOCK_INDEX_SAMPLE.read_text(encoding="utf-8"))


def stock_index_rows(ibov: ReplicaPortfolio | None = None) -> list[dict[str, Any]]:
    """The ``results`` of GetStockIndex; with ``ibov``, IBOV's members are that portfolio's
    (so the membership agrees with the IBOV portfolio the replica serves)."""
    rows = [dict(r) for r in sample_stock_index()["results"]]
    if ibov is None:
        return rows
    members = {r.cod: r for r in ibov.rows}
    seen = set()
    for row in rows:
        codes = [c for c in row["indexes"].split(",") if c and c != "IBOV"]
        if row["code"] in members:
            codes.append("IBOV")
            seen.add(row["code"])
        row["indexes"] = ",".join(sorted(codes))
    for code, r in sorted(members.items()):
        if code not in seen:
            rows.append({"company": r.asset, "spotlight": r.type, "code": code,
                         "indexes": "IBOV"})
    return sorted((r for r in rows if r["indexes"]), key=lambda r: (r["company"], r["code"]))


def stock_index_doc(rows: list[dict[str, Any]], page_number: int, page_size: int,
                    update: date) -> dict[str, Any]:
    """One GetStockIndex answer, shaped like B3's (header: update date and period)."""
    size = max(1, page_size)
    start = (max(1, page_number) - 1) * size
    return {
        "page": {"pageNumber": max(1, page_number), "pageSize": size,
                 "totalRecords": len(rows), "totalPages": -(-len(rows) // size)},
        "header": {"update": update.isoformat(), "startMonth": (update.month - 1) // 4 * 4 + 1,
                   "endMonth": (update.month - 1) // 4 * 4 + 4, "year": update.year},
        "results": rows[start:start + size],
    }


def members_of(rows: list[dict[str, Any]], index: str) -> list[dict[str, Any]]:
    return [r for r in rows if index in r["indexes"].split(",")]


def generate_index_portfolio(index: str, d: date, rows: list[dict[str, Any]]
                             ) -> ReplicaPortfolio:
    """A deterministic, valid-by-construction portfolio of ``index`` on ``d``: its members
    from GetStockIndex, weights adding up to exactly 100.000 (none below 0.001), the header
    total the sum of the quantities, sector labels for equity indices."""
    rng = random.Random(_seed(index, d.isoformat()))
    members = sorted(members_of(rows, index), key=lambda r: (r["company"], r["code"]))
    qtys = [rng.randint(1_000_000, 2_000_000_000) for _ in members]
    prices = [Decimal(rng.randint(150, 9_000)) / 100 for _ in members]
    values = [Decimal(q) * p for q, p in zip(qtys, prices, strict=True)]
    market = sum(values, Decimal(0)) or Decimal(1)
    parts = [max((v * 100 / market).quantize(PART_Q, ROUND_HALF_EVEN), PART_Q) for v in values]
    if parts:
        biggest = max(range(len(parts)), key=parts.__getitem__)
        parts[biggest] += Decimal("100.000") - sum(parts, Decimal(0))
    sector = index not in NO_SECTOR_VIEW
    out = [Row(m["code"], m["company"], m["spotlight"], q, part,
               SECTORS.get(m["code"][:4], FALLBACK_SECTOR) if sector else FALLBACK_SECTOR)
           for m, q, part in zip(members, qtys, parts, strict=True)]
    level = Decimal(rng.randint(1_000, 140_000))
    return ReplicaPortfolio(
        data_carteira=d, rows=tuple(out), total_qty=sum(qtys),
        redutor=(market / level).quantize(REDUTOR_Q, ROUND_HALF_EVEN),
        origin=f"generated:{index}", indice=index)


def as_index(portfolio: ReplicaPortfolio, index: str) -> ReplicaPortfolio:
    return portfolio if portfolio.indice == index else replace(portfolio, indice=index)


# --- index levels ----------------------------------------------------------------------------

def first_levels_year(index: str) -> int:
    return FIRST_LEVELS_YEAR.get(index, DEFAULT_FIRST_LEVELS_YEAR)


@cache
def _calendar():
    import exchange_calendars as xcals

    return xcals.get_calendar("BVMF", start="1990-01-01")


def sessions_of(year: int, before: date) -> list[date]:
    """BVMF sessions of ``year`` strictly before ``before`` (a close exists once the session
    has ended: the date B3 is on has none yet)."""
    end = min(date(year, 12, 31), date.fromordinal(before.toordinal() - 1))
    if end < date(year, 1, 1):
        return []
    return [ts.date() for ts in _calendar().sessions_in_range(date(year, 1, 1), end)]


def generated_levels(index: str, year: int, today: date) -> dict[date, Decimal]:
    """Deterministic closes of ``index`` for each session of ``year`` before ``today``: a
    random walk from a level that depends on the index and the year."""
    if year < first_levels_year(index):
        return {}
    rng = random.Random(_seed("levels", index, year))
    level = Decimal(rng.randint(1_000_00, 150_000_00)) / 100
    closes = {}
    for day in sessions_of(year, today):
        level = max(Decimal("1.00"), (level * Decimal(1 + rng.uniform(-0.02, 0.02)))
                    .quantize(Decimal("0.01"), ROUND_HALF_EVEN))
        closes[day] = level
    return closes


@cache
def sample_levels() -> dict[str, Any]:
    return json.loads(LEVELS_SAMPLE.read_text(encoding="utf-8"))


def sample_closes() -> dict[date, Decimal]:
    """B3's real IBOV 2022 closes (from the en-us sample)."""
    closes = {}
    for row in sample_levels()["results"]:
        for month in range(1, 13):
            text = row.get(f"rateValue{month}")
            if text:
                closes[date(2022, month, row["day"])] = Decimal(text.replace(",", ""))
    return closes


def levels_for(index: str, year: int, today: date) -> dict[date, Decimal]:
    """What the replica serves: the real sample for IBOV 2022, else generated closes."""
    if index == "IBOV" and year == 2022:
        return sample_closes()
    return generated_levels(index, year, today)


def levels_doc(closes: dict[date, Decimal], language: str = "pt-br") -> dict[str, Any]:
    """One ``indexStatisticsProxy/IndexCall/GetPortfolioDay`` answer, shaped like B3's: 31
    rows (``day`` 1..31) of ``rateValue1``..``rateValue12``, and the months' min and max."""
    def text(value: Decimal | None) -> str | None:
        return None if value is None else fmt_dec(value, 2, language)

    def extreme(pick: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"day": 0}
        for month in range(1, 13):
            values = [v for d, v in closes.items() if d.month == month]
            row[f"rateValue{month}"] = text(pick(values)) if values else None
        return row

    results = []
    for day in range(1, 32):
        row: dict[str, Any] = {"day": day}
        for month in range(1, 13):
            found = [v for d, v in closes.items() if d.month == month and d.day == day]
            row[f"rateValue{month}"] = text(found[0]) if found else None
        results.append(row)
    return {"min": extreme(min), "max": extreme(max), "results": results}
