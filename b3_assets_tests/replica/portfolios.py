"""The portfolios the replica serves: the real B3 samples when they are beside the checkout,
else generated ones, and their rendering as B3 renders them (JSON pages, CSV, pt-BR/US numbers).

Rows keep B3's raw text (``ON      NM`` with its runs of spaces, company-name order) so what the
replica serves looks like what B3 sends, not like what the parser makes of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from b3_assets.b3.model import Constituent
from b3_assets.b3.parse import collapse_spaces, parse_csv

PART_Q = Decimal("0.001")
REDUTOR_Q = Decimal("0.00000001")
DEFAULT_DATE = date(2025, 3, 5)


@dataclass(frozen=True)
class Row:
    """One constituent as B3 writes it: raw names and types, exact numbers."""

    cod: str
    asset: str
    type: str
    qty: int
    part: Decimal
    sector: str = "Outros"


@dataclass(frozen=True)
class ReplicaPortfolio:
    """What the replica serves for one portfolio date.

    ``csv_bytes`` is the byte-exact B3 download when the portfolio came from a real sample."""

    data_carteira: date
    rows: tuple[Row, ...]
    total_qty: int
    redutor: Decimal
    part_total: Decimal = Decimal("100.000")
    origin: str = "generated"
    csv_bytes: bytes | None = None

    def constituents(self) -> tuple[Constituent, ...]:
        """The rows as the project's parser should read them back (for assertions)."""
        return tuple(
            Constituent(r.cod, collapse_spaces(r.asset), collapse_spaces(r.type), r.qty, r.part)
            for r in self.rows
        )

    def with_date(self, other: date) -> ReplicaPortfolio:
        """The same constituents under another date (the 'different date' fault)."""
        return replace(self, data_carteira=other, csv_bytes=None, origin=f"{self.origin}+date")

    def with_rows(self, rows: list[Row] | tuple[Row, ...], **changes: Any) -> ReplicaPortfolio:
        """Other rows with the header left as is unless given: to build broken portfolios."""
        return replace(self, rows=tuple(rows), csv_bytes=None, **changes)


# --- number formats -----------------------------------------------------------------------

def fmt_int(n: int, language: str = "pt-br") -> str:
    """``4394835131`` -> ``4.394.835.131`` (pt-br) or ``4,394,835,131`` (en-us)."""
    text = f"{n:,}"
    return text if language == "en-us" else text.replace(",", ".")


def fmt_dec(d: Decimal, places: int, language: str = "pt-br") -> str:
    """``Decimal('0.435')`` -> ``0,435``; grouping like B3 (``16.163.925,35005373``)."""
    text = format(d.quantize(Decimal(1).scaleb(-places)), f",.{places}f")
    if language == "en-us":
        return text
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def fmt_date(d: date) -> str:
    """B3's header date, ``dd/mm/yy``."""
    return d.strftime("%d/%m/%y")


# --- samples ------------------------------------------------------------------------------

def _sample_path(samples_dir: Path, d: date) -> Path | None:
    name = f"IBOVDia_{d:%d-%m-%y}"
    for folder in ("csv_original", "csv_utf8_no_title"):
        for path in sorted((samples_dir / folder).glob(f"{name}*.csv")):
            return path
    return None


def sample_dates(samples_dir: Path | None) -> list[date]:
    """Every date a real sample exists for (empty when the samples are absent)."""
    if samples_dir is None or not samples_dir.is_dir():
        return []
    found: set[date] = set()
    for path in samples_dir.glob("csv_*/IBOVDia_*.csv"):
        dd, mm, yy = path.stem.split("_")[1].split("-")[:3]
        found.add(date(2000 + int(yy[:2]), int(mm), int(dd)))
    return sorted(found)


def load_sample(path: Path) -> ReplicaPortfolio:
    """A real B3 CSV through the project's ``parse_csv`` (numbers, date), keeping the raw
    names and types of the same lines (``parse_csv`` collapses their spaces)."""
    data = path.read_bytes()
    parsed = parse_csv(data, str(path), datetime.now(UTC))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    raw = {}
    for line in text.splitlines():
        cells = line.split(";")
        if len(cells) >= 5:
            raw[cells[0].strip()] = (cells[1].strip(), cells[2].strip())
    rows = []
    for c in parsed.constituents:
        asset, type_ = raw.get(c.codigo, (c.acao, c.tipo))
        rows.append(Row(c.codigo, asset, type_, c.qtde_teorica, c.participacao_pct,
                        SECTORS.get(c.codigo[:4], "Outros")))
    is_original = path.parent.name == "csv_original"
    return ReplicaPortfolio(
        data_carteira=parsed.data_carteira,
        rows=tuple(rows),
        total_qty=parsed.qtde_teorica_total,
        redutor=parsed.redutor,
        part_total=parsed.participacao_total or Decimal("100.000"),
        origin=f"sample:{path.parent.name}/{path.name}",
        csv_bytes=data if is_original else None,
    )


def portfolio_for(d: date, samples_dir: Path | None = None) -> ReplicaPortfolio:
    """The real sample of ``d`` when there is one, else a generated portfolio for ``d``."""
    if samples_dir is not None and samples_dir.is_dir():
        path = _sample_path(samples_dir, d)
        if path is not None:
            return load_sample(path)
    return generate_portfolio(d)


# --- generator ----------------------------------------------------------------------------

# (code, company, type as B3 pads it, sector): real IBOV members of 2023-2026.
UNIVERSE: tuple[tuple[str, str, str, str], ...] = (
    ("ALOS3", "ALLOS", "ON      NM", "Financeiro"),
    ("ABEV3", "AMBEV S/A", "ON", "Consumo não Cíclico"),
    ("ASAI3", "ASSAI", "ON      NM", "Consumo não Cíclico"),
    ("AURE3", "AUREN", "ON      NM", "Utilidade Pública"),
    ("AZUL4", "AZUL", "PN      N2", "Bens Industriais"),
    ("AZZA3", "AZZAS 2154", "ON      NM", "Consumo Cíclico"),
    ("B3SA3", "B3", "ON      NM", "Financeiro"),
    ("BBSE3", "BBSEGURIDADE", "ON      NM", "Financeiro"),
    ("BBDC3", "BRADESCO", "ON      N1", "Financeiro"),
    ("BBDC4", "BRADESCO", "PN      N1", "Financeiro"),
    ("BRAP4", "BRADESPAR", "PN      N1", "Materiais Básicos"),
    ("BBAS3", "BRASIL", "ON      NM", "Financeiro"),
    ("BRKM5", "BRASKEM", "PNA     N1", "Materiais Básicos"),
    ("BRAV3", "BRAVA", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("BRFS3", "BRF SA", "ON      NM", "Consumo não Cíclico"),
    ("BPAC11", "BTGP BANCO", "UNT", "Financeiro"),
    ("CXSE3", "CAIXA SEGURI", "ON      NM", "Financeiro"),
    ("CRFB3", "CARREFOUR BR", "ON      NM", "Consumo não Cíclico"),
    ("CCRO3", "CCR SA", "ON      NM", "Bens Industriais"),
    ("CMIG4", "CEMIG", "PN      N1", "Utilidade Pública"),
    ("COGN3", "COGNA ON", "ON      NM", "Consumo Cíclico"),
    ("CPLE6", "COPEL", "PNB     N2", "Utilidade Pública"),
    ("CSAN3", "COSAN", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("CPFE3", "CPFL ENERGIA", "ON      NM", "Utilidade Pública"),
    ("CMIN3", "CSNMINERACAO", "ON      N2", "Materiais Básicos"),
    ("CVCB3", "CVC BRASIL", "ON      NM", "Consumo Cíclico"),
    ("CYRE3", "CYRELA REALT", "ON      NM", "Consumo Cíclico"),
    ("DIRR3", "DIRECIONAL", "ON      NM", "Consumo Cíclico"),
    ("ELET3", "ELETROBRAS", "ON      N1", "Utilidade Pública"),
    ("ELET6", "ELETROBRAS", "PNB     N1", "Utilidade Pública"),
    ("EMBR3", "EMBRAER", "ON      NM", "Bens Industriais"),
    ("ENGI11", "ENERGISA", "UNT     N2", "Utilidade Pública"),
    ("ENEV3", "ENEVA", "ON      NM", "Utilidade Pública"),
    ("EGIE3", "ENGIE BRASIL", "ON      NM", "Utilidade Pública"),
    ("EQTL3", "EQUATORIAL", "ON      NM", "Utilidade Pública"),
    ("FLRY3", "FLEURY", "ON      NM", "Saúde"),
    ("GGBR4", "GERDAU", "PN      N1", "Materiais Básicos"),
    ("GOAU4", "GERDAU MET", "PN      N1", "Materiais Básicos"),
    ("NTCO3", "GRUPO NATURA", "ON      NM", "Consumo não Cíclico"),
    ("HAPV3", "HAPVIDA", "ON      NM", "Saúde"),
    ("HYPE3", "HYPERA", "ON      NM", "Saúde"),
    ("IGTI11", "IGUATEMI S.A", "UNT     N1", "Financeiro"),
    ("IRBR3", "IRBBRASIL RE", "ON      NM", "Financeiro"),
    ("ISAE4", "ISA ENERGIA", "PN      N1", "Utilidade Pública"),
    ("ITSA4", "ITAUSA", "PN      N1", "Financeiro"),
    ("ITUB4", "ITAUUNIBANCO", "PN      N1", "Financeiro"),
    ("JBSS3", "JBS", "ON      NM", "Consumo não Cíclico"),
    ("KLBN11", "KLABIN S/A", "UNT     N2", "Materiais Básicos"),
    ("RENT3", "LOCALIZA", "ON      NM", "Consumo Cíclico"),
    ("LREN3", "LOJAS RENNER", "ON      NM", "Consumo Cíclico"),
    ("LWSA3", "LWSA", "ON      NM", "Tecnologia da Informação"),
    ("MGLU3", "MAGAZ LUIZA", "ON      NM", "Consumo Cíclico"),
    ("POMO4", "MARCOPOLO", "PN      N2", "Bens Industriais"),
    ("MRFG3", "MARFRIG", "ON      NM", "Consumo não Cíclico"),
    ("BEEF3", "MINERVA", "ON      NM", "Consumo não Cíclico"),
    ("MOTV3", "MOTIVA SA", "ON      NM", "Bens Industriais"),
    ("MRVE3", "MRV", "ON      NM", "Consumo Cíclico"),
    ("MULT3", "MULTIPLAN", "ON      N2", "Financeiro"),
    ("PCAR3", "P.ACUCAR-CBD", "ON      NM", "Consumo não Cíclico"),
    ("PETR3", "PETROBRAS", "ON      N2", "Petróleo, Gás e Biocombustíveis"),
    ("PETR4", "PETROBRAS", "PN      N2", "Petróleo, Gás e Biocombustíveis"),
    ("RECV3", "PETRORECSA", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("PRIO3", "PETRORIO", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("PETZ3", "PETZ", "ON      NM", "Consumo Cíclico"),
    ("PSSA3", "PORTO SEGURO", "ON      NM", "Financeiro"),
    ("RADL3", "RAIADROGASIL", "ON      NM", "Saúde"),
    ("RAIZ4", "RAIZEN", "PN      N2", "Petróleo, Gás e Biocombustíveis"),
    ("RDOR3", "REDE D OR", "ON      NM", "Saúde"),
    ("RAIL3", "RUMO S.A.", "ON      NM", "Bens Industriais"),
    ("SBSP3", "SABESP", "ON      NM", "Utilidade Pública"),
    ("SANB11", "SANTANDER BR", "UNT", "Financeiro"),
    ("STBP3", "SANTOS BRP", "ON      NM", "Bens Industriais"),
    ("SMTO3", "SAO MARTINHO", "ON      NM", "Consumo não Cíclico"),
    ("CSNA3", "SID NACIONAL", "ON", "Materiais Básicos"),
    ("SLCE3", "SLC AGRICOLA", "ON      NM", "Consumo não Cíclico"),
    ("SUZB3", "SUZANO S.A.", "ON      NM", "Materiais Básicos"),
    ("TAEE11", "TAESA", "UNT     N2", "Utilidade Pública"),
    ("VIVT3", "TELEF BRASIL", "ON", "Comunicações"),
    ("TIMS3", "TIM", "ON      NM", "Comunicações"),
    ("TOTS3", "TOTVS", "ON      NM", "Tecnologia da Informação"),
    ("UGPA3", "ULTRAPAR", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("USIM5", "USIMINAS", "PNA     N1", "Materiais Básicos"),
    ("VALE3", "VALE", "ON      NM", "Materiais Básicos"),
    ("VAMO3", "VAMOS", "ON      NM", "Bens Industriais"),
    ("VBBR3", "VIBRA", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("VIVA3", "VIVARA S.A.", "ON      NM", "Consumo Cíclico"),
    ("WEGE3", "WEG", "ON      NM", "Bens Industriais"),
    ("YDUQ3", "YDUQS PART", "ON      NM", "Consumo Cíclico"),
)
SECTORS = {code[:4]: sector for code, _, _, sector in UNIVERSE}
# Ex-dividend / ex-rights markers B3 puts between the class and the listing segment.
_MARKERS = ("ED", "EJ", "EDJ", "EX", "ES")


def _with_marker(type_: str, marker: str) -> str:
    """``ON      NM`` + ``ED`` -> ``ON  ED  NM`` (B3's fixed-width columns)."""
    parts = type_.split()
    share, listing = parts[0], (parts[1] if len(parts) > 1 else "")
    return f"{share:<4}{marker:<4}{listing}".rstrip()


def generate_portfolio(d: date, size: int = 85) -> ReplicaPortfolio:
    """A deterministic, valid-by-construction portfolio for ``d``: ~85 real tickers, exact
    quantity total, participations quantized to 0.001 adding to exactly 100.000."""
    rng = random.Random(d.toordinal())
    members = sorted(rng.sample(UNIVERSE, min(size, len(UNIVERSE))), key=lambda m: (m[1], m[0]))
    qtys = [rng.randint(60_000_000, 2_200_000_000) for _ in members]
    prices = [Decimal(rng.randint(150, 9_000)) / 100 for _ in members]  # R$ per share
    values = [Decimal(q) * p for q, p in zip(qtys, prices, strict=True)]
    market = sum(values, Decimal(0))
    parts = [(v * 100 / market).quantize(PART_Q, ROUND_HALF_EVEN) for v in values]
    parts = [max(p, PART_Q) for p in parts]
    biggest = max(range(len(parts)), key=parts.__getitem__)
    parts[biggest] += Decimal("100.000") - sum(parts, Decimal(0))
    rows = []
    for (code, name, type_, sector), q, part in zip(members, qtys, parts, strict=True):
        if rng.randrange(20) == 0:
            type_ = _with_marker(type_, rng.choice(_MARKERS))
        rows.append(Row(code, name, type_, q, part, sector))
    index_level = Decimal(rng.randint(110_000, 140_000))
    redutor = (market / index_level).quantize(REDUTOR_Q, ROUND_HALF_EVEN)
    return ReplicaPortfolio(
        data_carteira=d, rows=tuple(rows), total_qty=sum(qtys), redutor=redutor,
    )


# --- B3's renderings ----------------------------------------------------------------------

def _ordered(portfolio: ReplicaPortfolio, segment: str) -> list[Row]:
    if segment == "2":
        return sorted(portfolio.rows, key=lambda r: r.sector)  # stable: name order inside
    return list(portfolio.rows)


def api_page(
    portfolio: ReplicaPortfolio,
    *,
    page_number: int,
    page_size: int,
    language: str = "pt-br",
    segment: str = "1",
) -> dict[str, object]:
    """One ``GetPortfolioDay`` answer, shaped and formatted like B3's."""
    rows = _ordered(portfolio, segment)
    size = max(1, page_size)
    total_pages = -(-len(rows) // size)
    start = (max(1, page_number) - 1) * size
    chunk = rows[start:start + size]
    acum: dict[str, Decimal] = {}
    if segment == "2":
        running: dict[str, Decimal] = {}
        for r in rows:
            running[r.sector] = running.get(r.sector, Decimal(0)) + r.part
            acum[r.cod] = running[r.sector]
    en = language == "en-us"
    results = [
        {
            "segment": r.sector if segment == "2" else None,
            "cod": r.cod,
            "asset": r.asset,
            "type": r.type,
            "part": fmt_dec(r.part, 3, language),
            "partAcum": fmt_dec(acum[r.cod], 3, language) if segment == "2" else None,
            "theoricalQty": fmt_int(r.qty, language),
        }
        for r in chunk
    ]
    return {
        "page": {
            "pageNumber": max(1, page_number),
            "pageSize": size,
            "totalRecords": len(rows),
            "totalPages": total_pages,
        },
        "header": {
            "date": fmt_date(portfolio.data_carteira),
            "text": "Total Theoretical Quantity" if en else "Quantidade Teórica Total",
            "part": fmt_dec(portfolio.part_total, 3, language),
            "partAcum": None,
            "textReductor": "Reductor" if en else "Redutor",
            "reductor": fmt_dec(portfolio.redutor, 8, language),
            "theoricalQty": fmt_int(portfolio.total_qty, language),
        },
        "results": results,
    }


def csv_bytes(portfolio: ReplicaPortfolio) -> bytes:
    """B3's download: the real sample's bytes, else the same layout rendered (latin-1, LF,
    title line, trailing ``;`` on rows, two footer rows)."""
    if portfolio.csv_bytes is not None:
        return portfolio.csv_bytes
    lines = [
        f"IBOV - Carteira do Dia {fmt_date(portfolio.data_carteira)}",
        "Código;Ação;Tipo;Qtde. Teórica;Part. (%)",
    ]
    lines += [
        f"{r.cod};{r.asset};{r.type};{fmt_int(r.qty)};{fmt_dec(r.part, 3)};"
        for r in portfolio.rows
    ]
    lines.append(f"Quantidade Teórica Total;;;{fmt_int(portfolio.total_qty)};"
                 f"{fmt_dec(portfolio.part_total, 3)}")
    lines.append(f"Redutor;;;{fmt_dec(portfolio.redutor, 8)}")
    return ("\n".join(lines) + "\n").encode("latin-1")


def write_csvs(folder: Path, days: list[date]) -> list[Path]:
    """B3-style downloads (``IBOVDia_DD-MM-YY.csv``) of generated portfolios, one per day."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in days:
        path = folder / f"IBOVDia_{day:%d-%m-%y}.csv"
        path.write_bytes(csv_bytes(generate_portfolio(day)))
        paths.append(path)
    return paths
