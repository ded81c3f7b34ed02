"""How long the capture of every B3 index takes against the local replica.

    .venv/bin/python -m bench.bench_indices [--runs 5] [--latency-ms 0 50 150]

Each run captures one trading date from scratch (GetStockIndex, then every index's portfolio,
validated and archived in a fresh folder lake, then landed), at most 4 requests in flight.
``--latency-ms`` adds that delay to every answer of the replica (a healthy B3 answers in ~100
ms), so the table shows how the 4-wide pool hides it. Prints one row per latency: requests,
the most requests in flight, and the median and worst wall time; the budget is 30 s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from b3_assets.indices.collect import capture_indices, land_indices
from b3_assets.source.api import fetch_stock_index
from b3_assets.source.indices import MAX_IN_FLIGHT, fetch_index_portfolio
from b3_assets.storage.lake import LocalLake
from b3_assets_tests.replica import Replica
from b3_assets_tests.support.ci import SAMPLES_DIR
from bench.bench_fetch import cpu_model

BUDGET_S = 30.0


def one_capture(replica: Replica, day: date) -> tuple[float, int, int, int]:
    """(seconds, requests, most in flight, indices landed) of one capture from scratch."""
    replica_faults = [f for f in replica._faults]  # keep the latency fault across the reset
    replica.reset()
    for f in replica_faults:
        replica.fault(f.mode, ms=f.ms)
    with tempfile.TemporaryDirectory() as folder:
        lake = LocalLake(Path(folder))
        start = time.perf_counter()
        capture = capture_indices(
            lake, day, lambda: fetch_stock_index(replica.base_url),
            lambda index: fetch_index_portfolio(replica.base_url, index))
        land_indices(lake, capture)
        elapsed = time.perf_counter() - start
    if capture.failures:
        raise SystemExit(f"capture failed: {capture.problems()}")
    return elapsed, len(replica.requests), replica.max_in_flight, len(capture.portfolios)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_indices", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50, 150])
    args = ap.parse_args(argv)
    print(f"machine: {cpu_model()}, {platform.system()} {platform.release()}, "
          f"python {platform.python_version()}; at most {MAX_IN_FLIGHT} requests in flight")
    print("| latency per answer | indices | requests | max in flight | median s | worst s |")
    print("|---:|---:|---:|---:|---:|---:|")
    with Replica(samples_dir=SAMPLES_DIR) as replica:
        day = replica.portfolio.data_carteira
        for ms in args.latency_ms:
            replica.reset()
            if ms:
                replica.fault("latency", ms=ms)
            runs = [one_capture(replica, day) for _ in range(args.runs)]
            times = [r[0] for r in runs]
            _, requests, in_flight, indices = runs[-1]
            print(f"| {ms} ms | {indices} | {requests} | {in_flight} | "
                  f"{statistics.median(times):.2f} | {max(times):.2f} |")
            if max(times) > BUDGET_S:
                print(f"over the {BUDGET_S:g} s budget")
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
