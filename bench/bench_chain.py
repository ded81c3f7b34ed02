"""End-to-end cost of the local chain through the CLI, as a user runs it.

Prints a table: one trading date (raw from the archive -> landing -> Glue runner on DuckDB ->
refined -> catalog), the 32 real sample dates as one backfill, and a synthetic backfill of
``--dates`` trading dates (250: one year; 750: three years, from 2023-01-02); for each, the
``b3-pipeline import-csv`` that filled the archive and the ``dagster asset materialize`` that
ran the chain, with wall time and the peak RSS of that process (and its children).

    .venv/bin/python -m bench.bench_chain [--samples b3_assets_tests/fixtures/b3] [--dates 250]
        [--keep-lake DIR] [--synthetic-only]

Each lake gets its own throwaway Dagster instance (``DAGSTER_HOME``), so the imports and runs
timed here never land in the developer's ``./.dagster_home``. ``--keep-lake DIR`` keeps the
synthetic lake (refined + serving copy + catalog.duckdb) for ``bench.bench_history --lake DIR``.

The synthetic backfill is timed twice on copies of the same imported lake and instance: raw +
landing, and landing alone (enough after ``import-csv``, which records raw).

Bounds on a 2-core machine: one date ~8 s, the 32 dates ~12 s, 750 synthetic dates ~2 min per
selection, ~6 min in all (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from tabulate import tabulate

from b3_assets.sessions import FIRST_TRADING_DATE, trading_days
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.deployment import LANDING_ONLY, RAW_AND_LANDING
from glue.layout import REFINED_PREFIX, SERVING_PREFIX

REPO = Path(__file__).resolve().parents[1]
CLOSED_URL = "http://127.0.0.1:9"
#: Where the one-year run has always started (kept so --dates 250 stays comparable).
YEAR_START = date(2024, 1, 2)
T0 = time.perf_counter()


def _log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s load {_load()}] {msg}", file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _env(data_dir: Path) -> dict[str, str]:
    """The lake ``data_dir`` with no network, and a Dagster instance beside it (not in it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_", "DAGSTER_"))}
    home = data_dir.with_name(f"{data_dir.name}.dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "B3_ENV": "local",
            "B3_DATA_DIR": str(data_dir),
            "B3_BASE_URL": CLOSED_URL,
            "DAGSTER_HOME": str(home),
        }
    )
    return env


def _run(cmd: list[str], data_dir: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process.

    The peak is that child's own (``wait4``: the process and the descendants it waited for),
    not the running maximum over every child so far that ``getrusage(RUSAGE_CHILDREN)`` gives.
    """
    os.sync()  # the previous run's files reach the disk now, not during this one
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(data_dir), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        if proc.returncode != 0:
            out.seek(0)
            err.seek(0)
            sys.exit(f"failed: {' '.join(cmd)}\n{out.read()[-2000:]}\n{err.read()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def _import(files: list[Path], data_dir: Path) -> tuple[float, float]:
    return _run([str(REPO / ".venv/bin/b3-pipeline"), "import-csv", *map(str, files)], data_dir)


def _materialize(
    data_dir: Path, first: date, last: date, select: str = RAW_AND_LANDING
) -> tuple[float, float]:
    rng = (
        ["--partition", first.isoformat()]
        if first == last
        else ["--partition-range", f"{first.isoformat()}...{last.isoformat()}"]
    )
    return _run(
        [
            str(REPO / ".venv/bin/dagster"),
            "asset",
            "materialize",
            "-m",
            "b3_assets.definitions",
            "--select",
            select,
            *rng,
        ],
        data_dir,
    )


def _check_refined(data_dir: Path, days: list[date]) -> str:
    """Every date published in refined and present in the serving copy, or exit."""

    def pointer(d: date) -> Path:
        return data_dir / REFINED_PREFIX / f"DataCarteira={d}/_current.json"

    unpublished = [d for d in days if not pointer(d).is_file()]
    served: set[str] = set()
    rows = 0
    for path in sorted((data_dir / SERVING_PREFIX).glob("ano=*.parquet")):
        col = pq.read_table(path, columns=["DataCarteira"]).column("DataCarteira")
        rows += len(col)
        served.update(col.to_pylist())
    missing = sorted({d.isoformat() for d in days} - served)
    if unpublished or missing:
        sys.exit(f"{data_dir}: unpublished {unpublished[:5]}…, not served {missing[:5]}…")
    files = sum(len(json.loads(pointer(d).read_text())["issuers"]) for d in days)
    return f"{len(days)} dates refined ({files} issuer files), {rows} serving rows"


def synthetic_days(n: int) -> list[date]:
    """``n`` consecutive B3 sessions: from 2024-01-02 when they fit before today, else from
    the first partition (2023-01-02)."""
    today = date.today()
    for start in (YEAR_START, FIRST_TRADING_DATE):
        span = trading_days(start, start + timedelta(days=n * 7 // 4 + 30))
        days = [d for d in span if d <= today]
        if len(days) >= n:
            return days[:n]
    sys.exit(f"fewer than {n} trading dates between {FIRST_TRADING_DATE} and {today}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, 
                        default=REPO / "b3_assets_tests" / "fixtures" / "b3")
    parser.add_argument(
        "--dates",
        "--year-dates",
        dest="dates",
        type=int,
        default=250,
        help="trading dates of the synthetic backfill (250: a year, 750: three years)",
    )
    parser.add_argument(
        "--keep-lake",
        type=Path,
        help="copy the synthetic lake here (must not exist) for bench.bench_history --lake",
    )
    parser.add_argument(
        "--synthetic-only", action="store_true", help="skip the one-date and 32-date runs"
    )
    args = parser.parse_args()
    if args.keep_lake and args.keep_lake.exists():
        sys.exit(f"--keep-lake {args.keep_lake} exists")
    load_before = _load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_chain_") as tmp:
        tmp_path = Path(tmp)
        if not args.synthetic_only:
            sample_files = sorted((args.samples / "csv_utf8_no_title").glob("IBOVDia_*.csv"))
            days = trading_days(date(2025, 2, 3), date(2025, 3, 20))
            if sample_files:
                src, origin = sample_files, "real"
            else:  # no samples beside the checkout: the same 32 sessions, generated
                src, origin = write_csvs(tmp_path / "gen32", days), "generated"
            one = tmp_path / "one"
            _log(f"one date: import {len(src)} CSVs")
            imp = _import(src, one)
            _log("one date: materialize 2025-03-20")
            run = _materialize(one, days[-1], days[-1])
            rows.append(("1 date (2025-03-20)", 1, imp, run))
            many = tmp_path / "many"
            _log(f"{len(days)} {origin} dates: import")
            imp = _import(src, many)
            _log(f"{len(days)} {origin} dates: materialize")
            run = _materialize(many, days[0], days[-1])
            _log(_check_refined(many, days))
            rows.append((f"backfill {len(days)} {origin} sample dates", len(days), imp, run))
        syn = synthetic_days(args.dates)
        _log(f"synthetic: writing {len(syn)} CSVs ({syn[0]} to {syn[-1]})")
        csvs = write_csvs(tmp_path / "gen", syn)
        lake = tmp_path / "synthetic"
        _log("synthetic: import")
        imp = _import(csvs, lake)
        alone = tmp_path / "synthetic-landing-only"  # the same imported lake and instance
        shutil.copytree(lake, alone, symlinks=True)
        home = lake.with_name(f"{lake.name}.dagster_home")
        shutil.copytree(home, alone.with_name(f"{alone.name}.dagster_home"), symlinks=True)
        _log(f"synthetic: materialize {syn[0]}...{syn[-1]} (raw + landing)")
        run = _materialize(lake, syn[0], syn[-1])
        check = _check_refined(lake, syn)
        _log(check)
        rows.append((f"backfill {len(syn)} synthetic dates, raw + landing", len(syn), imp, run))
        _log(f"synthetic: materialize {syn[0]}...{syn[-1]} (landing alone)")
        run = _materialize(alone, syn[0], syn[-1], LANDING_ONLY)
        _log(_check_refined(alone, syn))
        rows.append((f"backfill {len(syn)} synthetic dates, landing alone", len(syn), imp, run))
        if args.keep_lake:
            shutil.copytree(lake, args.keep_lake, symlinks=True)
            _log(f"kept the synthetic lake at {args.keep_lake}")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
    print(f"load average (1/5/15 min): {load_before} before, {_load()} after")
    print(f"synthetic {syn[0]}...{syn[-1]}: {check}")
    single = rows[0][3][0] if not args.synthetic_only else None
    table = [
        (
            name,
            n,
            f"{imp[0]:.1f}",
            f"{run[0]:.1f}",
            f"{run[0] / n:.2f}",
            f"{run[0] / single:.2f}" if single else "",
            f"{max(imp[1], run[1]):.0f}",
            f"{run[1]:.0f}",
        )
        for name, n, imp, run in rows
    ]
    headers = [
        "run",
        "dates",
        "import s",
        "materialize s",
        "s/date",
        "x 1 date",
        "peak MiB (any)",
        "peak MiB materialize",
    ]
    print(
        tabulate(
            table,
            headers=headers,
            tablefmt="github",
            disable_numparse=True,
            colalign=("left",) + ("right",) * 7,
        )
    )


if __name__ == "__main__":
    main()
