"""B3's text into a :class:`Portfolio`: the JSON API pages and the downloaded CSV.

B3 writes numbers in pt-BR (``4.394.835.131``, ``0,435``); they are parsed by pattern into
``int`` and ``Decimal`` so a malformed number is an error, never a silent float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from b3_assets.b3.errors import B3PayloadError
from b3_assets.b3.model import Constituent, Portfolio

_BR_INT = re.compile(r"^\d{1,3}(\.\d{3})*$|^\d+$")
_BR_DECIMAL = re.compile(r"^-?(\d{1,3}(\.\d{3})*|\d+)(,\d+)?$")
_B3_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2}|\d{4})$")
_CSV_TITLE_DATE = re.compile(r"Carteira do Dia\s*-?\s*(\d{2}/\d{2}/\d{2,4})")
_FILE_DATE = re.compile(r"IBOVDia_(\d{2})-(\d{2})-(\d{2,4})")

API_RESULT_KEYS = ("cod", "asset", "type", "theoricalQty", "part")
API_HEADER_KEYS = ("date", "theoricalQty", "reductor")
CSV_COLUMNS = ("Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)")


def parse_br_int(text: str, what: str, where: str, code: str = "") -> int:
    """``4.394.835.131`` -> 4394835131; anything else is an error naming the field
    (``code`` prefixes ``what`` in the message: built only when there is an error)."""
    value = (text or "").strip()
    if not _BR_INT.match(value):
        label = f"{code} {what}" if code else what
        raise B3PayloadError(where, f"{label} {text!r} is not a pt-BR integer")
    return int(value.replace(".", ""))


def parse_br_decimal(text: str, what: str, where: str, code: str = "") -> Decimal:
    """``16.163.925,35005373`` -> Decimal('16163925.35005373'), exactly."""
    value = (text or "").strip()
    if not _BR_DECIMAL.match(value):
        label = f"{code} {what}" if code else what
        raise B3PayloadError(where, f"{label} {text!r} is not a pt-BR decimal number")
    return Decimal(value.replace(".", "").replace(",", "."))


def parse_b3_date(text: str, where: str) -> date:
    """B3's ``dd/mm/yy`` (or ``dd/mm/yyyy``) portfolio date."""
    m = _B3_DATE.match((text or "").strip())
    if not m:
        raise B3PayloadError(where, f"portfolio date {text!r} is not dd/mm/yy")
    day, month, year = (int(g) for g in m.groups())
    try:
        return date(year + 2000 if year < 100 else year, month, day)
    except ValueError as exc:
        raise B3PayloadError(where, f"portfolio date {text!r} is not a calendar date") from exc


def collapse_spaces(text: str) -> str:
    """``ON      NM`` -> ``ON NM``: B3 pads ``Tipo`` with runs of spaces."""
    return " ".join((text or "").split())


def date_from_filename(name: str) -> date | None:
    """``IBOVDia_05-03-25.csv`` -> 2025-03-05 (B3's download names carry the date)."""
    m = _FILE_DATE.search(PurePath(name).name)
    if not m:
        return None
    day, month, year = (int(g) for g in m.groups())
    try:
        return date(year + 2000 if year < 100 else year, month, day)
    except ValueError:
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def parse_api_pages(
    pages: Sequence[Mapping[str, Any] | bytes | str], where: str, coletado_em: datetime
) -> Portfolio:
    """Every page of a ``GetPortfolioDay`` answer into one portfolio.

    Pages may be given as decoded dicts or as the raw bytes B3 sent (the raw archive)."""
    decoded: list[Mapping[str, Any]] = []
    for number, page in enumerate(pages, start=1):
        if isinstance(page, bytes | str):
            try:
                page = json.loads(page)
            except (ValueError, UnicodeDecodeError) as exc:
                snippet = page[:80] if isinstance(page, str) else page[:80].decode("latin-1")
                raise B3PayloadError(
                    where, f"page {number} is not JSON ({exc}); it starts with {snippet!r}"
                ) from exc
        if not isinstance(page, Mapping):
            raise B3PayloadError(where, f"page {number} is JSON but not an object")
        decoded.append(page)
    if not decoded:
        raise B3PayloadError(where, "no pages")
    header = decoded[0].get("header")
    if not isinstance(header, Mapping):
        raise B3PayloadError(where, "the JSON has no 'header' object")
    missing = [k for k in API_HEADER_KEYS if k not in header]
    if missing:
        raise B3PayloadError(where, f"header is missing {', '.join(missing)}")
    data_carteira = parse_b3_date(_text(header["date"]), where)
    results: list[Mapping[str, Any]] = []
    for number, page in enumerate(decoded, start=1):
        page_results = page.get("results")
        if not isinstance(page_results, list):
            raise B3PayloadError(where, f"page {number} has no 'results' list", data_carteira)
        results.extend(page_results)
    constituents = []
    for i, row in enumerate(results, start=1):
        # json.loads gives dicts: the exact type check spares the ABC check on every row.
        if type(row) is not dict and not isinstance(row, Mapping):
            raise B3PayloadError(where, f"result {i} is not an object", data_carteira)
        missing = [k for k in API_RESULT_KEYS if k not in row]
        if missing:
            raise B3PayloadError(
                where,
                f"result {i} is missing {', '.join(missing)} (it has {', '.join(sorted(row))})",
                data_carteira,
            )
        codigo = _text(row["cod"]).strip()
        constituents.append(
            Constituent(
                codigo=codigo,
                acao=collapse_spaces(_text(row["asset"])),
                tipo=collapse_spaces(_text(row["type"])),
                qtde_teorica=parse_br_int(_text(row["theoricalQty"]), "quantity", where, codigo),
                participacao_pct=parse_br_decimal(_text(row["part"]), "part", where, codigo),
            )
        )
    part = header.get("part")
    return Portfolio(
        data_carteira=data_carteira,
        constituents=tuple(constituents),
        qtde_teorica_total=parse_br_int(_text(header["theoricalQty"]), "header total", where),
        redutor=parse_br_decimal(_text(header["reductor"]), "header reductor", where),
        participacao_total=parse_br_decimal(_text(part), "header part", where) if part else None,
        coletado_em=coletado_em,
        where=where,
    )


def _decode_csv(data: bytes, where: str) -> str:
    if not data.strip():
        raise B3PayloadError(where, "the CSV is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise B3PayloadError(where, "the file is binary, not B3's CSV")
    return text


def parse_csv(
    data: bytes, where: str, coletado_em: datetime, fallback_date: date | None = None
) -> Portfolio:
    """B3's downloaded ``IBOVDia_DD-MM-YY.csv``: latin-1 or UTF-8, LF or CRLF, with or
    without the title line, trailing ``;``, the two footer rows.

    The date is the title line's, else ``fallback_date`` (from the file name)."""
    lines = [line.strip() for line in _decode_csv(data, where).splitlines()]
    lines = [line for line in lines if line]
    data_carteira: date | None = None
    m = _CSV_TITLE_DATE.search(lines[0]) if lines else None
    if m:
        data_carteira = parse_b3_date(m.group(1), where)
        lines = lines[1:]
    else:
        data_carteira = fallback_date or date_from_filename(where)
    if data_carteira is None:
        raise B3PayloadError(
            where,
            "no portfolio date: no 'Carteira do Dia dd/mm/yy' title line and no "
            "IBOVDia_DD-MM-YY in the file name",
        )
    if not lines:
        raise B3PayloadError(where, "the CSV has no header row", data_carteira)
    header = [c.strip() for c in lines[0].rstrip(";").split(";")]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise B3PayloadError(
            where,
            f"the CSV header lacks {', '.join(missing)} (it has {', '.join(header)})",
            data_carteira,
        )
    idx = {name: header.index(name) for name in CSV_COLUMNS}
    constituents: list[Constituent] = []
    total: int | None = None
    part_total: Decimal | None = None
    redutor: Decimal | None = None
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(";")]
        first = cells[0].casefold()
        if first.startswith("quantidade te"):
            total = parse_br_int(cells[3] if len(cells) > 3 else "", "total quantity", where)
            if len(cells) > 4 and cells[4]:
                part_total = parse_br_decimal(cells[4], "total part", where)
            continue
        if first.startswith("redutor"):
            redutor = parse_br_decimal(cells[3] if len(cells) > 3 else "", "reductor", where)
            continue
        if len(cells) < len(CSV_COLUMNS):
            raise B3PayloadError(where, f"row {line!r} has too few columns", data_carteira)
        codigo = cells[idx["Código"]]
        constituents.append(
            Constituent(
                codigo=codigo,
                acao=collapse_spaces(cells[idx["Ação"]]),
                tipo=collapse_spaces(cells[idx["Tipo"]]),
                qtde_teorica=parse_br_int(cells[idx["Qtde. Teórica"]], "quantity", where, codigo),
                participacao_pct=parse_br_decimal(cells[idx["Part. (%)"]], "part", where, codigo),
            )
        )
    if total is None:
        raise B3PayloadError(where, "the 'Quantidade Teórica Total' row is missing", data_carteira)
    if redutor is None:
        raise B3PayloadError(where, "the 'Redutor' row is missing", data_carteira)
    return Portfolio(
        data_carteira=data_carteira,
        constituents=tuple(constituents),
        qtde_teorica_total=total,
        redutor=redutor,
        participacao_total=part_total,
        coletado_em=coletado_em,
        where=where,
    )
