"""import-csv over time: identity by content, the newest import wins, sessions only."""

from __future__ import annotations

import os
import shutil
from datetime import date

from b3_assets.cli import main
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import LocalLake
from b3_assets_tests.replica.portfolios import write_csvs

DAY = date(2025, 3, 5)


def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))


def test_the_same_bytes_under_another_name_are_one_payload(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path)
    (csv,) = write_csvs(tmp_path / "csv", [DAY])
    copy = shutil.copy(csv, tmp_path / "csv" / "IBOVDia_05-03-25 (1).csv")
    assert main(["import-csv", str(csv)]) == 0
    assert main(["import-csv", str(copy)]) == 0
    assert "0 new, 1 already archived" in capsys.readouterr().out
    assert len(RawArchive(LocalLake(tmp_path / "lake")).entries(DAY)) == 1


def test_a_corrected_file_wins_even_with_an_older_mtime(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path)
    (first,) = write_csvs(tmp_path / "a", [DAY])
    assert main(["import-csv", str(first)]) == 0
    corrected = tmp_path / "b" / first.name
    corrected.parent.mkdir()
    text = first.read_bytes().decode("latin-1").splitlines()
    row = text[2].split(";")
    row[1] = "CORRIGIDA SA"  # B3 fixed a company name
    text[2] = ";".join(row)
    corrected.write_bytes(("\n".join(text) + "\n").encode("latin-1"))
    os.utime(corrected, (0, 0))  # modified in 1970: older than anything archived
    assert main(["import-csv", str(corrected)]) == 0
    note = capsys.readouterr().err
    archive = RawArchive(LocalLake(tmp_path / "lake"))
    newest = archive.entries(DAY)[-1]
    assert newest.prefix in note and "landing uses" in note
    portfolio = archive.latest(DAY).portfolio(DAY)
    assert "CORRIGIDA SA" in {c.acao for c in portfolio.constituents}


def test_a_csv_dated_on_a_holiday_or_weekend_is_refused(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path)
    files = write_csvs(tmp_path / "csv", [date(2025, 3, 4), date(2025, 3, 8)])
    assert main(["import-csv", *map(str, files)]) == 1
    err = capsys.readouterr().err
    assert "2025-03-04" in err and "2025-03-08" in err and "not a B3 session" in err
    assert not (tmp_path / "lake" / "raw").exists()


def test_a_parquet_or_zip_file_is_named_for_what_it_is(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path)
    (csv,) = write_csvs(tmp_path / "csv", [DAY])
    parquet = tmp_path / "ibov.parquet"
    parquet.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    xlsx = tmp_path / "IBOVDia_05-03-25.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    assert main(["import-csv", str(parquet), str(xlsx), str(csv)]) == 1
    captured = capsys.readouterr()
    assert "a Parquet file, not B3's CSV download" in captured.err
    assert "a ZIP archive (or an .xlsx workbook)" in captured.err
    assert "no pages" not in captured.err
    assert "imported 1 new" in captured.out  # the good file still goes in


def test_a_utf16_export_and_a_renamed_download_are_read(tmp_path, monkeypatch, capsys):
    """A spreadsheet's "Unicode text" (UTF-16 with BOM) and a download saved as .txt."""
    _env(monkeypatch, tmp_path)
    (csv,) = write_csvs(tmp_path / "csv", [DAY])
    utf16 = tmp_path / "u16" / csv.name
    utf16.parent.mkdir()
    utf16.write_bytes(csv.read_bytes().decode("latin-1").encode("utf-16"))
    assert main(["import-csv", str(utf16)]) == 0
    renamed = tmp_path / "IBOVDia_05-03-25.txt"
    renamed.write_bytes(csv.read_bytes())
    assert main(["import-csv", str(renamed)]) == 0
    assert len(RawArchive(LocalLake(tmp_path / "lake")).entries(DAY)) == 2  # different bytes


def test_a_file_dated_outside_the_calendar_is_refused_and_the_rest_go_in(
        tmp_path, monkeypatch, capsys):
    """Before: a traceback after archiving the first file, which Dagster never recorded, and
    the files after it never read."""
    import dagster as dg

    from b3_assets.keys import RAW

    _env(monkeypatch, tmp_path)
    old, good, future = write_csvs(
        tmp_path / "csv", [date(2022, 12, 29), DAY, date(2099, 3, 5)])
    assert main(["import-csv", str(good), str(old), str(future)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("outside the B3 calendar") == 2
    assert "2022-12-29" in captured.err and "2099-03-05" in captured.err
    assert "Traceback" not in captured.err
    assert "imported 1 new" in captured.out and "recorded 1" in captured.out
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert instance.get_materialized_partitions(RAW) == {DAY.isoformat()}


def test_an_unusable_dagster_home_is_named_before_anything_is_imported(
        tmp_path, monkeypatch, capsys):
    """Before: "imported 1 new", then a 90-line SQLAlchemy traceback that never named
    DAGSTER_HOME, the file archived but never recorded in Dagster."""
    _env(monkeypatch, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(blocker / "home"))
    (csv,) = write_csvs(tmp_path / "csv", [DAY])
    assert main(["import-csv", str(csv)]) == 2
    captured = capsys.readouterr()
    assert "DAGSTER_HOME" in captured.err and str(blocker / "home") in captured.err
    assert "Nothing was imported" in captured.err and "Traceback" not in captured.err
    assert "imported" not in captured.out
    assert not (tmp_path / "lake" / "raw").exists()
