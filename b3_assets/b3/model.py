"""The IBOV portfolio as b3-pipeline understands it, and the landing schema of DESIGN.md.

Numbers stay exact end to end: quantities are ``int``, percentages and the reductor are
``Decimal``; there is no float anywhere between B3's text and the landing Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from glue.layout import issuer_root

INDICE = "IBOV"

#: The landing Parquet schema (DESIGN.md "Landing Parquet schema"). The one definition.
LANDING_SCHEMA = pa.schema(
    [
        pa.field("data_carteira", pa.date32(), nullable=False),
        pa.field("indice", pa.string(), nullable=False),
        pa.field("codigo", pa.string(), nullable=False),
        pa.field("acao", pa.string(), nullable=False),
        pa.field("tipo", pa.string(), nullable=False),
        pa.field("qtde_teorica", pa.int64(), nullable=False),
        pa.field("participacao_pct", pa.decimal128(7, 3), nullable=False),
        pa.field("qtde_teorica_total", pa.int64(), nullable=False),
        pa.field("redutor", pa.decimal128(24, 8), nullable=False),
        pa.field("coletado_em", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

PARTICIPACAO_QUANTUM = Decimal("0.001")
REDUTOR_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True)
class Constituent:
    """One share class in the portfolio (one row of B3's table)."""

    codigo: str
    acao: str
    tipo: str
    qtde_teorica: int
    participacao_pct: Decimal

    @property
    def issuer(self) -> str:
        """The issuer root (``PETR3``, ``PETR4`` -> ``PETR``): glue.layout's one rule."""
        return issuer_root(self.codigo)


@dataclass(frozen=True)
class Portfolio:
    """The IBOV theoretical portfolio of one trading date, as B3 published it."""

    data_carteira: date
    constituents: tuple[Constituent, ...]
    qtde_teorica_total: int
    redutor: Decimal
    coletado_em: datetime
    where: str
    participacao_total: Decimal | None = None
    indice: str = INDICE

    def sorted_constituents(self) -> list[Constituent]:
        return sorted(self.constituents, key=lambda c: c.codigo)

    def to_landing_table(self) -> pa.Table:
        """The landing rows: one per constituent, sorted by ``codigo``, exact types."""
        rows = self.sorted_constituents()
        n = len(rows)
        columns = {
            "data_carteira": [self.data_carteira] * n,
            "indice": [self.indice] * n,
            "codigo": [c.codigo for c in rows],
            "acao": [c.acao for c in rows],
            "tipo": [c.tipo for c in rows],
            "qtde_teorica": [c.qtde_teorica for c in rows],
            "participacao_pct": [c.participacao_pct.quantize(PARTICIPACAO_QUANTUM) for c in rows],
            "qtde_teorica_total": [self.qtde_teorica_total] * n,
            "redutor": [self.redutor.quantize(REDUTOR_QUANTUM)] * n,
            "coletado_em": [self.coletado_em] * n,
        }
        return pa.Table.from_pydict(columns, schema=LANDING_SCHEMA)
