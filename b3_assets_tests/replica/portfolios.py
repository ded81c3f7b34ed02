"""The portfolios the replica serves: the real B3 samples when they are beside the checkout,
else generated ones, and their rendering as B3 renders them (JSON pages, CSV, pt-BR/US numbers).

Rows keep B3's raw text (``ON      NM`` with its runs of spaces, company-name order, B3's
sector labels such as ``Cons N  Básico / Alimentos Processados``) so what the replica serves
looks like what B3 sends, not like what the parser makes of it. Besides the day's portfolio
(``GetPortfolioDay``, segment 1 by code, segment 2 by sector), the period's theoretical
portfolio (``GetTheoricalPortfolio``) and the preview of the next period
(``GetQuartelyPreview``): :class:`ReplicaPeriod`.
"""

from __future__ import annotations

import json
import random
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from b3_assets.source.model import Constituent
from b3_assets.source.parse import collapse_spaces, parse_csv
from b3_assets.source.sectors import normalize_label

PART_Q = Decimal("0.001")
REDUTOR_Q = Decimal("0.00000001")
DEFAULT_DATE = date(2025, 3, 5)
#: The label of a ticker the replica has no sector for (B3's sector "Outros").
FALLBACK_SECTOR = "Outros / Outros"
#: Real B3 answers recorded in en-us (b3_assets_tests/fixtures/b3/api_json/).
SEGMENT2_SAMPLE = "api_json/GetPortfolioDay_IBOV_segment2_en-us_2025-04-07.json"
TEORICA_SAMPLE = "api_json/GetTheoricalPortfolio_IBOV_en-us_2025-04-07.json"
SEGMENT2_SAMPLE_DATE = date(2025, 4, 7)


@dataclass(frozen=True)
class Row:
    """One constituent as B3 writes it: raw names and types, exact numbers."""

    cod: str
    asset: str
    type: str
    qty: int
    part: Decimal
    #: B3's "Setor / Subsetor" label as B3 writes it (abbreviated, uneven spacing).
    sector: str = FALLBACK_SECTOR


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
    #: The index this is the portfolio of (its CSV title: ``SMLL - Carteira do Dia …``).
    indice: str = "IBOV"

    def constituents(self, segment: str = "2") -> tuple[Constituent, ...]:
        """The rows as the project's parser should read them back (for assertions), in the
        order and with the fields of ``segment``: "2" (what b3-pipeline fetches: grouped by
        sector, with the label and partAcum), "1" (by code: the CSV, no sectors)."""
        if segment != "2":
            return tuple(
                Constituent(r.cod, collapse_spaces(r.asset), collapse_spaces(r.type), r.qty,
                            r.part)
                for r in self.rows
            )
        totals = sector_totals(self.rows)
        return tuple(
            Constituent(r.cod, collapse_spaces(r.asset), collapse_spaces(r.type), r.qty, r.part,
                        normalize_label(r.sector), totals[r.sector])
            for r in _ordered(self, "2")
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


def _us_int(text: str) -> int:
    """``1,243,177,587`` (en-us, the recorded samples) -> 1243177587."""
    return int(text.replace(",", ""))


def _us_dec(text: str) -> Decimal:
    """``16,036,751.16744128`` -> Decimal('16036751.16744128')."""
    return Decimal(text.replace(",", ""))


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
                        SECTORS.get(c.codigo[:4], FALLBACK_SECTOR)))
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


def load_segment2_sample(path: Path, d: date = SEGMENT2_SAMPLE_DATE) -> ReplicaPortfolio:
    """B3's recorded ``GetPortfolioDay`` segment 2 answer (en-us, header date mm/dd/yy): real
    sector labels, rows kept in company order like the other samples."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    header = doc["header"]
    rows = sorted(
        (Row(r["cod"], r["asset"], r["type"], _us_int(r["theoricalQty"]), _us_dec(r["part"]),
             r["segment"]) for r in doc["results"]),
        key=lambda r: (r.asset, r.cod))
    return ReplicaPortfolio(
        data_carteira=d,
        rows=tuple(rows),
        total_qty=_us_int(header["theoricalQty"]),
        redutor=_us_dec(header["reductor"]),
        part_total=_us_dec(header["part"]),
        origin=f"sample:{path.parent.name}/{path.name}",
    )


def portfolio_for(d: date, samples_dir: Path | None = None) -> ReplicaPortfolio:
    """The real sample of ``d`` when there is one (B3's CSV, or for 2025-04-07 B3's segment 2
    JSON), else a generated portfolio for ``d``."""
    if samples_dir is not None and samples_dir.is_dir():
        path = _sample_path(samples_dir, d)
        if path is not None:
            return load_sample(path)
        json_path = samples_dir / SEGMENT2_SAMPLE
        if d == SEGMENT2_SAMPLE_DATE and json_path.is_file():
            return load_segment2_sample(json_path)
    return generate_portfolio(d)


# --- generator ----------------------------------------------------------------------------

# (code, company, type as B3 pads it, sector): real IBOV members of 2023-2026.
UNIVERSE: tuple[tuple[str, str, str, str], ...] = (
    ("ALOS3", "ALLOS", "ON      NM", "Financ e Outros / Explor Imóveis"),
    ("ABEV3", "AMBEV S/A", "ON", "Cons N Cíclico / Bebidas"),
    ("ASAI3", "ASSAI", "ON      NM", "Cons N Cíclico / Comércio Distr."),
    ("AURE3", "AUREN", "ON      NM", "Utilidade Públ / Energ Elétrica"),
    ("AZUL4", "AZUL", "PN      N2", "Bens Indls/Transporte"),
    ("AZZA3", "AZZAS 2154", "ON      NM", "Consumo Cíclico / Comércio"),
    ("B3SA3", "B3", "ON      NM", "Financeiro e Outros/Serviços Financeiros Diversos"),
    ("BBSE3", "BBSEGURIDADE", "ON      NM", "Financ e Outros / Previd  Seguros"),
    ("BBDC3", "BRADESCO", "ON      N1", "Financ e Outros / Interms Financs"),
    ("BBDC4", "BRADESCO", "PN      N1", "Financ e Outros / Interms Financs"),
    ("BRAP4", "BRADESPAR", "PN      N1", "Mats Básicos / Mineração"),
    ("BBAS3", "BRASIL", "ON      NM", "Financ e Outros / Interms Financs"),
    ("BRKM5", "BRASKEM", "PNA     N1", "Mats Básicos / Químicos"),
    ("BRAV3", "BRAVA", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("BRFS3", "BRF SA", "ON      NM", "Cons N  Básico / Alimentos Processados"),
    ("BPAC11", "BTGP BANCO", "UNT", "Financ e Outros / Interms Financs"),
    ("CXSE3", "CAIXA SEGURI", "ON      NM", "Financ e Outros / Previd  Seguros"),
    ("CRFB3", "CARREFOUR BR", "ON      NM", "Cons N Cíclico / Comércio Distr."),
    ("CCRO3", "CCR SA", "ON      NM", "Bens Indls/Transporte"),
    ("CMIG4", "CEMIG", "PN      N1", "Utilidade Públ / Energ Elétrica"),
    ("COGN3", "COGNA ON", "ON      NM", "Diversos"),
    ("CPLE6", "COPEL", "PNB     N2", "Utilidade Públ / Energ Elétrica"),
    ("CSAN3", "COSAN", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("CPFE3", "CPFL ENERGIA", "ON      NM", "Utilidade Públ / Energ Elétrica"),
    ("CMIN3", "CSNMINERACAO", "ON      N2", "Mats Básicos / Mineração"),
    ("CVCB3", "CVC BRASIL", "ON      NM", "Consumo Cíclico/Viagens e Lazer"),
    ("CYRE3", "CYRELA REALT", "ON      NM", "Consumo Cíclico/Constr Civil"),
    ("DIRR3", "DIRECIONAL", "ON      NM", "Consumo Cíclico/Constr Civil"),
    ("ELET3", "ELETROBRAS", "ON      N1", "Utilidade Públ / Energ Elétrica"),
    ("ELET6", "ELETROBRAS", "PNB     N1", "Utilidade Públ / Energ Elétrica"),
    ("EMBR3", "EMBRAER", "ON      NM", "Bens Indls / Mat Transporte"),
    ("ENGI11", "ENERGISA", "UNT     N2", "Utilidade Públ / Energ Elétrica"),
    ("ENEV3", "ENEVA", "ON      NM", "Utilidade Públ / Energ Elétrica"),
    ("EGIE3", "ENGIE BRASIL", "ON      NM", "Utilidade Públ / Energ Elétrica"),
    ("EQTL3", "EQUATORIAL", "ON      NM", "Utilidade Públ / Energ Elétrica"),
    ("FLRY3", "FLEURY", "ON      NM", "Saúde/SM Hosp An.Diag"),
    ("GGBR4", "GERDAU", "PN      N1", "Mats Básicos / Sid Metalurgia"),
    ("GOAU4", "GERDAU MET", "PN      N1", "Mats Básicos / Sid Metalurgia"),
    ("NTCO3", "GRUPO NATURA", "ON      NM", "Cons N Cíclico / Pr Pessoal Limp"),
    ("HAPV3", "HAPVIDA", "ON      NM", "Saúde/SM Hosp An.Diag"),
    ("HYPE3", "HYPERA", "ON      NM", "Saúde/Comércio Distr."),
    ("IGTI11", "IGUATEMI S.A", "UNT     N1", "Financ e Outros / Explor Imóveis"),
    ("IRBR3", "IRBBRASIL RE", "ON      NM", "Financ e Outros / Previd  Seguros"),
    ("ISAE4", "ISA ENERGIA", "PN      N1", "Utilidade Públ / Energ Elétrica"),
    ("ITSA4", "ITAUSA", "PN      N1", "Financ e Outros / Holdings Divers"),
    ("ITUB4", "ITAUUNIBANCO", "PN      N1", "Financ e Outros / Interms Financs"),
    ("JBSS3", "JBS", "ON      NM", "Cons N  Básico / Alimentos Processados"),
    ("KLBN11", "KLABIN S/A", "UNT     N2", "Mats Básicos / Madeira e Papel"),
    ("RENT3", "LOCALIZA", "ON      NM", "Diversos"),
    ("LREN3", "LOJAS RENNER", "ON      NM", "Consumo Cíclico / Comércio"),
    ("LWSA3", "LWSA", "ON      NM", "Tec.Informação/Programas Servs"),
    ("MGLU3", "MAGAZ LUIZA", "ON      NM", "Consumo Cíclico / Comércio"),
    ("POMO4", "MARCOPOLO", "PN      N2", "Bens Indls / Mat Transporte"),
    ("MRFG3", "MARFRIG", "ON      NM", "Cons N  Básico / Alimentos Processados"),
    ("BEEF3", "MINERVA", "ON      NM", "Cons N  Básico / Alimentos Processados"),
    ("MOTV3", "MOTIVA SA", "ON      NM", "Bens Indls/Transporte"),
    ("MRVE3", "MRV", "ON      NM", "Consumo Cíclico/Constr Civil"),
    ("MULT3", "MULTIPLAN", "ON      N2", "Financ e Outros / Explor Imóveis"),
    ("PCAR3", "P.ACUCAR-CBD", "ON      NM", "Cons N Cíclico / Comércio Distr."),
    ("PETR3", "PETROBRAS", "ON      N2", "Petróleo, Gás e Biocombustíveis"),
    ("PETR4", "PETROBRAS", "PN      N2", "Petróleo, Gás e Biocombustíveis"),
    ("RECV3", "PETRORECSA", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("PRIO3", "PETRORIO", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("PETZ3", "PETZ", "ON      NM", "Consumo Cíclico / Comércio"),
    ("PSSA3", "PORTO SEGURO", "ON      NM", "Financ e Outros / Previd  Seguros"),
    ("RADL3", "RAIADROGASIL", "ON      NM", "Saúde/Comércio Distr."),
    ("RAIZ4", "RAIZEN", "PN      N2", "Petróleo, Gás e Biocombustíveis"),
    ("RDOR3", "REDE D OR", "ON      NM", "Saúde/SM Hosp An.Diag"),
    ("RAIL3", "RUMO S.A.", "ON      NM", "Bens Indls/Transporte"),
    ("SBSP3", "SABESP", "ON      NM", "Utilidade Públ / Água Saneamento"),
    ("SANB11", "SANTANDER BR", "UNT", "Financ e Outros / Interms Financs"),
    ("STBP3", "SANTOS BRP", "ON      NM", "Bens Indls/Transporte"),
    ("SMTO3", "SAO MARTINHO", "ON      NM", "Cons N  Básico / Alimentos Processados"),
    ("CSNA3", "SID NACIONAL", "ON", "Mats Básicos / Sid Metalurgia"),
    ("SLCE3", "SLC AGRICOLA", "ON      NM", "Cons N Ciclico/Agropecuária"),
    ("SUZB3", "SUZANO S.A.", "ON      NM", "Mats Básicos / Madeira e Papel"),
    ("TAEE11", "TAESA", "UNT     N2", "Utilidade Públ / Energ Elétrica"),
    ("VIVT3", "TELEF BRASIL", "ON", "Telecomunicação"),
    ("TIMS3", "TIM", "ON      NM", "Telecomunicação"),
    ("TOTS3", "TOTVS", "ON      NM", "Tec.Informação/Programas Servs"),
    ("UGPA3", "ULTRAPAR", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("USIM5", "USIMINAS", "PNA     N1", "Mats Básicos / Sid Metalurgia"),
    ("VALE3", "VALE", "ON      NM", "Mats Básicos / Mineração"),
    ("VAMO3", "VAMOS", "ON      NM", "Diversos"),
    ("VBBR3", "VIBRA", "ON      NM", "Petróleo, Gás e Biocombustíveis"),
    ("VIVA3", "VIVARA S.A.", "ON      NM", "Consumo Cíclico / Tecid Vest Calç"),
    ("WEGE3", "WEG", "ON      NM", "Bens Indls / Máqs e Equips"),
    ("YDUQ3", "YDUQS PART", "ON      NM", "Diversos"),
)
#: Issuers of the older and newer samples that are not in UNIVERSE, with the label B3 gives
#: their sector (so every sample's rows are served with a real label).
OTHER_SECTORS: dict[str, str] = {
    "ALPA": "Consumo Cíclico / Tecid Vest Calç",
    "ALSO": "Financ e Outros / Explor Imóveis",
    "AMOB": "Consumo Cíclico/Autos e Motos",
    "ARZZ": "Consumo Cíclico / Tecid Vest Calç",
    "AXIA": "Utilidade Públ / Energ Elétrica",
    "BHIA": "Consumo Cíclico / Comércio",
    "CEAB": "Consumo Cíclico / Comércio",
    "CIEL": "Financeiro e Outros/Serviços Financeiros Diversos",
    "CSMG": "Utilidade Públ / Água Saneamento",
    "CURY": "Consumo Cíclico/Constr Civil",
    "DXCO": "Mats Básicos / Madeira e Papel",
    "EMBJ": "Bens Indls / Mat Transporte",
    "EZTC": "Consumo Cíclico/Constr Civil",
    "GOLL": "Bens Indls/Transporte",
    "MBRF": "Cons N  Básico / Alimentos Processados",
    "NATU": "Cons N Cíclico / Pr Pessoal Limp",
    "RRRP": "Petróleo, Gás e Biocombustíveis",
    "SMFT": "Consumo Cíclico/Viagens e Lazer",
    "SOMA": "Consumo Cíclico / Tecid Vest Calç",
}
SECTORS = {**OTHER_SECTORS, **{code[:4]: sector for code, _, _, sector in UNIVERSE}}
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

def label_order(label: str) -> str:
    """B3's order of the sector view: labels compared without accents or case (``Cons N
    Cíclico / Bebidas`` before ``Cons N Ciclico/Agropecuária``, as B3 sends them)."""
    return unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().casefold()


def _ordered(portfolio: ReplicaPortfolio, segment: str) -> list[Row]:
    if segment == "2":
        # Grouped by label; stable, so company order inside a label, as B3 does.
        return sorted(portfolio.rows, key=lambda r: label_order(r.sector))
    return list(portfolio.rows)


def sector_totals(rows: tuple[Row, ...] | list[Row]) -> dict[str, Decimal]:
    """``partAcum``: each label's total weight (every row of a label carries it)."""
    totals: dict[str, Decimal] = {}
    for r in rows:
        totals[r.sector] = totals.get(r.sector, Decimal(0)) + r.part
    return totals


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
    by_sector = segment == "2"
    acum = sector_totals(rows) if by_sector else {}
    en = language == "en-us"
    results = [
        {
            "segment": r.sector if by_sector else None,
            "cod": r.cod,
            "asset": r.asset,
            "type": r.type,
            "part": fmt_dec(r.part, 3, language),
            "partAcum": fmt_dec(acum[r.sector], 3, language) if by_sector else None,
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
            # en-us: B3 writes the date mm/dd/yy, and "Theorethical" (sic).
            "date": portfolio.data_carteira.strftime("%m/%d/%y") if en
            else fmt_date(portfolio.data_carteira),
            "text": "Total Theorethical Quantity" if en else "Quantidade Teórica Total",
            "part": fmt_dec(portfolio.part_total, 3, language),
            "partAcum": fmt_dec(portfolio.part_total, 3, language) if by_sector else None,
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
        f"{portfolio.indice} - Carteira do Dia {fmt_date(portfolio.data_carteira)}",
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


# --- the period views: GetTheoricalPortfolio and GetQuartelyPreview -----------------------

@dataclass(frozen=True)
class ReplicaPeriod:
    """What the replica serves for a view of the four-month period: ``teorica`` (the
    period's theoretical portfolio) or ``previa`` (the preview of the next one). B3 puts no
    date in them; ``period_start`` only says which period it is."""

    view: str
    period_start: date
    rows: tuple[Row, ...]
    total_qty: int
    redutor: Decimal
    part_total: Decimal = Decimal("100.000")
    origin: str = "generated"
    #: B3's ``cont`` of each row (a counter in another order than the rows'); () = 1, 2, ...
    conts: tuple[int, ...] = ()

    def constituents(self) -> tuple[Constituent, ...]:
        """The rows as the project's parser should read them back, in served order."""
        return tuple(
            Constituent(r.cod, collapse_spaces(r.asset), collapse_spaces(r.type), r.qty, r.part)
            for r in self.rows
        )

    def with_rows(self, rows: list[Row] | tuple[Row, ...], **changes: Any) -> ReplicaPeriod:
        """Other rows (``cont`` renumbered), the header as is unless given."""
        return replace(self, rows=tuple(rows), conts=(), **changes)


def period_start(d: date) -> date:
    """The first day of ``d``'s four-month period (January, May, September)."""
    return date(d.year, (d.month - 1) // 4 * 4 + 1, 1)


def next_period_start(d: date) -> date:
    start = period_start(d)
    return date(start.year + 1, 1, 1) if start.month == 9 else date(start.year,
                                                                     start.month + 4, 1)


def generate_period(view: str, d: date) -> ReplicaPeriod:
    """A valid-by-construction view for the period of ``d`` (``previa``: the next period),
    rows in code order as B3 lists them, different from any day's generated portfolio."""
    start = period_start(d) if view == "teorica" else next_period_start(d)
    base = generate_portfolio(start)
    rows = tuple(sorted(base.rows, key=lambda r: r.cod))
    return ReplicaPeriod(view, start, rows, base.total_qty, base.redutor, origin="generated")


def load_period_sample(path: Path, view: str = "teorica") -> ReplicaPeriod:
    """B3's recorded ``GetTheoricalPortfolio`` answer (en-us numbers), rows in B3's order."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    header = doc["header"]
    rows = tuple(Row(r["cod"], r["asset"], r["type"], _us_int(r["theoricalQty"]),
                     _us_dec(r["part"]), SECTORS.get(r["cod"][:4], FALLBACK_SECTOR))
                 for r in doc["results"])
    return ReplicaPeriod(view, period_start(SEGMENT2_SAMPLE_DATE), rows,
                         _us_int(header["theoricalQty"]), _us_dec(header["reductor"]),
                         _us_dec(header["part"]), origin=f"sample:{path.parent.name}/{path.name}",
                         conts=tuple(int(r["cont"]) for r in doc["results"]))


def period_for(view: str, d: date, samples_dir: Path | None = None) -> ReplicaPeriod:
    """The view served around ``d``: B3's recorded theoretical portfolio when the samples are
    present (``teorica``), else generated; the preview is always generated (no sample)."""
    if view == "teorica" and samples_dir is not None and (samples_dir / TEORICA_SAMPLE).is_file():
        return load_period_sample(samples_dir / TEORICA_SAMPLE)
    return generate_period(view, d)


def period_page(period: ReplicaPeriod, *, page_number: int, page_size: int,
                language: str = "pt-br") -> dict[str, object]:
    """One ``GetTheoricalPortfolio`` / ``GetQuartelyPreview`` answer, shaped like B3's:
    header with no date, rows with ``cont``."""
    rows = list(period.rows)
    size = max(1, page_size)
    start = (max(1, page_number) - 1) * size
    results = [
        {
            "cod": r.cod,
            "asset": r.asset,
            "type": r.type,
            "theoricalQty": fmt_int(r.qty, language),
            "part": fmt_dec(r.part, 3, language),
            "cont": period.conts[start + i - 1] if period.conts else start + i,
        }
        for i, r in enumerate(rows[start:start + size], start=1)
    ]
    return {
        "page": {
            "pageNumber": max(1, page_number),
            "pageSize": size,
            "totalRecords": len(rows),
            "totalPages": -(-len(rows) // size),
        },
        "header": {
            "part": fmt_dec(period.part_total, 3, language),
            "theoricalQty": fmt_int(period.total_qty, language),
            "reductor": fmt_dec(period.redutor, 8, language),
        },
        "results": results,
    }
