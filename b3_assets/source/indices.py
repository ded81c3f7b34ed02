"""Every B3 index, not only IBOV (docs/contracts.md "Every B3 index" and "Index levels").

B3 serves every index through the endpoints IBOV uses, with ``index`` = its code, so this module
adds only what is new: ``GetStockIndex`` (which indices exist today and who is in each: the
list of indices to collect, so a new index needs no code change), the fetch of one index's
portfolio in B3's sector view with the fall-back to the code view for indices B3 has no sector
view of, a pool that fetches many indices with at most :data:`MAX_IN_FLIGHT` requests at once
(each index failing on its own), and one year of an index's daily closes.

No Dagster here, and no float: quantities are ``int``, weights and closes ``Decimal``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pyarrow as pa

from b3_assets.source.api import fetch_api
from b3_assets.source.errors import B3Error, B3PayloadError, clip, listing
from b3_assets.source.model import LANDING_SCHEMA, Portfolio
from b3_assets.source.parse import (
    api_request_params,
    collapse_spaces,
    parse_br_decimal,
)
from b3_assets.source.payload import RawPayload

#: B3 is a public site: never more than this many requests of one capture at once.
MAX_IN_FLIGHT = 4
#: An index code as B3 writes it in ``GetStockIndex`` (IBOV, IBXX, SMLL, ICO2, IBEP…).
INDEX_CODE = re.compile(r"^[A-Z][A-Z0-9]{2,7}$")

#: ``landing/indices/dt=D/composicao.parquet`` (docs/contracts.md): GetStockIndex as served on D.
COMPOSICAO_SCHEMA = pa.schema([
    pa.field("data_captura", pa.date32(), nullable=False),
    pa.field("codigo", pa.string(), nullable=False),
    pa.field("empresa", pa.string(), nullable=False),
    pa.field("tipo", pa.string(), nullable=False),
    pa.field("indice", pa.string(), nullable=False),
])

#: ``landing/index_levels/indice=CODE/ano=YYYY.parquet`` (docs/contracts.md "Index levels").
LEVELS_SCHEMA = pa.schema([
    pa.field("indice", pa.string(), nullable=False),
    pa.field("data", pa.date32(), nullable=False),
    pa.field("fechamento", pa.decimal128(18, 2), nullable=False),
])
LEVEL_QUANTUM = Decimal("0.01")


# --- GetStockIndex: which indices exist, and who is in each -----------------------------------

@dataclass(frozen=True)
class Member:
    """One ticker of ``GetStockIndex``: its company, type, and the indices it is in."""

    codigo: str
    empresa: str
    tipo: str
    indices: tuple[str, ...]


@dataclass(frozen=True)
class IndexMembership:
    """``GetStockIndex`` as captured on the trading date ``data_captura``."""

    data_captura: date
    members: tuple[Member, ...]
    #: B3's ``header.update`` (the day its list was last updated), when it sent one.
    atualizado_em: date | None
    where: str

    @property
    def indices(self) -> list[str]:
        """Every index B3 lists today, sorted: the indices to collect."""
        return sorted({i for m in self.members for i in m.indices})

    def members_of(self, index: str) -> list[str]:
        return sorted(m.codigo for m in self.members if index in m.indices)

    def to_landing_table(self) -> pa.Table:
        """One row per (ticker, index), sorted by (indice, codigo)."""
        rows = sorted(((i, m) for m in self.members for i in m.indices),
                      key=lambda r: (r[0], r[1].codigo))
        return pa.Table.from_pydict({
            "data_captura": [self.data_captura] * len(rows),
            "codigo": [m.codigo for _, m in rows],
            "empresa": [m.empresa for _, m in rows],
            "tipo": [m.tipo for _, m in rows],
            "indice": [i for i, _ in rows],
        }, schema=COMPOSICAO_SCHEMA)


def _pages(payload: RawPayload) -> list[Mapping[str, Any]]:
    """The payload's JSON pages, decoded (the fetcher's copies when it kept them)."""
    if payload.decoded_pages is not None:
        return list(payload.decoded_pages)
    docs = []
    for name, data in payload.files:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise B3PayloadError(payload.url, f"{name} is not JSON ({clip(str(exc))})") from exc
        if not isinstance(doc, Mapping):
            raise B3PayloadError(payload.url, f"{name} is JSON but not an object")
        docs.append(doc)
    return docs


def parse_membership(payload: RawPayload, data_captura: date) -> IndexMembership:
    """The validated ``GetStockIndex`` answer of ``payload``, as captured on ``data_captura``:
    at least one ticker, each once, each in at least one index, index codes as B3 writes them.
    Else :class:`B3PayloadError` naming every problem."""
    where = payload.url
    members: list[Member] = []
    header: Any = None
    for number, doc in enumerate(_pages(payload), start=1):
        header = header if header is not None else doc.get("header")
        results = doc.get("results")
        if not isinstance(results, list):
            raise B3PayloadError(where, f"page {number} has no 'results' list")
        for i, row in enumerate(results, start=1):
            if not isinstance(row, Mapping) or not isinstance(row.get("code"), str):
                raise B3PayloadError(where, f"result {i} of page {number} has no 'code'")
            indices = tuple(sorted({c.strip() for c in str(row.get("indexes") or "").split(",")
                                    if c.strip()}))
            members.append(Member(row["code"].strip(), collapse_spaces(str(row.get("company")
                                                                            or "")),
                                  collapse_spaces(str(row.get("spotlight") or "")), indices))
    problems = []
    if not members:
        problems.append("no tickers at all")
    seen: dict[str, int] = {}
    for m in members:
        seen[m.codigo] = seen.get(m.codigo, 0) + 1
    dupes = sorted(c for c, n in seen.items() if n > 1)
    if dupes:
        problems.append(f"tickers listed twice: {listing(dupes)}")
    bad_codes = sorted({i for m in members for i in m.indices if not INDEX_CODE.match(i)})
    if bad_codes:
        problems.append(f"index codes B3 does not write: {listing(map(repr, bad_codes))}")
    if problems:
        raise B3PayloadError(where, "GetStockIndex: " + "; ".join(problems))
    update = header.get("update") if isinstance(header, Mapping) else None
    try:
        atualizado_em = date.fromisoformat(str(update)[:10]) if update else None
    except ValueError:
        atualizado_em = None
    return IndexMembership(data_captura, tuple(m for m in members if m.indices), atualizado_em,
                           where)


# --- one index's portfolio ------------------------------------------------------------------

def has_sector_view(payload: RawPayload) -> bool:
    """B3 labelled the rows (``segment`` 2 answered with "Setor / Subsetor"): an equity index.
    B3 answers the sector view of other indices (real-estate funds, BDRs) with no labels."""
    return any(isinstance(row, Mapping) and str(row.get("segment") or "").strip()
               for doc in _pages(payload) for row in (doc.get("results") or []))


def fetch_index_portfolio(base_url: str, index: str, **options: Any) -> RawPayload:
    """Today's portfolio of ``index`` as B3 sent it: the sector view (``segment`` 2, with
    sector labels) for an equity index; for an index B3 has no sector view of, the code view
    (``segment`` 1), whose landing rows have null sectors. ``options``: :func:`fetch_api`'s."""
    payload = fetch_api(base_url, index=index, segment="2", **options)
    if has_sector_view(payload):
        return payload
    return fetch_api(base_url, index=index, segment="1", **options)


def landing_rows(portfolios: Iterable[Portfolio]) -> pa.Table:
    """Every index's landing rows in one table, sorted by (``indice``, ``codigo``)."""
    tables = [p.to_landing_table() for p in sorted(portfolios, key=lambda p: p.indice)]
    return pa.concat_tables(tables) if tables else LANDING_SCHEMA.empty_table()


# --- many at once ---------------------------------------------------------------------------

T = TypeVar("T")


def run_pooled(keys: Sequence[str], work: Callable[[str], T],
               workers: int = MAX_IN_FLIGHT) -> dict[str, T | B3Error]:
    """``work(key)`` for every key on at most ``workers`` threads (so at most that many
    requests in flight, each fetch being sequential): each key's result or its B3 error, so
    one failing key never stops the others. Anything else (a bug) is raised."""
    def one(key: str) -> T | B3Error:
        try:
            return work(key)
        except B3Error as exc:
            return exc

    if not keys:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys))),
                            thread_name_prefix="b3-index") as pool:
        return dict(zip(keys, pool.map(one, keys), strict=True))


# --- index levels: one year of daily closes -------------------------------------------------

@dataclass(frozen=True)
class IndexLevels:
    """One year of an index's daily closes as B3 served them (empty: B3 serves nothing for
    that year, e.g. before the index existed)."""

    indice: str
    ano: int
    closes: tuple[tuple[date, Decimal], ...]
    coletado_em: datetime
    where: str

    def to_landing_table(self) -> pa.Table:
        """One row per session, sorted by ``data``: :data:`LEVELS_SCHEMA`."""
        rows = sorted(self.closes)
        return pa.Table.from_pydict({
            "indice": [self.indice] * len(rows),
            "data": [d for d, _ in rows],
            "fechamento": [v.quantize(LEVEL_QUANTUM) for _, v in rows],
        }, schema=LEVELS_SCHEMA)


def _us_to_br(text: str) -> str:
    """``113,228.31`` (en-us, the recorded sample) -> ``113.228,31``."""
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def _level(text: Any, language: str, what: str, where: str) -> Decimal:
    value = str(text).strip()
    return parse_br_decimal(_us_to_br(value) if language == "en-us" else value, what, where)


def parse_index_levels(payload: RawPayload, index: str, year: int) -> IndexLevels:
    """The validated closes of ``index`` in ``year``: ``results[]`` holds one row per day of
    the month with ``rateValue1``..``rateValue12`` (month 1..12, null: no session); each
    close must be positive with at most 2 decimals, fall on a real date, and B3's ``min`` and
    ``max`` rows (when sent) must be each month's extremes, so a shuffled or truncated answer
    is refused. Numbers are read in the answer's language (pt-br as asked; en-us samples)."""
    where = payload.url
    language = str(api_request_params(where).get("language") or "pt-br").lower()
    closes: dict[date, Decimal] = {}
    problems: list[str] = []
    docs = _pages(payload)
    for doc in docs:
        results = doc.get("results")
        if results is None:
            continue
        if not isinstance(results, list):
            raise B3PayloadError(where, f"{index} {year}: 'results' is not a list")
        for row in results:
            if not isinstance(row, Mapping) or not isinstance(row.get("day"), int):
                raise B3PayloadError(where, f"{index} {year}: a result has no integer 'day'")
            day = row["day"]
            for month in range(1, 13):
                text = row.get(f"rateValue{month}")
                if text is None or not str(text).strip():
                    continue
                try:
                    when = date(year, month, day)
                except ValueError:
                    problems.append(f"a close on {day:02d}/{month:02d}/{year}, not a date")
                    continue
                value = _level(text, language, f"close of {when.isoformat()}", where)
                if value <= 0 or value != value.quantize(LEVEL_QUANTUM):
                    problems.append(f"close of {when.isoformat()} is {value}: not a positive "
                                    "number of at most 2 decimals")
                closes[when] = value
    for doc in docs[:1]:
        for kind, pick in (("min", min), ("max", max)):
            extremes = doc.get(kind)
            if not isinstance(extremes, Mapping):
                continue
            for month in range(1, 13):
                text = extremes.get(f"rateValue{month}")
                values = [v for d, v in closes.items() if d.month == month]
                if text is None or not values:
                    continue
                stated = _level(text, language, f"{kind} of month {month}", where)
                if stated != pick(values):
                    problems.append(f"B3's {kind} of {year}-{month:02d} is {stated} but the "
                                    f"closes' {kind} is {pick(values)}")
    if problems:
        raise B3PayloadError(where, f"index levels of {index} in {year}: " + "; ".join(problems))
    return IndexLevels(index, year, tuple(sorted(closes.items())), payload.fetched_at, where)


def parse_index_levels_json(body: bytes | str, where: str, index: str, year: int,
                            fetched_at: datetime) -> IndexLevels:
    """:func:`parse_index_levels` of one answer's bytes (a recorded sample, a test)."""
    data = body.encode() if isinstance(body, str) else body
    return parse_index_levels(RawPayload("api", where, fetched_at, (("page-001.json", data),)),
                              index, year)
