"""Bootstrapping history with import-csv and backfilling it with no network, as users do.

Both commands use the Dagster instance at ``$DAGSTER_HOME`` (import-csv records the raw dates
there): each test gets a throwaway one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from b3_assets.cli import main
from b3_assets.keys import LANDING, RAW
from b3_assets.period_views.period_assets import current_session
from b3_assets.sessions import trading_days
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.landing import landing_dates, read_landing
from b3_assets_tests.replica.portfolios import generate_portfolio, write_csvs
from b3_assets_tests.support.chain import (
    CLOSED_URL,
    failure_message,
    local_platform,
    materialize_range,
)
from b3_assets_tests.support.deployment import (
    LANDING_ONLY,
    RAW_AND_LANDING,
    backfill,
    deployment_env,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def dagster_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway Dagster instance (not the developer's ./.dagster_home), outside the lake."""
    home = tmp_path_factory.mktemp("dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _materialized(home: Path, key: dg.AssetKey) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return sorted(instance.get_materialized_partitions(key))


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return deployment_env(Path(os.environ["DAGSTER_HOME"]), data_dir, **extra)


def _backfill(
    data_dir: Path, first: str, last: str, base_url: str = CLOSED_URL, select: str = RAW_AND_LANDING
) -> subprocess.CompletedProcess[str]:
    """The README's backfill command, as a user types it (its own process, no network)."""
    return backfill(_env(data_dir, B3_BASE_URL=base_url), first, last, select)


def _refined_dates(platform) -> list[str]:
    rows = platform.catalog.query(
        "SELECT DataCarteira, count(*) FROM b3_etl_soma_acao GROUP BY 1 ORDER BY 1"
    ).rows
    return [r[0] for r in rows]


@pytest.mark.slow  # a `dagster asset materialize` subprocess
def test_backfill_of_the_32_real_sample_dates_from_the_archive(tmp_path, samples_dir, monkeypatch):
    files = sorted((samples_dir / "csv_utf8_no_title").glob("IBOVDia_*.csv"))
    assert len(files) == 32
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("B3_ENV", "local")
    assert main(["import-csv", *map(str, files)]) == 0
    proc = _backfill(tmp_path, "2025-02-03", "2025-03-20")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    platform = local_platform(tmp_path)
    expected = [d.isoformat() for d in trading_days(date(2025, 2, 3), date(2025, 3, 20))]
    assert len(expected) == 32  # Carnival (03-04/03) is not a session
    assert [d.isoformat() for d in landing_dates(platform.lake)] == expected
    assert _refined_dates(platform) == expected
    # The first date after Carnival compares with the Friday before it.
    rows = platform.catalog.query(
        "SELECT DISTINCT data_carteira_anterior, dias_desde_carteira_anterior "
        "FROM b3_etl_soma_acao WHERE DataCarteira = ?",
        ["2025-03-05"],
    ).rows
    assert rows == [(date(2025, 2, 28), 5)]


@pytest.mark.slow  # a `dagster asset materialize` subprocess
@pytest.mark.parametrize("select", [RAW_AND_LANDING, LANDING_ONLY])
def test_backfill_on_generated_history(tmp_path, monkeypatch, dagster_home, select):
    """Both README selections: landing alone suffices after import-csv (it reads the archive)."""
    days = trading_days(date(2025, 2, 26), date(2025, 3, 7))  # across Carnival
    keys = [d.isoformat() for d in days]
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    assert main(["import-csv", *map(str, write_csvs(tmp_path / "csv", days))]) == 0
    assert _materialized(dagster_home, RAW) == keys  # imported dates are not "missing"
    proc = _backfill(tmp_path, keys[0], keys[-1], select=select)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    platform = local_platform(tmp_path)
    assert _refined_dates(platform) == keys
    assert _materialized(dagster_home, LANDING) == keys  # the backfill's run, in the UI
    for day in days:
        expected = generate_portfolio(day)
        table = read_landing(platform.lake, day)
        assert table.column("codigo").to_pylist() == sorted(r.cod for r in expected.rows)


@pytest.mark.slow  # a `dagster asset materialize` subprocess
def test_backfill_of_a_date_missing_from_the_archive_fails_naming_it(
    tmp_path, monkeypatch, b3_replica
):
    days = trading_days(date(2025, 3, 5), date(2025, 3, 7))
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    assert main(["import-csv", *map(str, write_csvs(tmp_path / "csv", days[:2]))]) == 0
    # B3 is up but serves only its current portfolio (2025-03-05), never 2025-03-07's.
    proc = _backfill(tmp_path, days[0].isoformat(), days[-1].isoformat(), b3_replica.base_url)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "partition 2025-03-07" in output and "not of 2025-03-07" in output
    assert not (tmp_path / "landing").exists()  # nothing half-done: the step failed whole


@pytest.mark.slow  # a `dagster asset materialize` subprocess
@pytest.mark.any_day  # the period views' partition is the session B3 serves now
@pytest.mark.parametrize(
    ("fault", "moment", "select"),
    [
        # transient: the step waits 10-30 s, then retries
        ("5xx", "waiting before a retry", "raw/ibov_portfolio"),
        # one byte every 0.5 s for minutes
        ("drip", "reading a dripping answer", "raw/ibov_portfolio"),
        # two independent steps: the second must not start once the run is terminated
        ("5xx", "waiting before a retry", "raw/ibov_teorica,raw/ibov_previa"),
    ],
)
def test_sigterm_ends_the_raw_steps_within_seconds(tmp_path, b3_replica, fault, moment, select):
    """A terminated run (the UI's Terminate, `kill`, a container stop) ends in seconds,
    whatever B3 is doing, and is not retried; its other steps do not start."""
    b3_replica.fault(fault)
    env = _env(tmp_path / "lake", B3_BASE_URL=b3_replica.base_url, B3_HTTP_RETRIES="0")
    proc = subprocess.Popen(
        [
            str(REPO / ".venv/bin/dagster"),
            "asset",
            "materialize",
            "-m",
            "b3_assets.definitions",
            "--select",
            select,
            "--partition",
            # the period's views can be captured only on the current session
            current_session().isoformat() if "," in select else "2025-03-05",
        ],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()

    def under_way() -> bool:
        if fault == "5xx":  # the first step (portfolio or theoretical portfolio) waits
            return any("for B3 to recover" in line for line in output)
        return bool(b3_replica.api_requests())

    deadline = time.monotonic() + 120
    while not under_way() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None and under_way(), "".join(output)[-3000:]
    time.sleep(1.5)  # well inside the wait or the answer
    asked = len(b3_replica.requests)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    reader.join(5)
    text = "".join(output)
    assert took < 5, f"the run took {took:.1f} s to end after SIGTERM while {moment}"
    assert proc.returncode != 0
    assert "the run was terminated (SIGTERM or Ctrl-C) while collecting the" in text
    assert "STEP_SUCCESS" not in text
    assert len(b3_replica.requests) == asked  # nothing more was asked of B3
    # The other step of a two-step run never collects: Dagster either does not start it or
    # interrupts it before or inside its body (which of the three is a race with the
    # executor's own interrupt, so only the outcome is asserted: no step succeeded, nothing
    # more was asked of B3, nothing was archived).
    assert not (tmp_path / "lake" / "raw").exists() or not any(
        (tmp_path / "lake" / "raw").rglob("*.json")
    )


def test_import_csv_rejects_bad_files_and_keeps_going(tmp_path, monkeypatch, capsys, dagster_home):
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path / "lake"))
    good = write_csvs(tmp_path / "csv", [date(2025, 3, 5)])[0]
    bad = tmp_path / "csv" / "IBOVDia_06-03-25.csv"
    bad.write_bytes(good.read_bytes().replace(b"PETR4;", b"PETR3;"))  # duplicated code
    assert main(["import-csv", str(good), str(bad)]) == 1
    err = capsys.readouterr()
    assert "imported 1 new" in err.out
    assert f"recorded 1 raw/ibov_portfolio dates in the Dagster instance {dagster_home}" in err.out
    assert str(bad) in err.err and "duplicated codes: PETR3" in err.err
    assert _materialized(dagster_home, RAW) == ["2025-03-05"]  # only what was imported
    archive = RawArchive(local_platform(tmp_path / "lake").lake)
    assert archive.dates() == [date(2025, 3, 5)]
    # Importing the same file again is a no-op, not a second copy.
    assert main(["import-csv", str(good)]) == 0
    assert "0 new, 1 already archived" in capsys.readouterr().out
    assert len(archive.entries(date(2025, 3, 5))) == 1


def test_query_prints_a_table(tmp_path, monkeypatch, capsys):
    days = trading_days(date(2025, 3, 5), date(2025, 3, 6))
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    main(["import-csv", *map(str, write_csvs(tmp_path / "csv", days))])
    # The lake to query, backfilled in process (the backfill command's own tests are above).
    with dg.DagsterInstance.get() as instance:
        result = materialize_range(
            local_platform(tmp_path), instance, days[0], days[-1], asset_selection=[RAW, LANDING]
        )
    assert result.success, failure_message(result)
    capsys.readouterr()
    assert (
        main(
            [
                "query",
                "SELECT DataCarteira, count(*) AS issuers FROM b3_etl_soma_acao "
                "GROUP BY 1 ORDER BY 1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # Column labels are lower-case on both engines, as Athena returns them.
    assert "datacarteira" in out and "2025-03-06" in out and "(2 rows)" in out
    assert main(["query", "SELECT nope FROM b3_etl_soma_acao"]) == 1
    assert "DuckDB query failed" in capsys.readouterr().err


def test_cli_lists_its_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "b3_assets.cli", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0
    for name in ("import-csv", "query", "plot"):
        assert name in proc.stdout
