"""B3's text into a :class:`Portfolio`: the JSON API pages and the downloaded CSV.

B3 writes numbers in pt-BR (``4.394.835.131``, ``0,435``); they are parsed by pattern into
``int`` and ``Decimal`` so a malformed number is an error, never a silent float. What B3 sends
is bounded before it is trusted: at most :data:`MAX_PAYLOAD_BYTES`, the CSV read line by line,
and every error message quotes a clipped excerpt, never the whole input.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from b3_assets.source.errors import B3PayloadError, clip, listing
from b3_assets.source.model import INDICE, Constituent, Portfolio, PortfolioView
from b3_assets.source.sectors import normalize_label
from b3_assets.source.validate import MAX_CONSTITUENTS

#: The IBOV is ~30 KB of JSON or ~5 KB of CSV: a payload over this is not the portfolio, and
#: is refused before it costs memory (the API stops reading; the CSV is refused unparsed).
MAX_PAYLOAD_BYTES = 20 * 1024 * 1024
#: int64 has 19 digits: a longer quantity cannot be stored (and Python refuses to convert
#: numbers of thousands of digits).
MAX_INT_DIGITS = 19
#: Reading stops past this many rows, 10× what validation allows, so an absurd payload costs
#: neither memory nor time; below it, validation names the exact count.
MAX_ROWS = 10 * MAX_CONSTITUENTS
#: The reductor has ~16 significant digits: a longer decimal is not B3's.
MAX_DECIMAL_CHARS = 40

_BR_INT = re.compile(r"^\d{1,3}(\.\d{3})*$|^\d+$")
_BR_DECIMAL = re.compile(r"^-?(\d{1,3}(\.\d{3})*|\d+)(,\d+)?$")
_B3_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2}|\d{4})$")
_CSV_TITLE_DATE = re.compile(r"Carteira do Dia\s*-?\s*(\d{2}/\d{2}/\d{2,4})")
#: ``SMLL - Carteira do Dia 05/03/25``: the index code of a download's title line.
_CSV_TITLE_INDEX = re.compile(r"^\s*([A-Z][A-Z0-9]{2,7})\s*-\s*Carteira do Dia")
#: ``IBOVDia_05-03-25.csv``, ``SMLLDia_05-03-25.csv``: every index's download name.
_FILE_DATE = re.compile(r"([A-Z][A-Z0-9]{2,7})?Dia_(\d{2})-(\d{2})-(\d{2,4})")

API_RESULT_KEYS = ("cod", "asset", "type", "theoricalQty", "part")
API_HEADER_KEYS = ("date", "theoricalQty", "reductor")
#: ``GetTheoricalPortfolio`` / ``GetQuartelyPreview``: the same rows, a header with no date.
PERIOD_HEADER_KEYS = ("theoricalQty", "reductor")
CSV_COLUMNS = ("Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)")


def check_size(size: int, where: str, what: str) -> None:
    """Refuse a payload over :data:`MAX_PAYLOAD_BYTES` (``what``: "answer", "CSV"…)."""
    if size > MAX_PAYLOAD_BYTES:
        raise B3PayloadError(
            where, f"the {what} is {size:,} bytes, over the {MAX_PAYLOAD_BYTES:,}-byte cap: "
            "the IBOV portfolio is a few tens of KB, this is something else")


def parse_br_int(text: str, what: str, where: str, code: str = "") -> int:
    """``4.394.835.131`` -> 4394835131; anything else is an error naming the field
    (``code`` prefixes ``what`` in the message: built only when there is an error)."""
    value = (text or "").strip()
    digits = len(value) - value.count(".")
    if digits > MAX_INT_DIGITS or not _BR_INT.match(value):
        label = f"{code} {what}" if code else what
        why = (f"has {digits:,} digits, more than int64 holds" if digits > MAX_INT_DIGITS
               else "is not a pt-BR integer")
        raise B3PayloadError(where, f"{clip(label)} {clip(repr(text))} {why}")
    return int(value.replace(".", ""))


def parse_br_decimal(text: str, what: str, where: str, code: str = "") -> Decimal:
    """``16.163.925,35005373`` -> Decimal('16163925.35005373'), exactly."""
    value = (text or "").strip()
    if len(value) > MAX_DECIMAL_CHARS or not _BR_DECIMAL.match(value):
        label = f"{code} {what}" if code else what
        raise B3PayloadError(where, f"{clip(label)} {clip(repr(text))} is not a pt-BR decimal "
                             f"number of at most {MAX_DECIMAL_CHARS} characters")
    return Decimal(value.replace(".", "").replace(",", "."))


def parse_b3_date(text: str, where: str) -> date:
    """B3's ``dd/mm/yy`` (or ``dd/mm/yyyy``) portfolio date."""
    m = _B3_DATE.match((text or "").strip())
    if not m:
        raise B3PayloadError(where, f"portfolio date {clip(repr(text))} is not dd/mm/yy")
    day, month, year = (int(g) for g in m.groups())
    try:
        return date(year + 2000 if year < 100 else year, month, day)
    except ValueError as exc:
        raise B3PayloadError(where, f"portfolio date {text!r} is not a calendar date") from exc


def collapse_spaces(text: str) -> str:
    """``ON      NM`` -> ``ON NM``: B3 pads ``Tipo`` with runs of spaces."""
    return " ".join((text or "").split())


def date_from_filename(name: str) -> date | None:
    """``IBOVDia_05-03-25.csv`` (or ``SMLLDia_…``, any index) -> 2025-03-05 (B3's download
    names carry the date)."""
    m = _FILE_DATE.search(PurePath(name).name)
    if not m:
        return None
    day, month, year = (int(g) for g in m.groups()[1:])
    try:
        return date(year + 2000 if year < 100 else year, month, day)
    except ValueError:
        return None


def index_from_filename(name: str) -> str | None:
    """``SMLLDia_05-03-25.csv`` -> ``SMLL``: the index of one of B3's downloads."""
    m = _FILE_DATE.search(PurePath(name).name)
    return m.group(1) if m and m.group(1) else None


def api_request_params(url: str) -> dict[str, Any]:
    """The parameters of one of B3's API URLs (its last path segment is ``base64(json)``);
    empty when the URL carries none."""
    token = url.rsplit("/", 1)[-1].split("?", 1)[0]
    try:
        value = json.loads(base64.b64decode(token + "=" * (-len(token) % 4), validate=False))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _decode_pages(pages: Sequence[Mapping[str, Any] | bytes | str],
                  where: str) -> list[Mapping[str, Any]]:
    raw = [p for p in pages if isinstance(p, bytes | str)]
    check_size(sum(len(p) for p in raw), where, "answer")
    decoded: list[Mapping[str, Any]] = []
    for number, page in enumerate(pages, start=1):
        if isinstance(page, bytes | str):
            try:
                page = json.loads(page)
            except (ValueError, UnicodeDecodeError) as exc:
                snippet = page[:80] if isinstance(page, str) else page[:80].decode("latin-1")
                raise B3PayloadError(
                    where, f"page {number} is not JSON ({clip(str(exc))}); it starts with "
                    f"{snippet!r}") from exc
        if not isinstance(page, Mapping):
            raise B3PayloadError(where, f"page {number} is JSON but not an object")
        decoded.append(page)
    if not decoded:
        raise B3PayloadError(where, "no pages")
    return decoded


def _api_constituent(i: int, row: Any, where: str, data_carteira: date | None) -> Constituent:
    # json.loads gives dicts: the exact type check spares the ABC check on every row.
    if type(row) is not dict and not isinstance(row, Mapping):
        raise B3PayloadError(where, f"result {i} is not an object", data_carteira)
    missing = [k for k in API_RESULT_KEYS if k not in row]
    if missing:
        raise B3PayloadError(
            where, f"result {i} is missing {', '.join(missing)} "
            f"(it has {listing(sorted(str(k) for k in row))})", data_carteira)
    codigo = _text(row["cod"]).strip()
    acum = _text(row.get("partAcum")).strip()
    return Constituent(
        codigo=codigo,
        acao=collapse_spaces(_text(row["asset"])),
        tipo=collapse_spaces(_text(row["type"])),
        qtde_teorica=parse_br_int(_text(row["theoricalQty"]), "quantity", where, codigo),
        participacao_pct=parse_br_decimal(_text(row["part"]), "part", where, codigo),
        setor_b3=normalize_label(_text(row.get("segment"))),
        part_acum=parse_br_decimal(acum, "partAcum", where, codigo) if acum else None,
    )


def _header(decoded: list[Mapping[str, Any]], where: str,
            keys: tuple[str, ...]) -> Mapping[str, Any]:
    header = decoded[0].get("header")
    if not isinstance(header, Mapping):
        raise B3PayloadError(where, "the JSON has no 'header' object")
    missing = [k for k in keys if k not in header]
    if missing:
        raise B3PayloadError(where, f"header is missing {', '.join(missing)}")
    return header


def _results(decoded: list[Mapping[str, Any]], where: str, day: date | None) -> list[Any]:
    results: list[Any] = []
    for number, page in enumerate(decoded, start=1):
        page_results = page.get("results")
        if not isinstance(page_results, list):
            raise B3PayloadError(where, f"page {number} has no 'results' list", day)
        results.extend(page_results)
    _check_rows(len(results), where, day)
    return results


def _is_by_sector(header: Mapping[str, Any], results: list[Any]) -> bool:
    """B3's sector view (``segment`` 2): the header's ``partAcum`` is set (``100,000``) or a
    row has a label; the code view (``segment`` 1) has neither."""
    if _text(header.get("partAcum")).strip():
        return True
    return any(isinstance(r, Mapping) and _text(r.get("segment")).strip() for r in results)


def parse_api_pages(
    pages: Sequence[Mapping[str, Any] | bytes | str], where: str, coletado_em: datetime,
    *, by_sector: bool | None = None, view: PortfolioView = "day",
    data_captura: date | None = None,
) -> Portfolio:
    """Every page of one of B3's portfolio answers into one portfolio: ``GetPortfolioDay``
    (``view`` ``day``, dated by its header), or ``GetTheoricalPortfolio`` /
    ``GetQuartelyPreview`` (``teorica``, ``previa``), whose header has no date:
    ``data_captura``, the trading date of the capture, dates them.

    Pages may be given as decoded dicts or as the raw bytes B3 sent (the raw archive).
    ``by_sector``: whether this is B3's sector view (``segment`` 2, whose sector rules
    validation then applies); None: judged from the answer itself (a period view never is)."""
    decoded = _decode_pages(pages, where)
    dated = view == "day"
    header = _header(decoded, where, API_HEADER_KEYS if dated else PERIOD_HEADER_KEYS)
    if dated:
        data_carteira = parse_b3_date(_text(header["date"]), where)
    elif data_captura is None:
        raise ValueError(f"{view}: B3 puts no date in a period view; give data_captura")
    else:
        data_carteira = data_captura
    results = _results(decoded, where, data_carteira if dated else None)
    part = header.get("part")
    return Portfolio(
        # The index asked for is in the URL (``where``) B3 answered: IBOV unless another.
        indice=str(api_request_params(where).get("index") or INDICE),
        data_carteira=data_carteira,
        constituents=tuple(_api_constituent(i, row, where, data_carteira if dated else None)
                           for i, row in enumerate(results, start=1)),
        qtde_teorica_total=parse_br_int(_text(header["theoricalQty"]), "header total", where),
        redutor=parse_br_decimal(_text(header["reductor"]), "header reductor", where),
        participacao_total=parse_br_decimal(_text(part), "header part", where) if part else None,
        coletado_em=coletado_em,
        where=where,
        by_sector=dated and (_is_by_sector(header, results) if by_sector is None else by_sector),
        view=view,
    )


def _check_rows(rows: int, where: str, data_carteira: date | None) -> None:
    if rows > MAX_ROWS:
        raise B3PayloadError(where, f"more than {MAX_ROWS:,} constituent rows (the biggest B3 "
                             "index has about 240): not an index's portfolio", data_carteira)


def _csv_lines(data: bytes, where: str) -> Iterator[str]:
    """The CSV's non-blank lines, stripped, one at a time (never the whole file as one
    string): UTF-8 (BOM or not) as re-encoded copies are, latin-1 as B3 sends it."""
    refuse_non_csv(data, where)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 (a spreadsheet's "Unicode text")
        data = data.decode("utf-16").encode("utf-8")
    encoding = "utf-8"
    for number, raw in enumerate(io.BytesIO(data), start=1):
        if b"\x00" in raw:
            raise B3PayloadError(where, f"the file is binary, not B3's CSV (NUL on line {number})")
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError:  # not UTF-8: B3's own latin-1, from here to the end
            encoding = "latin-1"
            line = raw.decode(encoding)
        line = line.removeprefix("\ufeff").strip() if number == 1 else line.strip()
        if line:
            yield line


#: Leading bytes of files people mistake for B3's CSV download, and what they are.
_NOT_CSV_MAGIC = {
    b"PAR1": "a Parquet file",
    b"PK\x03\x04": "a ZIP archive (or an .xlsx workbook)",
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) workbook",
    b"\x1f\x8b": "a gzip file",
}


def refuse_non_csv(data: bytes, where: str) -> None:
    """Name what a file is when it is plainly not B3's CSV, instead of a parse error."""
    for magic, what in _NOT_CSV_MAGIC.items():
        if data.startswith(magic):
            raise B3PayloadError(
                where, f"the file is {what}, not B3's CSV download: import-csv takes the "
                "'Download' file of B3's Carteira do Dia page (e.g. IBOVDia_05-03-25.csv)")


def _title_date(first_line: str, where: str) -> date | None:
    m = _CSV_TITLE_DATE.search(first_line)
    return parse_b3_date(m.group(1), where) if m else None


def _csv_header(line: str | None, where: str, data_carteira: date) -> dict[str, int]:
    """Column name -> index, from the CSV's header row."""
    if line is None:
        raise B3PayloadError(where, "the CSV has no header row", data_carteira)
    header = [c.strip() for c in line.rstrip(";").split(";")]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise B3PayloadError(
            where, f"the CSV header lacks {', '.join(missing)} (it has {listing(header)})",
            data_carteira)
    return {name: header.index(name) for name in CSV_COLUMNS}


def parse_csv(
    data: bytes, where: str, coletado_em: datetime, fallback_date: date | None = None
) -> Portfolio:
    """B3's downloaded ``IBOVDia_DD-MM-YY.csv``: latin-1 or UTF-8, LF or CRLF, with or
    without the title line, trailing ``;``, the two footer rows.

    The date is the title line's, else ``fallback_date`` (from the file name). Read line by
    line, so memory stays near the file's size; files over the cap are refused unread."""
    check_size(len(data), where, "CSV")
    lines = _csv_lines(data, where)
    first = next(lines, None)
    if first is None:
        raise B3PayloadError(where, "the CSV is empty")
    data_carteira = _title_date(first, where)
    title_index = _CSV_TITLE_INDEX.match(first)
    indice = (title_index.group(1) if title_index else None) or index_from_filename(where)
    header_line = next(lines, None) if data_carteira else first
    data_carteira = data_carteira or fallback_date or date_from_filename(where)
    if data_carteira is None:
        raise B3PayloadError(
            where,
            "no portfolio date: no 'Carteira do Dia dd/mm/yy' title line and no "
            "IBOVDia_DD-MM-YY in the file name",
        )
    idx = _csv_header(header_line, where, data_carteira)
    constituents: list[Constituent] = []
    total: int | None = None
    part_total: Decimal | None = None
    redutor: Decimal | None = None
    for line in lines:
        cells = [c.strip() for c in line.split(";")]
        first_cell = cells[0].casefold()
        if first_cell.startswith("quantidade te"):
            total = parse_br_int(cells[3] if len(cells) > 3 else "", "total quantity", where)
            if len(cells) > 4 and cells[4]:
                part_total = parse_br_decimal(cells[4], "total part", where)
        elif first_cell.startswith("redutor"):
            redutor = parse_br_decimal(cells[3] if len(cells) > 3 else "", "reductor", where)
        elif len(cells) < len(CSV_COLUMNS):
            raise B3PayloadError(where, f"row {clip(repr(line))} has too few columns",
                                 data_carteira)
        else:
            constituents.append(_csv_constituent(cells, idx, where))
            _check_rows(len(constituents), where, data_carteira)
    if total is None:
        raise B3PayloadError(where, "the 'Quantidade Teórica Total' row is missing", data_carteira)
    if redutor is None:
        raise B3PayloadError(where, "the 'Redutor' row is missing", data_carteira)
    return Portfolio(
        indice=indice or INDICE,
        data_carteira=data_carteira,
        constituents=tuple(constituents),
        qtde_teorica_total=total,
        redutor=redutor,
        participacao_total=part_total,
        coletado_em=coletado_em,
        where=where,
    )


def _csv_constituent(cells: list[str], idx: dict[str, int], where: str) -> Constituent:
    codigo = cells[idx["Código"]]
    return Constituent(
        codigo=codigo,
        acao=collapse_spaces(cells[idx["Ação"]]),
        tipo=collapse_spaces(cells[idx["Tipo"]]),
        qtde_teorica=parse_br_int(cells[idx["Qtde. Teórica"]], "quantity", where, codigo),
        participacao_pct=parse_br_decimal(cells[idx["Part. (%)"]], "part", where, codigo),
    )
