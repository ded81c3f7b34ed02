"""End-to-end cost of the local chain through the CLI, as a user runs it.

Prints a table: one trading date (raw from the archive -> landing -> Glue runner on DuckDB ->
refined -> catalog), the 32 real sample dates as one backfill, and a synthetic one-year
(250-date) backfill; wall time and the peak memory of the materialize process.

    .venv/bin/python -m bench.bench_chain [--samples ../shared/b3_samples] [--year-dates 250]

Each lake gets its own throwaway Dagster instance (``DAGSTER_HOME``), so the imports and runs
timed here never land in the developer's ``./.dagster_home``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from b3_assets.sessions import trading_days
from b3_assets_tests.replica.portfolios import write_csvs

REPO = Path(__file__).resolve().parents[1]
CLOSED_URL = "http://127.0.0.1:9"


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
    """(wall seconds, peak RSS MiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=_env(data_dir), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def _import(files: list[Path], data_dir: Path) -> tuple[float, float]:
    return _run([str(REPO / ".venv/bin/b3-pipeline"), "import-csv", *map(str, files)], data_dir)


def _materialize(data_dir: Path, first: date, last: date) -> tuple[float, float]:
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
            "raw/ibov_portfolio,landing/ibov_portfolio",
            *rng,
        ],
        data_dir,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "b3_samples")
    parser.add_argument("--year-dates", type=int, default=250)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sample_files = sorted((args.samples / "csv_utf8_no_title").glob("IBOVDia_*.csv"))
        if sample_files:
            days = trading_days(date(2025, 2, 3), date(2025, 3, 20))
            src = sample_files
        else:  # no samples beside the checkout: the same 32 sessions, generated
            days = trading_days(date(2025, 2, 3), date(2025, 3, 20))
            src = write_csvs(tmp_path / "gen32", days)
        one = tmp_path / "one"
        _import(src, one)
        wall, mem = _materialize(one, days[-1], days[-1])
        rows.append(("1 date (2025-03-20)", 1, wall, mem))
        many = tmp_path / "many"
        _import(src, many)
        wall32, mem32 = _materialize(many, days[0], days[-1])
        rows.append((f"backfill {len(days)} dates", len(days), wall32, mem32))
        start = date(2024, 1, 2)
        year = trading_days(start, start + timedelta(days=400))[: args.year_dates]
        ylake = tmp_path / "year"
        _import(write_csvs(tmp_path / "gen", year), ylake)
        wally, memy = _materialize(ylake, year[0], year[-1])
        rows.append((f"backfill {len(year)} dates (synthetic)", len(year), wally, memy))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
    print(f"{'run':<34}{'dates':>6}{'wall s':>9}{'s/date':>9}{'x 1 date':>10}{'peak MiB':>10}")
    single = rows[0][2]
    for name, n, wall, mem in rows:
        print(f"{name:<34}{n:>6}{wall:>9.1f}{wall / n:>9.2f}{wall / single:>10.2f}{mem:>10.0f}")


if __name__ == "__main__":
    main()
