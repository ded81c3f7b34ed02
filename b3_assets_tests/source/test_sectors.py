"""Sectors (issue #10): the curated mapping of B3's labels, the sector view's validation
rules, and the three landing columns (setor_b3, setor, subsetor) from every source.

Generated data covers every behaviour; the real samples (b3_assets_tests/fixtures/b3) add the proof
that every label B3 actually sent is mapped."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_assets.source.api import portfolio_url
from b3_assets.source.errors import B3PayloadError
from b3_assets.source.model import LANDING_SCHEMA, conform_landing
from b3_assets.source.parse import parse_api_pages
from b3_assets.source.payload import RawPayload
from b3_assets.source.sectors import (
    CLASSIFICATION,
    SETORES,
    Sector,
    classify,
    normalize_label,
    unknown_sector_labels,
)
from b3_assets.source.validate import validate_portfolio
from b3_assets_tests.replica import api_page, csv_bytes, generate_portfolio
from b3_assets_tests.replica.portfolios import (
    OTHER_SECTORS,
    SEGMENT2_SAMPLE,
    UNIVERSE,
    ReplicaPortfolio,
    load_segment2_sample,
)

NOW = datetime(2025, 3, 5, 9, 30, tzinfo=UTC)
DAY = date(2025, 3, 5)
BASE = "http://b3.test"
URL = portfolio_url(BASE, 1)  # segment 2: what b3-pipeline asks
CSV_NAME = "IBOVDia_05-03-25.csv"


@pytest.fixture
def good() -> ReplicaPortfolio:
    return generate_portfolio(DAY)


def _payload(p: ReplicaPortfolio, doc: dict | None = None, url: str = URL) -> RawPayload:
    doc = doc or api_page(p, page_number=1, page_size=120, segment="2")
    return RawPayload("api", url, NOW, (("page-001.json", json.dumps(doc).encode()),))


# --- the mapping ----------------------------------------------------------------------------

def test_eleven_sectors_as_design_names_them() -> None:
    assert SETORES == (
        "Bens Industriais", "Comunicações", "Consumo Cíclico", "Consumo não Cíclico",
        "Financeiro", "Materiais Básicos", "Petróleo, Gás e Biocombustíveis", "Saúde",
        "Tecnologia da Informação", "Utilidade Pública", "Outros")


@pytest.mark.parametrize("label,sector", [
    # B3's inconsistent abbreviations of one sector, from the same answer.
    ("Cons N  Básico / Alimentos Processados", ("Consumo não Cíclico", "Alimentos Processados")),
    ("Cons N Ciclico/Agropecuária", ("Consumo não Cíclico", "Agropecuária")),
    ("Cons N Cíclico / Bebidas", ("Consumo não Cíclico", "Bebidas")),
    ("Financ e Outros / Interms Financs", ("Financeiro", "Intermediários Financeiros")),
    ("Financeiro e Outros/Serviços Financeiros Diversos",
     ("Financeiro", "Serviços Financeiros Diversos")),
    ("Financ e Outros / Previd  Seguros", ("Financeiro", "Previdência e Seguros")),
    ("Diversos", ("Consumo Cíclico", "Diversos")),
    ("Telecomunicação", ("Comunicações", "Telecomunicações")),
    ("Petróleo, Gás e Biocombustíveis",
     ("Petróleo, Gás e Biocombustíveis", "Petróleo, Gás e Biocombustíveis")),
    ("Bens Indls/Transporte", ("Bens Industriais", "Transporte")),
    ("Bens Indls / Mat Transporte", ("Bens Industriais", "Material de Transporte")),
    ("Saúde/Comércio Distr.", ("Saúde", "Comércio e Distribuição")),
    ("Saúde/SM Hosp An.Diag",
     ("Saúde", "Serviços Médico-Hospitalares, Análises e Diagnósticos")),
    ("Tec.Informação/Programas Servs", ("Tecnologia da Informação", "Programas e Serviços")),
    ("Utilidade Públ / Água Saneamento", ("Utilidade Pública", "Água e Saneamento")),
    # Full names, odd spacing and case are the same labels.
    ("Consumo não Cíclico / Bebidas", ("Consumo não Cíclico", "Bebidas")),
    ("  mats básicos   /   sid metalurgia ", ("Materiais Básicos", "Siderurgia e Metalurgia")),
    ("Financ e Outros / Outros", ("Outros", "Outros")),
])
def test_known_labels(label: str, sector: tuple[str, str]) -> None:
    assert classify(label) == Sector(*sector)


@pytest.mark.parametrize("label", [
    "Criptoativos / Tokens",  # a sector B3 never had
    "Bens Indls / Tokens",  # a known sector, an unknown subsector
    "Saúde / Energ Elétrica",  # both known, but not a pair of B3's classification
    "Cons N Básico",  # a sector with no subsector
    "", "   ", None,
])
def test_unknown_labels(label: str | None) -> None:
    assert classify(label) is None


def test_every_label_the_replica_serves_is_mapped() -> None:
    """Without the samples: the replica's labels are B3's (see the next test)."""
    labels = {s for *_, s in UNIVERSE} | set(OTHER_SECTORS.values())
    unmapped = sorted(label for label in labels if classify(label) is None)
    assert unmapped == []
    assert {classify(label).setor for label in labels} == set(SETORES) - {"Outros"}


def test_every_label_in_the_real_sample_is_mapped(samples_dir: Path) -> None:
    doc = json.loads((samples_dir / SEGMENT2_SAMPLE).read_text(encoding="utf-8"))
    labels = sorted({r["segment"] for r in doc["results"]})
    assert len(labels) >= 30
    assert [label for label in labels if classify(label) is None] == []
    for label in labels:
        sector = classify(label)
        assert sector is not None and sector.subsetor in CLASSIFICATION[sector.setor]
    # The replica serves each sampled code under the label B3 gave it.
    served = {code: label for code, _, _, label in UNIVERSE}
    assert {r["cod"]: r["segment"] for r in doc["results"] if r["cod"] in served} == {
        code: served[code] for code in served if code in {r["cod"] for r in doc["results"]}}


def test_setor_b3_collapses_runs_of_spaces_only() -> None:
    assert normalize_label("Cons N  Básico / Alimentos Processados") == (
        "Cons N Básico / Alimentos Processados")
    assert normalize_label("Bens Indls/Transporte") == "Bens Indls/Transporte"
    assert normalize_label("  ") is None and normalize_label(None) is None


# --- landing ----------------------------------------------------------------------------------

def test_the_sector_view_lands_label_sector_and_subsector(good: ReplicaPortfolio) -> None:
    table = _payload(good).portfolio(DAY).to_landing_table()
    assert table.schema.equals(LANDING_SCHEMA)
    assert LANDING_SCHEMA.names[-3:] == ["setor_b3", "setor", "subsetor"]
    assert all(LANDING_SCHEMA.field(n).nullable for n in ("setor_b3", "setor", "subsetor"))
    rows = {r["codigo"]: r for r in table.to_pylist()}
    for row in good.rows:
        landed = rows[row.cod]
        assert landed["setor_b3"] == " ".join(row.sector.split())
        expected = classify(row.sector)
        assert expected is not None
        assert (landed["setor"], landed["subsetor"]) == expected
    assert unknown_sector_labels(table) == []


def test_an_unknown_label_lands_with_null_sector_and_is_named(good: ReplicaPortfolio) -> None:
    rows = list(good.rows)
    rows[0] = replace(rows[0], sector="Criptoativos  /  Tokens")
    rows[1] = replace(rows[1], sector="Criptoativos  /  Tokens")
    table = _payload(good.with_rows(rows)).portfolio(DAY).to_landing_table()
    landed = {r["codigo"]: r for r in table.to_pylist()}
    for row in rows[:2]:
        assert landed[row.cod]["setor_b3"] == "Criptoativos / Tokens"
        assert landed[row.cod]["setor"] is None and landed[row.cod]["subsetor"] is None
    assert landed[rows[2].cod]["setor"] is not None
    assert unknown_sector_labels(table) == ["Criptoativos / Tokens"]


def test_a_csv_import_lands_with_null_sectors(good: ReplicaPortfolio) -> None:
    payload = RawPayload("csv", "/tmp/" + CSV_NAME, NOW, ((CSV_NAME, csv_bytes(good)),))
    table = payload.portfolio(DAY).to_landing_table()
    assert table.schema.equals(LANDING_SCHEMA)
    for name in ("setor_b3", "setor", "subsetor"):
        assert table.column(name).null_count == table.num_rows
    assert unknown_sector_labels(table) == []


def test_an_archived_code_view_payload_still_lands(good: ReplicaPortfolio) -> None:
    """Archived before the sector view (segment 1 in its URL): null sectors, no new rule."""
    old = _payload(good, api_page(good, page_number=1, page_size=120),
                   url=portfolio_url(BASE, 1, segment="1"))
    assert not old.asked_by_sector
    table = old.portfolio(DAY).to_landing_table()
    assert table.column("setor_b3").null_count == table.num_rows


def test_landing_files_older_than_the_sector_columns_read_with_nulls(
        good: ReplicaPortfolio) -> None:
    table = _payload(good).portfolio(DAY).to_landing_table()
    old = table.drop_columns(["setor_b3", "setor", "subsetor"])
    buf = io.BytesIO()
    pq.write_table(old, buf)
    back = conform_landing(pq.read_table(io.BytesIO(buf.getvalue())))
    assert back.schema.equals(LANDING_SCHEMA)
    assert back.drop_columns(["setor_b3", "setor", "subsetor"]).equals(old)
    assert back.column("setor").null_count == back.num_rows
    assert conform_landing(table).equals(table)  # today's files unchanged
    with pytest.raises(ValueError, match="no column 'codigo'"):
        conform_landing(old.drop_columns(["codigo"]))


def test_unknown_labels_of_tables_without_sectors() -> None:
    assert unknown_sector_labels(pa.table({"codigo": ["PETR4"]})) == []


# --- the sector view's validation rules -------------------------------------------------------

def test_a_subsector_total_that_does_not_match_is_refused_naming_it(
        good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120, segment="2")
    label = doc["results"][0]["segment"]
    total = doc["results"][0]["partAcum"]
    for row in doc["results"]:
        if row["segment"] == label:
            row["partAcum"] = "99,999"
    with pytest.raises(B3PayloadError) as err:
        _payload(good, doc).portfolio(DAY)
    msg = str(err.value)
    assert URL in msg and DAY.isoformat() in msg
    assert (f"subsector totals (partAcum) that do not match their rows: {label!r}: partAcum "
            f"99.999 but its") in msg
    assert f"add up to {total.replace(',', '.')}" in msg


def test_rows_of_one_subsector_must_agree_on_its_total(good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120, segment="2")
    labels = [r["segment"] for r in doc["results"]]
    i = next(i for i, label in enumerate(labels) if labels.count(label) > 1)
    doc["results"][i]["partAcum"] = "0,001"
    with pytest.raises(B3PayloadError, match=r"rows disagree on partAcum \(0.001, "):
        _payload(good, doc).portfolio(DAY)


def test_every_row_needs_a_sector_label(good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120, segment="2")
    code = doc["results"][4]["cod"]
    doc["results"][4]["segment"] = None
    with pytest.raises(B3PayloadError, match=f"without a sector label .*: {code}"):
        _payload(good, doc).portfolio(DAY)


def test_a_sector_view_without_any_label_is_refused(good: ReplicaPortfolio) -> None:
    """Asked with segment 2 (the URL says so), B3 answered with no labels: refused, so a
    change on B3's side never lands null sectors silently."""
    doc = api_page(good, page_number=1, page_size=120)  # the code view's body
    with pytest.raises(B3PayloadError) as err:
        _payload(good, doc).portfolio(DAY)
    assert "constituents without a sector label" in str(err.value)
    assert "… and" in str(err.value)  # the list is bounded


def test_the_sector_rules_are_the_sector_views_only(good: ReplicaPortfolio) -> None:
    """Judged from the answer when the URL does not say (the browser's page URL)."""
    plain = parse_api_pages([json.dumps(api_page(good, page_number=1, page_size=120))],
                            BASE, NOW)
    assert not plain.by_sector
    validate_portfolio(plain)
    doc = api_page(good, page_number=1, page_size=120, segment="2")
    doc["results"][0]["partAcum"] = "77,000"
    by_content = parse_api_pages([json.dumps(doc)], BASE, NOW)
    assert by_content.by_sector
    with pytest.raises(B3PayloadError, match="partAcum 77.000"):
        validate_portfolio(by_content)


def test_a_table_read_off_the_page_without_totals_is_not_judged_on_them(
        good: ReplicaPortfolio) -> None:
    doc = api_page(good, page_number=1, page_size=120, segment="2")
    for row in doc["results"]:
        row.pop("partAcum")
    portfolio = validate_portfolio(parse_api_pages([json.dumps(doc)], BASE, NOW))
    assert all(c.part_acum is None and c.setor_b3 for c in portfolio.constituents)


def test_the_recorded_sector_view_passes_every_rule(samples_dir: Path) -> None:
    """B3's real segment 2 answer (2025-04-07), served in pt-br by the replica."""
    served = load_segment2_sample(samples_dir / SEGMENT2_SAMPLE)
    portfolio = _payload(served).portfolio(date(2025, 4, 7))
    assert len(portfolio.constituents) == 87
    assert portfolio.constituents == served.constituents()
    table = portfolio.to_landing_table()
    assert unknown_sector_labels(table) == []
    assert table.column("setor").null_count == 0
