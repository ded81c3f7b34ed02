"""Settings fail at start, named; the catalog file is portable and heals; a missing lake says so."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from b3_assets.cli import main
from b3_assets.platform.catalog import DuckDBCatalog, QueryError
from b3_assets.settings import Settings, SettingsError
from b3_assets_tests.support.local_lake import land


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("B3_HTTP_TIMEOUT", "abc", "B3_HTTP_TIMEOUT='abc': expected a number of seconds"),
        ("B3_HTTP_RETRIES", "-1", "B3_HTTP_RETRIES='-1': expected a whole number from 0 to 10"),
        ("B3_DATA_DIR", "", "B3_DATA_DIR is empty"),
        ("B3_BASE_URL", "sistemaswebb3", "B3_BASE_URL='sistemaswebb3' is not an http(s) URL"),
        ("B3_ENV", "prod", "B3_ENV='prod' is not one of local, aws"),
        ("B3_FETCH", "curl", "B3_FETCH='curl' is not one of auto, api, browser"),
        ("B3_SENSOR_INTERVAL", "0", "B3_SENSOR_INTERVAL='0'"),
    ],
)
def test_a_bad_setting_names_the_variable_and_what_it_accepts(name, value, words):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value})
    assert words in str(err.value)


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    afile = tmp_path / "lake.txt"
    afile.write_text("x")
    with pytest.raises(SettingsError, match="is a file, not a folder"):
        Settings.from_env({"B3_DATA_DIR": str(afile)})
    with pytest.raises(SettingsError, match="needs B3_BUCKET"):
        Settings.from_env({"B3_ENV": "aws"})


def test_query_on_a_missing_lake_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path / "nowhere"))
    assert main(["query", "SELECT count(*) FROM b3_etl_soma_acao"]) == 1
    assert "no lake at" in capsys.readouterr().err
    with pytest.raises(QueryError, match="set B3_DATA_DIR"):
        DuckDBCatalog(tmp_path / "nowhere").query("SELECT 1")
    monkeypatch.setenv("B3_HTTP_TIMEOUT", "abc")
    assert main(["query", "SELECT 1"]) == 2
    assert "B3_HTTP_TIMEOUT" in capsys.readouterr().err


def _count(catalog: Path) -> int:
    with duckdb.connect(str(catalog), read_only=True) as con:
        return con.execute("SELECT count(*) FROM b3_etl_soma_acao").fetchone()[0]


def test_a_moved_lake_gets_its_catalog_view_rewritten(tmp_path):
    from datetime import date

    land(tmp_path / "lake", date(2025, 3, 18))
    rows = _count(tmp_path / "lake" / "catalog.duckdb")
    assert rows > 50
    shutil.move(tmp_path / "lake", tmp_path / "moved")
    DuckDBCatalog(tmp_path / "moved").refresh()
    assert _count(tmp_path / "moved" / "catalog.duckdb") == rows
    shutil.copytree(tmp_path / "moved", tmp_path / "copy")
    shutil.rmtree(tmp_path / "moved")
    DuckDBCatalog(tmp_path / "copy").refresh()  # the copy reads itself, not the original
    assert _count(tmp_path / "copy" / "catalog.duckdb") == rows


def test_a_corrupt_catalog_file_is_moved_aside_and_rebuilt(tmp_path, caplog):
    from datetime import date

    land(tmp_path, date(2025, 3, 18))
    (tmp_path / "catalog.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    DuckDBCatalog(tmp_path).refresh()
    assert _count(tmp_path / "catalog.duckdb") > 50
    assert list(tmp_path.glob("catalog.duckdb.corrupt-*"))
    assert "moved to" in caplog.text


def test_query_on_a_copied_lake_repoints_catalog_duckdb_for_any_client(
        tmp_path, monkeypatch, capsys):
    """Before: a copy's catalog.duckdb, opened by any DuckDB client, read the original lake;
    `query` never rewrote it."""
    from datetime import date

    land(tmp_path / "lake", date(2025, 3, 18))
    land(tmp_path / "lake", date(2025, 3, 19))
    land(tmp_path / "copy", date(2025, 3, 18))
    one_date = _count(tmp_path / "copy" / "catalog.duckdb")
    # The user copies the catalog file from the first lake (or the whole lake, then prunes it).
    shutil.copy(tmp_path / "lake" / "catalog.duckdb", tmp_path / "copy" / "catalog.duckdb")
    assert _count(tmp_path / "copy" / "catalog.duckdb") > one_date  # reads the other lake
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path / "copy"))
    assert main(["query", "SELECT count(*) AS n FROM b3_etl_soma_acao"]) == 0
    assert _count(tmp_path / "copy" / "catalog.duckdb") == one_date  # reads itself now


def test_a_catalog_held_by_another_client_is_left_with_a_warning_that_says_how(
        tmp_path, caplog):
    from datetime import date

    land(tmp_path, date(2025, 3, 18))
    (tmp_path / "catalog.duckdb").unlink()
    holder = subprocess.Popen(  # a user's DuckDB shell in another process, read-write
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(120)", str(tmp_path / "catalog.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        DuckDBCatalog(tmp_path).refresh()
    finally:
        holder.kill()
        holder.wait(10)
    assert "held open by another DuckDB client" in caplog.text
    assert "b3-pipeline query" in caplog.text
    DuckDBCatalog(tmp_path).refresh()  # closed: the next command writes the views
    assert _count(tmp_path / "catalog.duckdb") > 50


def test_a_corrupt_year_file_breaks_only_its_own_table_and_is_named(tmp_path, caplog):
    """Before: a corrupt marts year file moved a healthy catalog.duckdb aside on every run
    and broke every query, b3_etl_soma_acao's too, without naming the file."""
    from datetime import date

    land(tmp_path, date(2025, 3, 18))
    rows = _count(tmp_path / "catalog.duckdb")
    marts = tmp_path / "marts" / "ibov_indicadores"
    marts.mkdir(parents=True, exist_ok=True)
    corrupt = marts / "ano=2024.parquet"
    corrupt.write_bytes(b"PAR1 torn by a crash")
    catalog = DuckDBCatalog(tmp_path)
    catalog.refresh()
    assert not list(tmp_path.glob("catalog.duckdb.corrupt-*"))  # the catalog was healthy
    assert str(corrupt) in caplog.text and "is corrupt" in caplog.text
    assert _count(tmp_path / "catalog.duckdb") == rows
    result = catalog.query("SELECT count(*) AS n FROM b3_etl_soma_acao")
    assert result.rows == [(rows,)]
    catalog.query("SELECT count(*) AS n FROM ibov_indicadores")  # the other years still read
