"""How fast the catalog answers over years of refined dates, against the floor of one file.

On a lake of ``--dates`` refined trading dates (750: three years), times two queries

    (a) an issuer's history: SELECT DataCarteira, participacao_total_pct
        FROM b3_etl_soma_acao WHERE Acao = 'PETR' ORDER BY 1
    (b) a full-table aggregate: SELECT Acao, avg(participacao_total_pct)
        FROM b3_etl_soma_acao GROUP BY 1

through the project's catalog (``DuckDBCatalog(data_dir).query``, which reads the serving copy
``serving/b3_etl_soma_acao/ano=YYYY.parquet``; and a DuckDB client opening ``catalog.duckdb``
read-only), against the same rows in ONE Parquet file (written with pyarrow, same compression
and row groups as the serving copy) and against the raw refined layout
``refined/DataCarteira=*/Acao=*/*/*.parquet`` (``read_parquet(..., hive_partitioning = true)``).
Every run opens a fresh DuckDB connection, as ``DuckDBCatalog.query`` does; the OS page cache
is warm (one untimed run first). Prints median/p95 ms, the files each source's glob matches,
and the ratio to the one-file median; the target is the catalog within 3x of one file.

    .venv/bin/python -m bench.bench_history [--lake DIR | --build DIR] [--dates 750]
        [--runs 20] [--budget 60]

``--lake DIR``: an existing lake (e.g. ``bench.bench_chain --dates 750 --keep-lake DIR``).
Otherwise a lake is built (in a temp dir, or kept at ``--build DIR``) by writing landing files
with ``b3_assets_tests.support.landing_factory`` and calling ``glue.local_job.run_local_refine`` for
each date in ascending order: about 2-5 min for 750 dates on 2 cores. Each (source, query)
runs ``--runs`` times or until ``--budget`` seconds are spent (at least 3 runs): the raw
layout (~64k files) dominates, at most a few minutes in all.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from tabulate import tabulate

from b3_assets.platform.catalog import DuckDBCatalog
from b3_assets.sessions import is_trading_day
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from bench.bench_chain import synthetic_days
from glue.layout import REFINED_PREFIX, SERVING_PREFIX, TABLE_NAME
from glue.local_job import run_local_refine

QUERIES = {
    "(a) PETR history": f"SELECT DataCarteira, participacao_total_pct FROM {TABLE_NAME} "
    "WHERE Acao = 'PETR' ORDER BY 1",
    "(b) avg by Acao": f"SELECT Acao, avg(participacao_total_pct) FROM {TABLE_NAME} GROUP BY 1",
}
RAW_GLOB = f"{REFINED_PREFIX}/DataCarteira=*/Acao=*/*/*.parquet"
SERVING_GLOB = f"{SERVING_PREFIX}/ano=*.parquet"
T0 = time.perf_counter()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s load {_load()}] {msg}", file=sys.stderr, flush=True)


def build_lake(lake: Path, n: int) -> float:
    """``n`` refined dates from generated landing files; returns the seconds it took."""
    days = synthetic_days(n)
    t0 = time.perf_counter()
    for d in days:
        write_landing(lake, landing_table(d))
    _log(f"build: {len(days)} landing files ({days[0]} to {days[-1]}) written")
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    for i, d in enumerate(days, 1):
        run_local_refine(lake, d, stamp, is_session=is_trading_day)
        if i % 50 == 0 or i == len(days):
            _log(f"build: {i}/{len(days)} dates refined")
    DuckDBCatalog(lake).refresh()
    return time.perf_counter() - t0


def write_one_file(lake: Path, target: Path) -> int:
    """The serving copy's rows, in its order, as one Parquet file (same writer settings)."""
    table = pa.concat_tables(pq.read_table(p) for p in sorted(lake.glob(SERVING_GLOB)))
    pq.write_table(table, target, compression="zstd", row_group_size=1 << 20)
    return table.num_rows


def _sql_literal(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def sources(lake: Path, one_file: Path) -> dict[str, Callable[[str], list[tuple[Any, ...]]]]:
    """Source name -> run(sql) with a fresh DuckDB connection per call."""
    catalog = DuckDBCatalog(lake)
    catalog_file = str(lake / "catalog.duckdb")

    def via_catalog(sql: str) -> list[tuple[Any, ...]]:
        return catalog.query(sql).rows

    def via_catalog_file(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(catalog_file, read_only=True) as con:
            return con.execute(sql).fetchall()

    def over(expr: str) -> Callable[[str], list[tuple[Any, ...]]]:
        def run(sql: str) -> list[tuple[Any, ...]]:
            with duckdb.connect() as con:
                return con.execute(sql.replace(TABLE_NAME, expr)).fetchall()

        return run

    raw = (lake / RAW_GLOB).as_posix()
    return {
        "catalog: DuckDBCatalog.query": via_catalog,
        "catalog.duckdb (read-only client)": via_catalog_file,
        "one Parquet file": over(f"read_parquet({_sql_literal(one_file.as_posix())})"),
        "refined layout glob (hive)": over(
            f"read_parquet({_sql_literal(raw)}, hive_partitioning = true)"
        ),
    }


def files_read(lake: Path, one_file: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """Per source and query: (files its glob matches, files DuckDB has to open).

    Only the raw layout prunes: ``Acao = 'PETR'`` is a hive partition filter, so DuckDB lists
    every file but opens the PETR ones alone. The serving files hold one row group each, so
    (a) opens them all."""
    serving = len(list(lake.glob(SERVING_GLOB)))
    raw = len(list(lake.glob(RAW_GLOB)))
    raw_petr = len(list(lake.glob(f"{REFINED_PREFIX}/DataCarteira=*/Acao=PETR/*/*.parquet")))
    same = {q: (serving, serving) for q in QUERIES}
    return {
        "catalog: DuckDBCatalog.query": same,
        "catalog.duckdb (read-only client)": same,
        "one Parquet file": {q: (1, 1) for q in QUERIES},
        "refined layout glob (hive)": {
            "(a) PETR history": (raw, raw_petr),
            "(b) avg by Acao": (raw, raw),
        },
    }


def _normal(query: str, rows: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """Comparable results: dates as ISO text, numbers to 6 places, sorted for (b)."""

    def num(x: Any) -> str:
        return f"{Decimal(str(x)):.6f}" if x is not None else "null"

    out = [(str(r[0])[:10], num(r[1])) for r in rows]
    return out if query.startswith("(a)") else sorted(out)


def time_runs(run: Callable[[], Any], runs: int, budget: float) -> list[float]:
    run()  # warm the page cache and imports; not timed
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _mib(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--lake", type=Path, help="an existing lake with refined dates")
    where.add_argument("--build", type=Path, help="build the lake here (kept); default: temp")
    parser.add_argument("--dates", type=int, default=750, help="dates to build (750: 3 years)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per source x query")
    args = parser.parse_args()
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="bench_history_") as tmp:
        build_s = None
        if args.lake:
            lake = args.lake.resolve()
            if not any(lake.glob(SERVING_GLOB)):
                sys.exit(f"{lake} has no serving copy ({SERVING_GLOB})")
            DuckDBCatalog(lake).refresh()  # a copied lake: the view names the new path
        else:
            lake = (args.build or Path(tmp) / "lake").resolve()
            if lake.exists() and any(lake.iterdir()):
                sys.exit(f"--build {lake} is not empty")
            _log(f"building a lake of {args.dates} dates at {lake}")
            build_s = build_lake(lake, args.dates)
            _log(f"built in {build_s:.0f} s")
        one_file = Path(tmp) / "b3_etl_soma_acao.parquet"
        n_rows = write_one_file(lake, one_file)
        n_dates = (
            DuckDBCatalog(lake)
            .query(f"SELECT count(DISTINCT DataCarteira) FROM {TABLE_NAME}")
            .rows[0][0]
        )
        counts = files_read(lake, one_file)
        sizes = {
            "catalog: DuckDBCatalog.query": _mib(list(lake.glob(SERVING_GLOB))),
            "catalog.duckdb (read-only client)": _mib(list(lake.glob(SERVING_GLOB))),
            "one Parquet file": _mib([one_file]),
            "refined layout glob (hive)": _mib(list(lake.glob(RAW_GLOB))),
        }
        runners = sources(lake, one_file)
        results: dict[tuple[str, str], list[float]] = {}
        for q, sql in QUERIES.items():
            expected = None
            for name, run in runners.items():
                got = _normal(q, run(sql))
                if expected is None:
                    expected = got
                elif got != expected:
                    sys.exit(f"{name} answers {q} differently ({len(got)} vs {len(expected)} rows)")
                _log(f"{q} on {name}: {len(got)} rows, timing")
                results[(q, name)] = time_runs(
                    lambda run=run, sql=sql: run(sql), args.runs, args.budget
                )
    load_after = _load()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, pyarrow {pa.__version__}"
    )
    print(f"load average (1/5/15 min): {load_before} before, {load_after} after")
    print(
        f"lake: {n_dates} refined dates, {n_rows} rows"
        + (f" (built in {build_s:.0f} s)" if build_s is not None else f" ({args.lake})")
    )
    table = []
    for q in QUERIES:
        base = statistics.median(results[(q, "one Parquet file")])
        for name in runners:
            times = results[(q, name)]
            med = statistics.median(times)
            matched, opened = counts[name][q]
            table.append(
                (
                    q,
                    name,
                    len(times),
                    f"{med:.1f}",
                    f"{p95(times):.1f}",
                    f"{matched}" if matched == opened else f"{matched} ({opened} opened)",
                    f"{sizes[name]:.2f}",
                    f"{med / base:.2f}",
                )
            )
    print(
        tabulate(
            table,
            headers=[
                "query",
                "source",
                "runs",
                "median ms",
                "p95 ms",
                "files",
                "MiB",
                "x one file",
            ],
            tablefmt="github",
            disable_numparse=True,
            colalign=("left", "left") + ("right",) * 6,
        )
    )
    for q in QUERIES:
        base = statistics.median(results[(q, "one Parquet file")])
        ratio = statistics.median(results[(q, "catalog: DuckDBCatalog.query")]) / base
        verdict = "met" if ratio <= 3 else "MISSED"
        print(f"target catalog <= 3x one file, {q}: {ratio:.2f}x {verdict}")


if __name__ == "__main__":
    main()
