"""A SIGTERM (or Ctrl-C) always ends the run, also when it arrives inside a DuckDB query.

Before: DuckDB turned the interrupt into ``RuntimeError("Query interrupted")``, the refine's
per-date handler took it for that date's error and went on with the next dates (1 run in 11
went on after a SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import glue.local_job
from b3_assets.platform.local_aws import LocalGlueRunner
from b3_assets_tests.support.deployment import BIN, REPO, deployment_env
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from glue.local_job import published

DAYS = [date(2025, 3, 17), date(2025, 3, 18), date(2025, 3, 19)]
#: A query DuckDB needs minutes for (one thread): busy until the interrupt.
BURN = "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    for day in DAYS:
        write_landing(tmp_path, landing_table(day))
    return tmp_path


@pytest.fixture
def sigusr1_interrupts() -> Iterator[Callable[[], None]]:
    """A handler that raises KeyboardInterrupt, as Python's SIGINT handler (and Dagster's, for
    SIGTERM) does; the returned function sends the signal to this process in 0.3 s."""
    previous = signal.signal(signal.SIGUSR1, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    timers: list[threading.Timer] = []

    def soon() -> None:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        timers.append(timer)
        timer.start()

    try:
        yield soon
    finally:
        for timer in timers:
            timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


def _interrupt(kind: str, con: Any, send_signal: Callable[[], None]) -> None:
    """Interrupt the refine of a date the way ``kind`` says, inside its work."""
    if kind == "signal inside DuckDB":  # the case DuckDB turns into RuntimeError
        send_signal()
        con.execute("SET threads = 1")
        con.sql(BURN).fetchall()
    elif kind == "con.interrupt() inside DuckDB":  # duckdb.InterruptException
        threading.Timer(0.3, con.interrupt).start()
        con.execute("SET threads = 1")
        con.sql(BURN).fetchall()
    elif kind == "Dagster's interrupt":
        raise dg.DagsterExecutionInterruptedError()
    else:
        raise KeyboardInterrupt
    raise AssertionError("the burn ended without an interrupt")


@pytest.mark.parametrize(
    "kind",
    ["signal inside DuckDB", "con.interrupt() inside DuckDB", "Dagster's interrupt",
     "KeyboardInterrupt"],
)
def test_an_interrupt_stops_a_refine_run_at_the_date_it_hit(
    lake, monkeypatch, sigusr1_interrupts, kind
):
    """The run of three dates is interrupted during its first date: it stops there (the
    other dates are not started), is recorded as STOPPED and the interrupt reaches the
    caller (the landing step, which Dagster then ends)."""
    started: list[date] = []
    real = glue.local_job.refine_duckdb

    def refine(current, previous, day, anterior, processado_em, con=None):
        started.append(day)
        if day == DAYS[0]:
            _interrupt(kind, con, sigusr1_interrupts)
        return real(current, previous, day, anterior, processado_em, con)

    monkeypatch.setattr(glue.local_job, "refine_duckdb", refine)
    runner = LocalGlueRunner(lake)
    t0 = time.monotonic()
    with pytest.raises((KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
        runner.refine("job", DAYS)
    assert time.monotonic() - t0 < 10
    assert started == [DAYS[0]]  # the run did not go on with the next dates
    assert all(published(lake, d) is None for d in DAYS)
    (record,) = [json.loads(p.read_text()) for p in (lake / "_glue_job_runs").glob("*.json")]
    assert record["JobRunState"] == "STOPPED", record
    assert "interrupted (SIGTERM or Ctrl-C)" in record["ErrorMessage"]


def test_a_single_date_run_interrupted_inside_duckdb_is_stopped_not_failed(
    lake, monkeypatch, sigusr1_interrupts
):
    """One date (the daily run's own refine): the interrupt is not the date's error either."""
    monkeypatch.setattr(
        glue.local_job, "refine_duckdb",
        lambda *args: _interrupt("signal inside DuckDB", args[5], sigusr1_interrupts),
    )
    with pytest.raises(KeyboardInterrupt):
        LocalGlueRunner(lake).refine("job", DAYS[:1])
    (record,) = [json.loads(p.read_text()) for p in (lake / "_glue_job_runs").glob("*.json")]
    assert record["JobRunState"] == "STOPPED"


#: The dagster CLI with the refine made slow inside DuckDB: each date's refine first runs a
#: query of minutes, after writing a line to MARKER (so the test signals while DuckDB is busy).
SLOW_CLI = """
import os, sys
import glue.local_job as job
real = job.refine_duckdb
def slow(current, previous, day, anterior, processado_em, con=None):
    with open(os.environ["MARKER"], "a") as out:
        out.write(day.isoformat() + "\\n")
    con.execute("SET threads = 1")
    con.sql(os.environ["BURN"]).fetchall()
    return real(current, previous, day, anterior, processado_em, con)
job.refine_duckdb = slow
from dagster._cli import main
sys.argv = ["dagster", *sys.argv[1:]]
sys.exit(main())
"""


@pytest.mark.slow
def test_sigterm_while_duckdb_refines_ends_the_run(tmp_path, monkeypatch):
    """`dagster asset materialize` of landing over three dates in its own process, SIGTERMed
    while DuckDB refines the first date, three times: each run ends within seconds, failed,
    and no further date is started. Before: the run went on with the next dates."""
    from b3_assets.cli import cmd_import_csv
    from b3_assets.storage.lake import LocalLake
    from b3_assets_tests.replica.portfolios import write_csvs

    data_dir, home = tmp_path / "lake", tmp_path / "home"
    env = deployment_env(home, data_dir, BURN=BURN, MARKER=str(tmp_path / "marker"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert cmd_import_csv(LocalLake(data_dir), write_csvs(tmp_path / "csv", DAYS)) == 0
    marker = tmp_path / "marker"
    for trial in range(3):
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [str(BIN / "python"), "-c", SLOW_CLI, "asset", "materialize", "-m",
             "b3_assets.definitions", "--select", "landing/ibov_portfolio", "--partition-range",
             f"{DAYS[0]}...{DAYS[-1]}"],
            cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        output: list[str] = []
        reader = threading.Thread(target=output.extend, args=(proc.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and marker.exists(), "".join(output)[-3000:]
        time.sleep(0.5)  # DuckDB is well inside the query
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass  # still running: the assertion below says so
        finally:
            proc.kill()
            proc.wait()
        took = time.monotonic() - sent
        reader.join(5)
        text = "".join(output)
        assert took < 8, f"trial {trial}: the run took {took:.1f} s to end after SIGTERM"
        assert proc.returncode != 0, text[-3000:]
        assert marker.read_text().split() == [DAYS[0].isoformat()], text[-3000:]
        assert "interrupted (SIGTERM or Ctrl-C) while refining" in text, text[-3000:]
        assert "RUN_SUCCESS" not in text
    assert all(published(data_dir, d) is None for d in DAYS)
