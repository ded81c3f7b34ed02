"""A corrupt mart year file (torn by a crash, a disk, a hand edit) is named, rebuilt by the next
marts run from every landing date of its year, and reported; it never spreads to other tables,
never moves a healthy catalog.duckdb aside, and queries of the other tables keep answering.
Before: materializing the marts failed with "Could not open Parquet input source '<Buffer>'",
naming no file, and the year stayed broken."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from b3_assets.keys import MART_KEYS
from b3_assets.marts.assets import ibov_marts
from b3_assets.marts.compute import build_marts
from b3_assets.marts.errors import CorruptYearFile
from b3_assets.marts.store import MartStore
from b3_assets.platform.catalog import DuckDBCatalog
from b3_assets.storage.lake import LocalLake, S3Lake
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.marts.test_marts import (
    GENERATED,
    _resources,
    expected_all,
    generated_tables,
    land,
    stored,
)
from b3_assets_tests.support.local_lake import land as land_through_the_landing_step
from b3_assets_tests.support.moto_server import MotoServer, unique_name, use_moto
from glue.layout import MART_NAMES, landing_key, mart_year_key

GARBAGE = b"PAR1" + b"\x00" * 40 + b"torn by a crash"
LAST = date(2025, 1, 7)  # the run's one date: in 2025, like the corrupt file


def _year_bytes(root: Path) -> dict[tuple[str, int], bytes]:
    return {(n, y): (root / mart_year_key(n, y)).read_bytes() for n in MART_NAMES
            for y in (2024, 2025)}  # fmt: skip


def test_a_corrupt_year_is_rebuilt_whole_named_and_spreads_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    land(tmp_path, generated_tables())
    lake = LocalLake(tmp_path)
    build_marts(lake, sorted(GENERATED))
    before = _year_bytes(tmp_path)
    corrupt = tmp_path / mart_year_key("ibov_indicadores", 2025)
    corrupt.write_bytes(GARBAGE)
    with pytest.raises(CorruptYearFile, match=str(corrupt)):  # a reader names the file
        MartStore(lake).read("ibov_indicadores", 2025)
    with caplog.at_level(logging.WARNING):
        run = build_marts(lake, [LAST])  # one date of the year: the year is rebuilt whole
    assert set(run.rebuilt) == {("ibov_indicadores", 2025)}
    assert run.computed == [LAST] and run.problems == {}
    assert f"{corrupt} was corrupt" in caplog.text
    assert "rebuilt from the landing files" in caplog.text and "<Buffer>" not in caplog.text
    expected = expected_all(generated_tables())
    assert stored(tmp_path, "ibov_indicadores") == expected["ibov_indicadores"]
    after = _year_bytes(tmp_path)
    # Nothing else rewritten but the run's own date: the other marts' 2025 files hold the same
    # rows (the run replaced 01-07's), every 2024 file is byte for byte as it was.
    assert {k for k in before if before[k] != after[k]} <= {
        ("ibov_indicadores", 2025), ("ibov_movimentos", 2025), ("ibov_setores", 2025)}
    assert all(after[(n, 2024)] == before[(n, 2024)] for n in MART_NAMES)
    for name in ("ibov_movimentos", "ibov_setores"):
        assert stored(tmp_path, name) == expected[name]
    caplog.clear()
    assert build_marts(lake, [LAST]).rebuilt == {}  # healthy again: nothing to rebuild


def test_a_run_of_another_year_rebuilds_it_too(tmp_path: Path) -> None:
    land(tmp_path, generated_tables())
    lake = LocalLake(tmp_path)
    build_marts(lake, sorted(GENERATED))
    (tmp_path / mart_year_key("ibov_setores", 2024)).write_bytes(b"not parquet at all")
    run = build_marts(lake, [LAST])  # a 2025 date: the corrupt 2024 file is found all the same
    assert set(run.rebuilt) == {("ibov_setores", 2024)}
    assert stored(tmp_path, "ibov_setores") == expected_all(generated_tables())["ibov_setores"]


def test_the_landing_step_catalog_and_queries_survive_until_the_marts_rebuild_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The user's path: landing steps and queries around a corrupt mart year file."""
    days = [date(2025, 3, 17), date(2025, 3, 18)]
    land_through_the_landing_step(tmp_path, *days)
    build_marts(LocalLake(tmp_path), days)
    catalog = DuckDBCatalog(tmp_path)
    catalog.refresh()
    corrupt = tmp_path / mart_year_key("ibov_indicadores", 2025)
    corrupt.write_bytes(GARBAGE)
    with caplog.at_level(logging.WARNING):
        land_through_the_landing_step(tmp_path, date(2025, 3, 19))  # the next day lands
    assert not list(tmp_path.glob("catalog.duckdb.corrupt-*"))  # the healthy catalog stays
    refined = catalog.query("SELECT count(DISTINCT DataCarteira) AS n FROM b3_etl_soma_acao")
    assert refined.rows == [(3,)]
    assert catalog.query("SELECT count(*) AS n FROM ibov_setores").rows[0][0] > 0
    assert catalog.query("SELECT count(*) AS n FROM ibov_indicadores").rows == [(0,)]
    assert str(corrupt) in caplog.text
    run = build_marts(LocalLake(tmp_path), [date(2025, 3, 19)])  # the day's marts
    assert set(run.rebuilt) == {("ibov_indicadores", 2025)}
    got = catalog.query("SELECT data_carteira, data_carteira_anterior FROM ibov_indicadores "
                        "ORDER BY 1").rows  # fmt: skip
    assert got == [(date(2025, 3, 17), None), (date(2025, 3, 18), date(2025, 3, 17)),
                   (date(2025, 3, 19), date(2025, 3, 18))]  # fmt: skip
    assert not list(tmp_path.glob("catalog.duckdb.corrupt-*"))


def test_materializing_the_marts_reports_the_rebuilt_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    land(tmp_path, generated_tables())
    build_marts(LocalLake(tmp_path), sorted(GENERATED))
    corrupt = tmp_path / mart_year_key("ibov_movimentos", 2025)
    corrupt.write_bytes(GARBAGE)
    with dg.DagsterInstance.ephemeral() as instance, caplog.at_level(logging.WARNING):
        result = dg.materialize([ibov_marts], resources=_resources(tmp_path), instance=instance,
                                partition_key=LAST.isoformat())  # fmt: skip
    assert result.success
    assert f"{corrupt} was corrupt" in caplog.text  # in the run's log (context.log)
    (movimentos,) = [m for m in result.asset_materializations_for_node("ibov_marts")
                     if m.asset_key == MART_KEYS["ibov_movimentos"]]  # fmt: skip
    assert movimentos.metadata["rebuilt_corrupt_files"].value == f"file://{corrupt}"
    expected = expected_all(generated_tables())["ibov_movimentos"]
    assert stored(tmp_path, "ibov_movimentos") == expected


def test_a_corrupt_year_object_on_s3_is_rebuilt(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_moto(monkeypatch, moto.endpoint)
    s3_lake = S3Lake(unique_name("b3-corrupt-marts"), moto.client("s3"))
    s3_lake.client.create_bucket(Bucket=s3_lake.bucket)
    tables = generated_tables()
    for day, table in tables.items():
        s3_lake.write_bytes(landing_key(day), landing_parquet(table))
    build_marts(s3_lake, sorted(tables))
    key = mart_year_key("ibov_indicadores", 2025)
    s3_lake.write_bytes(key, GARBAGE)
    with caplog.at_level(logging.WARNING):
        run = build_marts(s3_lake, [LAST])
    assert set(run.rebuilt) == {("ibov_indicadores", 2025)}
    assert f"s3://{s3_lake.bucket}/{key} was corrupt" in caplog.text
    store = MartStore(s3_lake)
    got = [r for y in (2024, 2025) for r in store.read("ibov_indicadores", y).to_pylist()]
    assert got == expected_all(tables)["ibov_indicadores"]
