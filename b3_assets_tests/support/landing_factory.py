"""Realistic landing tables for any date, deterministic from a seed (tests only).

Built from the IBOV constituents of 2025-03-05 (87 classes, 84 issuers, PETR/ELET/BBDC with
two classes, units like BPAC11). Quantities depend only on (seed, code), like B3's, which
change only at rebalances; participations move every day. Everything goes through
``b3_assets.source.model.Portfolio`` so the files have exactly LANDING_SCHEMA.

    table = landing_table(date(2025, 3, 5), drop={"AZUL"}, add={"GOLL4"})
    write_landing(lake_root, table)
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from b3_assets.source.model import Constituent, Portfolio

#: (codigo, acao, tipo) of IBOV on 2025-03-05.
BASE_CONSTITUENTS: tuple[tuple[str, str, str], ...] = (
    ("ABEV3", "AMBEV S/A", "ON"), ("ALOS3", "ALLOS", "ON ED NM"), ("AMOB3", "AUTOMOB", "ON NM"),
    ("ASAI3", "ASSAI", "ON NM"), ("AURE3", "AUREN", "ON NM"), ("AZUL4", "AZUL", "PN ES N2"),
    ("AZZA3", "AZZAS 2154", "ON NM"), ("B3SA3", "B3", "ON NM"), ("BBAS3", "BRASIL", "ON NM"),
    ("BBDC3", "BRADESCO", "ON N1"), ("BBDC4", "BRADESCO", "PN N1"),
    ("BBSE3", "BBSEGURIDADE", "ON EDR NM"), ("BEEF3", "MINERVA", "ON NM"),
    ("BPAC11", "BTGP BANCO", "UNT N2"), ("BRAP4", "BRADESPAR", "PN N1"),
    ("BRAV3", "BRAVA", "ON NM"), ("BRFS3", "BRF SA", "ON NM"), ("BRKM5", "BRASKEM", "PNA N1"),
    ("CCRO3", "CCR SA", "ON NM"), ("CMIG4", "CEMIG", "PN N1"),
    ("CMIN3", "CSNMINERACAO", "ON N2"), ("COGN3", "COGNA ON", "ON NM"),
    ("CPFE3", "CPFL ENERGIA", "ON NM"), ("CPLE6", "COPEL", "PNB N2"),
    ("CRFB3", "CARREFOUR BR", "ON NM"), ("CSAN3", "COSAN", "ON NM"),
    ("CSNA3", "SID NACIONAL", "ON"), ("CVCB3", "CVC BRASIL", "ON NM"),
    ("CXSE3", "CAIXA SEGURI", "ON NM"), ("CYRE3", "CYRELA REALT", "ON NM"),
    ("EGIE3", "ENGIE BRASIL", "ON NM"), ("ELET3", "ELETROBRAS", "ON N1"),
    ("ELET6", "ELETROBRAS", "PNB N1"), ("EMBR3", "EMBRAER", "ON NM"), ("ENEV3", "ENEVA", "ON NM"),
    ("ENGI11", "ENERGISA", "UNT ED N2"), ("EQTL3", "EQUATORIAL", "ON NM"),
    ("FLRY3", "FLEURY", "ON NM"), ("GGBR4", "GERDAU", "PN N1"), ("GOAU4", "GERDAU MET", "PN N1"),
    ("HAPV3", "HAPVIDA", "ON NM"), ("HYPE3", "HYPERA", "ON NM"),
    ("IGTI11", "IGUATEMI S.A", "UNT ED N1"), ("IRBR3", "IRBBRASIL RE", "ON NM"),
    ("ISAE4", "ISA ENERGIA", "PN N1"), ("ITSA4", "ITAUSA", "PN EJ N1"),
    ("ITUB4", "ITAUUNIBANCO", "PN EJ N1"), ("JBSS3", "JBS", "ON NM"),
    ("KLBN11", "KLABIN S/A", "UNT N2"), ("LREN3", "LOJAS RENNER", "ON NM"),
    ("LWSA3", "LWSA", "ON NM"), ("MGLU3", "MAGAZ LUIZA", "ON NM"), ("MRFG3", "MARFRIG", "ON NM"),
    ("MRVE3", "MRV", "ON NM"), ("MULT3", "MULTIPLAN", "ON N2"), ("NTCO3", "GRUPO NATURA", "ON NM"),
    ("PCAR3", "P.ACUCAR-CBD", "ON NM"), ("PETR3", "PETROBRAS", "ON N2"),
    ("PETR4", "PETROBRAS", "PN N2"), ("PETZ3", "PETZ", "ON NM"), ("POMO4", "MARCOPOLO", "PN ED N2"),
    ("PRIO3", "PETRORIO", "ON NM"), ("PSSA3", "PORTO SEGURO", "ON NM"),
    ("RADL3", "RAIADROGASIL", "ON NM"), ("RAIL3", "RUMO S.A.", "ON NM"),
    ("RAIZ4", "RAIZEN", "PN N2"), ("RDOR3", "REDE D OR", "ON NM"), ("RECV3", "PETRORECSA", "ON NM"),
    ("RENT3", "LOCALIZA", "ON NM"), ("SANB11", "SANTANDER BR", "UNT"), ("SBSP3", "SABESP", "ON NM"),
    ("SLCE3", "SLC AGRICOLA", "ON NM"), ("SMTO3", "SAO MARTINHO", "ON NM"),
    ("STBP3", "SANTOS BRP", "ON NM"), ("SUZB3", "SUZANO S.A.", "ON NM"),
    ("TAEE11", "TAESA", "UNT N2"), ("TIMS3", "TIM", "ON NM"), ("TOTS3", "TOTVS", "ON NM"),
    ("UGPA3", "ULTRAPAR", "ON NM"), ("USIM5", "USIMINAS", "PNA N1"), ("VALE3", "VALE", "ON NM"),
    ("VAMO3", "VAMOS", "ON NM"), ("VBBR3", "VIBRA", "ON NM"), ("VIVA3", "VIVARA S.A.", "ON NM"),
    ("VIVT3", "TELEF BRASIL", "ON ERJ"), ("WEGE3", "WEG", "ON ED NM"),
    ("YDUQ3", "YDUQS PART", "ON NM"),
)  # fmt: skip

#: Classes that can join the portfolio with ``add=`` (ITUB3 adds a second class to ITUB;
#: USIM3 is a class whose company name differs from USIM5's, to exercise min(acao)).
EXTRA_CONSTITUENTS: tuple[tuple[str, str, str], ...] = (
    ("GOLL4", "GOL", "PN N2"),
    ("EZTC3", "EZTEC", "ON NM"),
    ("CIEL3", "CIELO", "ON NM"),
    ("ALPA4", "ALPARGATAS", "PN N1"),
    ("DXCO3", "DEXCO", "ON NM"),
    ("SMFT3", "SMART FIT", "ON NM"),
    ("ITUB3", "ITAUUNIBANCO", "ON EJ N1"),
    ("USIM3", "USIMINAS ON", "ON N1"),
)

PARTICIPACAO_TOTAL_MILESIMOS = 100_000  # 100.000 %


def _select(drop: Iterable[str], add: Iterable[str]) -> list[tuple[str, str, str]]:
    """Base classes minus ``drop`` plus ``add``; names are issuer roots or full codes."""
    drops = set(drop)
    chosen = [c for c in BASE_CONSTITUENTS if c[0] not in drops and c[0][:4] not in drops]
    known = {c[0]: c for c in (*BASE_CONSTITUENTS, *EXTRA_CONSTITUENTS)}
    for name in add:
        matches = [c for code, c in known.items() if name in (code, code[:4])]
        if not matches:
            raise KeyError(f"unknown constituent {name!r} to add")
        chosen.extend(c for c in matches if c not in chosen)
    if not chosen:
        raise ValueError("a portfolio needs at least one constituent")
    return sorted(chosen)


def _allocate(weights: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder split of ``total`` proportional to integer weights, each >= 1."""
    whole = sum(weights.values())
    shares = {k: total * w // whole for k, w in weights.items()}
    by_remainder = sorted(weights, key=lambda k: (-(total * weights[k] % whole), k))
    for k in by_remainder[: total - sum(shares.values())]:
        shares[k] += 1
    for k in sorted(shares):  # nobody is in the index with 0.000 %
        if shares[k] == 0:
            shares[k] = 1
            shares[max(shares, key=lambda j: (shares[j], j))] -= 1
    return shares


def landing_portfolio(
    data_carteira: date,
    *,
    seed: int = 0,
    drop: Iterable[str] = (),
    add: Iterable[str] = (),
    coletado_em: datetime | None = None,
) -> Portfolio:
    """The portfolio of ``data_carteira``: same seed and date, same portfolio, always."""
    classes = _select(drop, add)
    qtde: dict[str, int] = {}
    weights: dict[str, int] = {}
    for codigo, _, _ in classes:
        stable = random.Random(f"{seed}:{codigo}")  # str seeds are hashed deterministically
        daily = random.Random(f"{seed}:{codigo}:{data_carteira.isoformat()}")
        qtde[codigo] = stable.randint(100_000_000, 5_500_000_000)
        price_cents = stable.randint(300, 9_000) * daily.randint(950, 1_050)
        weights[codigo] = qtde[codigo] * price_cents
    milesimos = _allocate(weights, PARTICIPACAO_TOTAL_MILESIMOS)
    redutor_rng = random.Random(f"{seed}:redutor:{data_carteira.isoformat()}")
    constituents = tuple(
        Constituent(
            codigo=codigo,
            acao=acao,
            tipo=tipo,
            qtde_teorica=qtde[codigo],
            participacao_pct=Decimal(milesimos[codigo]).scaleb(-3),
        )
        for codigo, acao, tipo in classes
    )
    return Portfolio(
        data_carteira=data_carteira,
        constituents=constituents,
        qtde_teorica_total=sum(qtde.values()),
        redutor=Decimal(redutor_rng.randint(10**15, 2 * 10**15)).scaleb(-8),
        coletado_em=coletado_em or datetime.combine(data_carteira, time(8, 30), tzinfo=UTC),
        where=f"landing_factory(seed={seed})",
        participacao_total=Decimal(PARTICIPACAO_TOTAL_MILESIMOS).scaleb(-3),
    )


def landing_table(
    data_carteira: date,
    *,
    seed: int = 0,
    drop: Iterable[str] = (),
    add: Iterable[str] = (),
    coletado_em: datetime | None = None,
) -> pa.Table:
    """Landing rows (LANDING_SCHEMA, sorted by codigo) of a generated portfolio."""
    return landing_portfolio(
        data_carteira, seed=seed, drop=drop, add=add, coletado_em=coletado_em
    ).to_landing_table()


def landing_path(lake_root: Path, data_carteira: date) -> Path:
    """Where the lake keeps a date's landing file (docs/contracts.md "Lake layout")."""
    return lake_root / "landing" / "ibov" / f"dt={data_carteira.isoformat()}" / "ibov.parquet"


def write_landing(lake_root: Path, table: pa.Table) -> Path:
    """Write ``table`` as its date's landing file under ``lake_root``; returns the path."""
    dates = set(table.column("data_carteira").to_pylist())
    if len(dates) != 1:
        raise ValueError(f"a landing file holds one date, got {sorted(dates)}")
    path = landing_path(lake_root, dates.pop())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
