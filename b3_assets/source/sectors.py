"""B3's sector labels ("Setor / Subsetor") into the economic sector and subsector of B3's
classification: the curated mapping of docs/contracts.md "Landing Parquet schema".

``GetPortfolioDay`` with ``segment`` 2 labels every constituent with an abbreviated, unevenly
spaced ``"Setor / Subsetor"`` (``Cons N  Básico / Alimentos Processados``,
``Bens Indls/Transporte``) or with one word where the sector has one subsector or B3 leaves the
sector out (``Telecomunicação``, ``Diversos``). A label is known when it names a (sector,
subsector) pair of :data:`CLASSIFICATION`, through the abbreviations below or the full names;
anything else is unknown, and an unknown label never blocks landing: ``setor_b3`` keeps it,
``setor``/``subsetor`` stay null and :func:`unknown_sector_labels` names it so this file gets
extended. No Dagster, standard library and pyarrow only.

To extend: add the abbreviation B3 used to :data:`SECTOR_ABBREVIATIONS` or
:data:`SUBSECTOR_ABBREVIATIONS` (or a whole label to :data:`WHOLE_LABELS`), keep every target a
name of :data:`CLASSIFICATION`, and add the label to ``test_sectors.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

#: B3's classification (setor -> its subsetores), as B3 publishes it in full words: the only
#: values ``setor`` and ``subsetor`` can take. The 11 sectors of docs/contracts.md.
CLASSIFICATION: dict[str, tuple[str, ...]] = {
    "Bens Industriais": (
        "Comércio", "Construção e Engenharia", "Máquinas e Equipamentos",
        "Material de Transporte", "Serviços", "Transporte",
    ),
    "Comunicações": ("Mídia", "Telecomunicações"),
    "Consumo Cíclico": (
        "Automóveis e Motocicletas", "Comércio", "Construção Civil", "Diversos",
        "Hotéis e Restaurantes", "Tecidos, Vestuário e Calçados", "Utilidades Domésticas",
        "Viagens e Lazer",
    ),
    "Consumo não Cíclico": (
        "Agropecuária", "Alimentos Processados", "Bebidas", "Comércio e Distribuição",
        "Produtos de Uso Pessoal e de Limpeza",
    ),
    "Financeiro": (
        "Exploração de Imóveis", "Holdings Diversificadas", "Intermediários Financeiros",
        "Previdência e Seguros", "Serviços Financeiros Diversos",
    ),
    "Materiais Básicos": (
        "Embalagens", "Madeira e Papel", "Materiais Diversos", "Mineração", "Químicos",
        "Siderurgia e Metalurgia",
    ),
    "Petróleo, Gás e Biocombustíveis": ("Petróleo, Gás e Biocombustíveis",),
    "Saúde": (
        "Comércio e Distribuição", "Equipamentos", "Medicamentos e Outros Produtos",
        "Serviços Médico-Hospitalares, Análises e Diagnósticos",
    ),
    "Tecnologia da Informação": ("Computadores e Equipamentos", "Programas e Serviços"),
    "Utilidade Pública": ("Água e Saneamento", "Energia Elétrica", "Gás"),
    "Outros": ("Outros",),
}
SETORES: tuple[str, ...] = tuple(CLASSIFICATION)

#: The sector part of B3's labels (before the ``/``) as B3 abbreviates it. The full names of
#: :data:`SETORES` are accepted as well.
SECTOR_ABBREVIATIONS: dict[str, str] = {
    "Bens Indls": "Bens Industriais",
    # Three spellings of one sector in the same answer (2025-04-07).
    "Cons N Básico": "Consumo não Cíclico",
    "Cons N Ciclico": "Consumo não Cíclico",
    "Cons N Cíclico": "Consumo não Cíclico",
    "Consumo Cíclico": "Consumo Cíclico",
    # B3's older sector "Financeiro e Outros", abbreviated or not: today's Financeiro
    # (its subsector "Outros" is today's sector Outros, see SPLIT_SUBSECTORS).
    "Financ e Outros": "Financeiro",
    "Financeiro e Outros": "Financeiro",
    "Mats Básicos": "Materiais Básicos",
    "Tec.Informação": "Tecnologia da Informação",
    "Utilidade Públ": "Utilidade Pública",
}

#: The subsector part (after the ``/``) as B3 abbreviates it. Full names are accepted too.
SUBSECTOR_ABBREVIATIONS: dict[str, str] = {
    "Máqs e Equips": "Máquinas e Equipamentos",
    "Mat Transporte": "Material de Transporte",
    "Comércio Distr.": "Comércio e Distribuição",
    "Pr Pessoal Limp": "Produtos de Uso Pessoal e de Limpeza",
    "Tecid Vest Calç": "Tecidos, Vestuário e Calçados",
    "Autos e Motos": "Automóveis e Motocicletas",
    "Constr Civil": "Construção Civil",
    "Explor Imóveis": "Exploração de Imóveis",
    "Holdings Divers": "Holdings Diversificadas",
    "Interms Financs": "Intermediários Financeiros",
    "Previd Seguros": "Previdência e Seguros",
    "Sid Metalurgia": "Siderurgia e Metalurgia",
    "SM Hosp An.Diag": "Serviços Médico-Hospitalares, Análises e Diagnósticos",
    "Programas Servs": "Programas e Serviços",
    "Água Saneamento": "Água e Saneamento",
    "Energ Elétrica": "Energia Elétrica",
}

#: Labels with no ``/``: B3 gives the subsector alone, or a sector that is its own subsector.
WHOLE_LABELS: dict[str, tuple[str, str]] = {
    "Diversos": ("Consumo Cíclico", "Diversos"),
    "Telecomunicação": ("Comunicações", "Telecomunicações"),
    "Telecomunicações": ("Comunicações", "Telecomunicações"),
    "Petróleo, Gás e Biocombustíveis": ("Petróleo, Gás e Biocombustíveis",
                                        "Petróleo, Gás e Biocombustíveis"),
    "Outros": ("Outros", "Outros"),
}

#: (sector, subsector) pairs of B3's older labels that today's classification files elsewhere.
SPLIT_SUBSECTORS: dict[tuple[str, str], tuple[str, str]] = {
    ("Financeiro", "Outros"): ("Outros", "Outros"),
}


class Sector(NamedTuple):
    """A constituent's place in B3's classification."""

    setor: str
    subsetor: str


def normalize_label(label: str | None) -> str | None:
    """``setor_b3``: B3's label with runs of spaces collapsed, None when there is none."""
    text = " ".join((label or "").split())
    return text or None


def _key(text: str) -> str:
    """Lookup key: spaces collapsed, case folded (accents kept: spellings are listed)."""
    return " ".join(text.split()).casefold()


def _table(pairs: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    table = {_key(name): name for name in names}
    table.update({_key(k): v for k, v in pairs.items()})
    return table


_SECTORS = _table(SECTOR_ABBREVIATIONS, SETORES)
_SUBSECTORS = _table(SUBSECTOR_ABBREVIATIONS,
                     tuple(sorted({s for subs in CLASSIFICATION.values() for s in subs})))
_WHOLE = {_key(k): v for k, v in WHOLE_LABELS.items()}


def classify(label: str | None) -> Sector | None:
    """The sector and subsector of one of B3's labels; None when the mapping does not know it
    (or there is no label)."""
    text = normalize_label(label)
    if text is None:
        return None
    whole = _WHOLE.get(_key(text))
    if whole is not None:
        return Sector(*whole)
    sector_part, slash, subsector_part = text.partition("/")
    if not slash:
        return None
    setor = _SECTORS.get(_key(sector_part))
    subsetor = _SUBSECTORS.get(_key(subsector_part))
    if setor is None or subsetor is None:
        return None
    setor, subsetor = SPLIT_SUBSECTORS.get((setor, subsetor), (setor, subsetor))
    if subsetor not in CLASSIFICATION[setor]:
        return None  # abbreviations that exist, put together into a pair B3 does not have
    return Sector(setor, subsetor)


def unknown_sector_labels(table: pa.Table) -> list[str]:
    """The distinct ``setor_b3`` labels of a landing table whose ``setor`` is null: labels
    the mapping did not know when the file was written (extend this module, then land the
    date again). Empty for tables without sectors (CSV imports, files older than the
    columns)."""
    if "setor_b3" not in table.column_names or "setor" not in table.column_names:
        return []
    labels = table.column("setor_b3").to_pylist()
    sectors = table.column("setor").to_pylist()
    return sorted({lab for lab, sec in zip(labels, sectors, strict=True)
                   if lab is not None and sec is None})
