"""The refine transform on DuckDB and the local job's lake output, checked against values
computed by hand (Decimal arithmetic) from real B3 portfolios and from generated ones."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_assets.source.parse import parse_csv
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from glue.layout import CURRENT_RUN_FILE, landing_date_from_key
from glue.local_job import PART_FILE_NAME, LandingListing, run_local_refine
from glue.transform import (
    REFINED_FILE_SCHEMA,
    REFINED_SCHEMA,
    duckdb_sql,
    previous_landing_date,
    refine_duckdb,
    spark_sql,
)

REPO = Path(__file__).resolve().parents[2]
PROCESSADO_EM = datetime(2025, 3, 5, 12, 30, 15, 123456, tzinfo=UTC)
D0228 = date(2025, 2, 28)
D0305 = date(2025, 3, 5)


def read_refined_date(lake: Path, data_carteira: date) -> dict[str, dict[str, Any]]:
    """The refined rows of one date as the lake holds them, keyed by the Acao folder."""
    folder = lake / "refined" / f"DataCarteira={data_carteira.isoformat()}"
    rows: dict[str, dict[str, Any]] = {}
    for part in sorted(folder.iterdir()):
        if part.name == CURRENT_RUN_FILE:
            continue
        assert part.name.startswith("Acao="), part
        (run,) = part.iterdir()  # one published run per issuer, older ones removed
        assert run.name.startswith("run=")
        files = sorted(run.iterdir())
        assert [f.name for f in files] == [PART_FILE_NAME]
        table = pq.ParquetFile(files[0]).read()  # the file alone, no partition discovery
        assert table.schema == REFINED_FILE_SCHEMA
        assert table.num_rows == 1
        rows[part.name.removeprefix("Acao=")] = table.to_pylist()[0]
    return rows


def expected_rows(
    current: pa.Table, previous: pa.Table | None, processado_em: datetime
) -> list[dict[str, Any]]:
    """The refined contract computed in plain Python from the landing rows."""

    def by_issuer(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in table.to_pylist():
            groups[row["codigo"][:4]].append(row)
        return groups

    today = by_issuer(current)
    before = by_issuer(previous) if previous is not None else {}
    d = current.column("data_carteira")[0].as_py()
    d_prev = previous.column("data_carteira")[0].as_py() if previous is not None else None
    out = []
    for acao in sorted(today):
        rows = today[acao]
        part = sum((r["participacao_pct"] for r in rows), Decimal(0))
        prev = (
            sum((r["participacao_pct"] for r in before[acao]), Decimal(0))
            if acao in before
            else None
        )
        out.append(
            {
                "empresa": min(r["acao"] for r in rows),
                "tickers": ",".join(sorted(r["codigo"] for r in rows)),
                "qtd_classes": len(rows),
                "qtd_teorica_total": sum(r["qtde_teorica"] for r in rows),
                "participacao_total_pct": part,
                "data_carteira_anterior": d_prev,
                "dias_desde_carteira_anterior": (d - d_prev).days if d_prev else None,
                "variacao_participacao_pp": part - prev if prev is not None else None,
                "processado_em": processado_em,
                "setor": _min_present(r.get("setor") for r in rows),
                "subsetor": _min_present(r.get("subsetor") for r in rows),
                "DataCarteira": d.isoformat(),
                "Acao": acao,
            }
        )
    return out


def _min_present(values: Any) -> str | None:
    """SQL's min(): the least non-null value, None when all are null."""
    present = [v for v in values if v is not None]
    return min(present) if present else None


# --- real B3 portfolios --------------------------------------------------------------------


def real_landing(samples_dir: Path, name: str) -> pa.Table:
    path = samples_dir / "csv_utf8_no_title" / name
    portfolio = parse_csv(path.read_bytes(), str(path), PROCESSADO_EM, None)
    return portfolio.to_landing_table()


def test_real_portfolio_refined_by_hand(samples_dir: Path, tmp_path: Path) -> None:
    """IBOV of 2025-03-05 (first session after Carnival) against 2025-02-28."""
    write_landing(tmp_path, real_landing(samples_dir, "IBOVDia_28-02-25.csv"))
    write_landing(tmp_path, real_landing(samples_dir, "IBOVDia_05-03-25.csv"))

    outcome = run_local_refine(tmp_path, D0305, PROCESSADO_EM)
    rows = read_refined_date(tmp_path, D0305)

    assert outcome.data_carteira_anterior == D0228
    assert outcome.rows == len(rows) == 84  # 87 classes; PETR, ELET, BBDC have two
    assert outcome.issuers == sorted(rows)
    # PETR3 4,438 + PETR4 8,021 on 05/03; PETR3 4,387 + PETR4 8,039 on 28/02.
    assert rows["PETR"] == {
        "empresa": "PETROBRAS",
        "tickers": "PETR3,PETR4",
        "qtd_classes": 2,
        "qtd_teorica_total": 2_255_782_178 + 4_431_132_660,
        "participacao_total_pct": Decimal("12.459"),
        "data_carteira_anterior": D0228,
        "dias_desde_carteira_anterior": 5,
        "variacao_participacao_pp": (Decimal("4.438") + Decimal("8.021"))
        - (Decimal("4.387") + Decimal("8.039")),
        "processado_em": PROCESSADO_EM,
        "setor": None,  # a CSV has no sectors
        "subsetor": None,
    }
    assert rows["PETR"]["variacao_participacao_pp"] == Decimal("0.033")
    # ELET3 3,807 + ELET6 0,569 against 3,650 + 0,550.
    assert rows["ELET"]["participacao_total_pct"] == Decimal("4.376")
    assert rows["ELET"]["variacao_participacao_pp"] == Decimal("0.176")
    assert rows["ELET"]["qtd_teorica_total"] == 1_977_170_723 + 268_875_696
    # Single class: VALE3 11,867 against 11,916; a unit: BPAC11 2,048 against 2,044.
    assert rows["VALE"]["tickers"] == "VALE3"
    assert rows["VALE"]["qtd_classes"] == 1
    assert rows["VALE"]["qtd_teorica_total"] == 4_270_903_023
    assert rows["VALE"]["variacao_participacao_pp"] == Decimal("-0.049")
    assert rows["BPAC"]["tickers"] == "BPAC11"
    assert rows["BPAC"]["variacao_participacao_pp"] == Decimal("0.004")
    # GOAU (GERDAU MET) and GGBR (GERDAU) are distinct issuers.
    assert rows["GOAU"]["empresa"] == "GERDAU MET"
    assert rows["GGBR"]["empresa"] == "GERDAU"
    # The whole portfolio is kept: B3's footer totals.
    assert sum(r["participacao_total_pct"] for r in rows.values()) == Decimal("100.000")
    assert sum(r["qtd_teorica_total"] for r in rows.values()) == 98_454_079_581


# --- generated portfolios ------------------------------------------------------------------


def test_issuers_joining_and_leaving(tmp_path: Path) -> None:
    """AZUL absent on the previous date, GOLL only then, ITUB gains a class, USIM's two
    classes carry different company names (empresa is the smallest)."""
    previous = landing_table(D0228, seed=3, drop={"AZUL"}, add={"GOLL4"})
    current = landing_table(D0305, seed=3, add={"ITUB3", "USIM3"})
    write_landing(tmp_path, previous)
    write_landing(tmp_path, current)

    outcome = run_local_refine(tmp_path, D0305, PROCESSADO_EM)
    rows = read_refined_date(tmp_path, D0305)

    want = expected_rows(current, previous, PROCESSADO_EM)
    assert outcome.issuers == [w["Acao"] for w in want] == sorted(rows)
    for w in want:
        acao, day = w.pop("Acao"), w.pop("DataCarteira")
        assert day == "2025-03-05"
        assert rows[acao] == w, acao
    assert "GOLL" not in rows
    assert rows["AZUL"]["variacao_participacao_pp"] is None
    assert rows["AZUL"]["data_carteira_anterior"] == D0228  # the date is there, the issuer not
    assert rows["ITUB"]["tickers"] == "ITUB3,ITUB4"
    assert rows["ITUB"]["qtd_classes"] == 2
    assert rows["USIM"]["empresa"] == "USIMINAS"
    assert rows["USIM"]["tickers"] == "USIM3,USIM5"
    # By hand for PETR: the sum of its two classes, today minus the previous date.
    part = {r["codigo"]: r["participacao_pct"] for r in current.to_pylist()}
    part_prev = {r["codigo"]: r["participacao_pct"] for r in previous.to_pylist()}
    assert rows["PETR"]["participacao_total_pct"] == part["PETR3"] + part["PETR4"]
    assert rows["PETR"]["variacao_participacao_pp"] == (part["PETR3"] + part["PETR4"]) - (
        part_prev["PETR3"] + part_prev["PETR4"]
    )
    assert sum(r["participacao_total_pct"] for r in rows.values()) == Decimal("100.000")


def test_no_previous_date_gives_nulls(tmp_path: Path) -> None:
    current = landing_table(D0305, seed=5)
    path = write_landing(tmp_path, current)

    table = refine_duckdb(path, None, D0305, None, PROCESSADO_EM)

    assert table.schema == REFINED_SCHEMA
    assert table.to_pylist() == expected_rows(current, None, PROCESSADO_EM)
    for column in ("data_carteira_anterior", "dias_desde_carteira_anterior"):
        assert table.column(column).null_count == table.num_rows
    assert table.column("variacao_participacao_pp").null_count == table.num_rows
    outcome = run_local_refine(tmp_path, D0305, PROCESSADO_EM)
    assert outcome.data_carteira_anterior is None


def test_output_types_are_exact(tmp_path: Path) -> None:
    prev = write_landing(tmp_path, landing_table(D0228))
    cur = write_landing(tmp_path, landing_table(D0305))

    table = refine_duckdb(cur, prev, D0305, D0228, PROCESSADO_EM)

    assert table.schema == REFINED_SCHEMA
    assert [str(f.type) for f in table.schema] == [
        "string",
        "string",
        "int32",
        "int64",
        "decimal128(9, 3)",
        "date32[day]",
        "int32",
        "decimal128(9, 3)",
        "timestamp[us, tz=UTC]",
        "string",
        "string",
        "string",
        "string",
    ]
    assert table.column("Acao").to_pylist() == sorted(table.column("Acao").to_pylist())
    assert set(table.column("DataCarteira").to_pylist()) == {"2025-03-05"}
    assert set(table.column("dias_desde_carteira_anterior").to_pylist()) == {5}


def test_previous_landing_date_is_latest_earlier_one_across_gaps(tmp_path: Path) -> None:
    dates = [date(2025, 3, 10), date(2025, 2, 3), date(2025, 2, 27), date(2025, 3, 5)]
    assert previous_landing_date(dates, date(2025, 3, 5)) == date(2025, 2, 27)
    assert previous_landing_date(dates, date(2025, 3, 7)) == date(2025, 3, 5)
    assert previous_landing_date(dates, date(2025, 3, 11)) == date(2025, 3, 10)
    assert previous_landing_date(dates, date(2025, 2, 3)) is None
    assert previous_landing_date([], date(2025, 2, 3)) is None

    # In the lake: 28/02 is missing (a gap), and a later date exists (a backfill).
    for d in (date(2025, 2, 26), date(2025, 2, 27), D0305, date(2025, 3, 6)):
        write_landing(tmp_path, landing_table(d))
    (tmp_path / "landing/ibov/dt=2025-03-01").mkdir()  # an empty folder is not a date
    (tmp_path / "landing/ibov/dt=2025-03-02").mkdir()
    (tmp_path / "landing/ibov/dt=2025-03-02/other.parquet").write_bytes(b"x")

    outcome = run_local_refine(tmp_path, D0305, PROCESSADO_EM)

    assert outcome.data_carteira_anterior == date(2025, 2, 27)
    rows = read_refined_date(tmp_path, D0305)
    assert {r["dias_desde_carteira_anterior"] for r in rows.values()} == {6}


def test_rerun_replaces_the_whole_date(tmp_path: Path) -> None:
    write_landing(tmp_path, landing_table(D0228))
    write_landing(tmp_path, landing_table(D0305))
    write_landing(tmp_path, landing_table(date(2025, 3, 6)))
    run_local_refine(tmp_path, date(2025, 3, 6), PROCESSADO_EM)
    first = run_local_refine(tmp_path, D0305, PROCESSADO_EM)
    assert "AZUL" in first.issuers

    # B3 republished 05/03 without AZUL; the date is refined again, later.
    write_landing(tmp_path, landing_table(D0305, drop={"AZUL"}))
    later = datetime(2025, 3, 6, 9, 0, tzinfo=UTC)
    second = run_local_refine(tmp_path, D0305, later)

    refined = tmp_path / "refined"
    assert "AZUL" not in second.issuers
    assert not (refined / "DataCarteira=2025-03-05" / "Acao=AZUL").exists()
    rows = read_refined_date(tmp_path, D0305)
    assert sorted(rows) == second.issuers
    assert {r["processado_em"] for r in rows.values()} == {later}
    # No staging or old folders left, and the other date untouched.
    assert sorted(p.name for p in refined.iterdir() if not p.name.startswith(".")) == [
        "DataCarteira=2025-03-05",
        "DataCarteira=2025-03-06",
    ]
    assert {r["processado_em"] for r in read_refined_date(tmp_path, date(2025, 3, 6)).values()} == {
        PROCESSADO_EM
    }


def test_same_input_same_bytes(tmp_path: Path) -> None:
    lakes = [tmp_path / "a", tmp_path / "b"]
    for lake in lakes:
        write_landing(lake, landing_table(D0228, seed=9))
        write_landing(lake, landing_table(D0305, seed=9))
        run_local_refine(lake, D0305, PROCESSADO_EM)
    run_local_refine(lakes[1], D0305, PROCESSADO_EM)  # a rerun too

    def files(lake: Path) -> dict[str, bytes]:
        base = lake / "refined"
        return {
            re.sub(r"/run=[^/]+/", "/", p.relative_to(base).as_posix()): p.read_bytes()
            for p in base.rglob("*.parquet")
        }

    assert files(lakes[0]) == files(lakes[1])
    assert len(files(lakes[0])) == 84


def test_missing_or_misdated_landing_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="2025-03-05"):
        run_local_refine(tmp_path, D0305, PROCESSADO_EM)

    # A landing file whose rows carry another date is never filed under this one.
    misdated = landing_table(D0228)
    path = tmp_path / "landing/ibov/dt=2025-03-05/ibov.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(misdated, path)
    with pytest.raises(ValueError, match="no rows dated 2025-03-05"):
        run_local_refine(tmp_path, D0305, PROCESSADO_EM)
    assert not (tmp_path / "refined" / "DataCarteira=2025-03-05").exists()

    with pytest.raises(ValueError, match="timezone-aware"):
        refine_duckdb(path, None, D0305, None, datetime(2025, 3, 5, 12))
    with pytest.raises(ValueError, match="give both or neither"):
        refine_duckdb(path, None, D0305, D0228, PROCESSADO_EM)


def test_landing_date_from_key() -> None:
    assert landing_date_from_key("landing/ibov/dt=2025-03-05/ibov.parquet") == D0305
    assert landing_date_from_key("/landing/ibov/dt=2025-03-05/ibov.parquet") == D0305
    for key in (
        "landing/ibov/dt=2025-03-05/other.parquet",
        "landing/ibov/dt=2025-02-30/ibov.parquet",
        "landing/ibov/dt=2025-3-5/ibov.parquet",
        "landing/ibov/dt=2025-03-05/sub/ibov.parquet",
        "raw/ibov/dt=2025-03-05/ibov.parquet",
        "landing/ibov/dt=2025-03-05/ibov.parquet.tmp",
    ):
        assert landing_date_from_key(key) is None, key


def test_sql_is_one_spark_statement_transpiled_for_duckdb() -> None:
    spark = spark_sql()
    assert "collect_list" in spark and "datediff" in spark
    duck = duckdb_sql()
    assert duck is duckdb_sql()  # transpiled once, cached
    assert "collect_list" not in duck.lower()


def test_transform_loads_its_sql_from_a_zip(tmp_path: Path) -> None:
    """Glue ships glue/ as a zip via --extra-py-files: refine.sql must load from there, and
    no module of glue/ may need b3_assets."""
    archive = tmp_path / "glue.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((REPO / "glue").iterdir()):
            if path.suffix in {".py", ".sql"}:
                zf.write(path, f"glue/{path.name}")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "sys.modules['b3_assets'] = None;"  # glue/ ships alone: importing b3_assets must fail
        "import glue.transform as t, glue.catalog, glue.job, glue.local_job;"
        "assert t.__file__.startswith(sys.argv[1]), t.__file__;"
        "print(len(t.spark_sql()), len(t.duckdb_sql()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(archive)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == str(len(spark_sql()))


def test_a_run_sees_a_landing_date_added_while_it_runs(tmp_path: Path) -> None:
    """The run's listing is refreshed when a date folder appears (one stat per date), so a
    gap filled during a long run is the previous date of the dates refined after it."""
    write_landing(tmp_path, landing_table(D0228))
    listing = LandingListing(tmp_path, None)
    assert listing.now() == [D0228]
    write_landing(tmp_path, landing_table(D0305))
    assert listing.now() == [D0228, D0305]
