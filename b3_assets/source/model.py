"""An index's portfolio as b3-pipeline understands it, and the landing schemas of docs/contracts.md:
the day's portfolio (``landing/ibov``) and B3's views of the four-month period
(``landing/ibov_teorica``, ``landing/ibov_previa``).

Numbers stay exact end to end: quantities are ``int``, percentages and the reductor are
``Decimal``; there is no float anywhere between B3's text and the landing Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

import pyarrow as pa

from b3_assets.source.sectors import classify
from glue.layout import issuer_root

INDICE = "IBOV"

#: B3's three views of an index's portfolio (source/api.py ``PORTFOLIO_ENDPOINTS``): the day's
#: portfolio, and the theoretical portfolio of the four-month period and the preview of the
#: next one, which B3 does not date (they are filed under the trading date of their capture).
PortfolioView = Literal["day", "teorica", "previa"]
#: What each view is, for messages.
VIEW_NAMES: dict[str, str] = {
    "day": "the day's portfolio (GetPortfolioDay)",
    "teorica": "the theoretical portfolio of the four-month period (GetTheoricalPortfolio)",
    "previa": "the preview of the next period's portfolio (GetQuartelyPreview)",
}

#: The landing Parquet schema (docs/contracts.md "Landing Parquet schema"). The one definition.
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
        # Sectors (issue #10): null for sources without them (CSV imports, older files).
        pa.field("setor_b3", pa.string(), nullable=True),
        pa.field("setor", pa.string(), nullable=True),
        pa.field("subsetor", pa.string(), nullable=True),
    ]
)

#: The landing Parquet of ``GetTheoricalPortfolio`` and ``GetQuartelyPreview`` (docs/contracts.md
#: "More of what B3 publishes"): B3 gives no date, so the first column is the trading date
#: of the capture.
PERIOD_LANDING_SCHEMA = pa.schema(
    [pa.field("data_captura", pa.date32(), nullable=False)]
    + [f for f in LANDING_SCHEMA if f.name not in {"data_carteira", "setor_b3", "setor",
                                                   "subsetor"}]
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
    #: B3's "Setor / Subsetor" label, runs of spaces collapsed (``segment`` 2 only).
    setor_b3: str | None = None
    #: ``partAcum``: the total weight of the rows sharing ``setor_b3``, as B3 sent it.
    part_acum: Decimal | None = None

    @property
    def issuer(self) -> str:
        """The issuer root (``PETR3``, ``PETR4`` -> ``PETR``): glue.layout's one rule."""
        return issuer_root(self.codigo)


@dataclass(frozen=True)
class Portfolio:
    """An index's theoretical portfolio (IBOV by default) as B3 published it: of the trading
    date ``data_carteira`` (B3's header date), or for a period ``view`` as B3 showed it on the
    trading date of the capture (``data_carteira`` is then that date: B3 gives none)."""

    data_carteira: date
    constituents: tuple[Constituent, ...]
    qtde_teorica_total: int
    redutor: Decimal
    coletado_em: datetime
    where: str
    participacao_total: Decimal | None = None
    indice: str = INDICE
    #: The payload is B3's sector view (``segment`` 2): every row must carry a label and the
    #: labels' ``partAcum`` must add up (source/validate.py).
    by_sector: bool = False
    view: PortfolioView = "day"

    def sorted_constituents(self) -> list[Constituent]:
        return sorted(self.constituents, key=lambda c: c.codigo)

    @property
    def landing_schema(self) -> pa.Schema:
        """The view's landing schema (docs/contracts.md): :data:`LANDING_SCHEMA` for the day's
        portfolio, :data:`PERIOD_LANDING_SCHEMA` for a period view."""
        return LANDING_SCHEMA if self.view == "day" else PERIOD_LANDING_SCHEMA

    def to_landing_table(self) -> pa.Table:
        """The landing rows: one per constituent, sorted by ``codigo``, exact types;
        ``setor``/``subsetor`` from the curated mapping (b3_assets/source/sectors.py), null for a
        label it does not know. A period view's rows: the same columns with the capture date
        first and no sectors (:attr:`landing_schema`)."""
        rows = self.sorted_constituents()
        n = len(rows)
        sectors = [classify(c.setor_b3) for c in rows]
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
            "setor_b3": [c.setor_b3 for c in rows],
            "setor": [s.setor if s else None for s in sectors],
            "subsetor": [s.subsetor if s else None for s in sectors],
        }
        if self.view != "day":
            columns["data_captura"] = columns.pop("data_carteira")
        schema = self.landing_schema
        return pa.Table.from_pydict({f.name: columns[f.name] for f in schema}, schema=schema)


def conform_landing(table: pa.Table) -> pa.Table:
    """A landing table read back, with exactly :data:`LANDING_SCHEMA`: columns matched by
    name, nullable columns the file predates (``setor_b3``, ``setor``, ``subsetor``) added as
    nulls, others dropped. A missing required column is an error naming it."""
    n = table.num_rows
    columns = []
    for f in LANDING_SCHEMA:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(n, f.type))
        else:
            raise ValueError(f"landing table has no column {f.name!r} (it has "
                             f"{', '.join(table.column_names)}): not a landing file")
    return pa.Table.from_arrays(columns, schema=LANDING_SCHEMA)
