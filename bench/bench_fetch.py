"""How long a day's fetch takes, by path, against the local B3 replica.

    .venv/bin/python -m bench.bench_fetch [--runs 20] [--browser-runs N] [--no-browser]

Times fetch + parse + validate for one portfolio via the JSON API and via the browser
(browser start included), beside a bare ``requests.get`` of the same API URL(s): the bare
time is the floor, so ``api / bare`` is what the fetcher itself costs.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from b3_assets.source.api import fetch_api, portfolio_url
from b3_assets.source.browser import fetch_browser, find_chromium
from b3_assets_tests.replica import Replica

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = ROOT / "b3_assets_tests" / "fixtures" / "b3"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (no interpolation on 20 samples)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def timed(*fns: Callable[[], object], runs: int, warmup: int = 1) -> list[list[float]]:
    """Milliseconds per run of each of ``fns``, interleaved run by run (first ``fns[0]``, then
    ``fns[1]``…, alternating who goes first), so a burst of load on a shared machine hits
    every path alike instead of skewing whichever happened to run during it."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for run in range(runs):
        order = list(range(len(fns)))
        if run % 2:
            order.reverse()
        for i in order:
            t = time.perf_counter()
            fns[i]()
            out[i].append((time.perf_counter() - t) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--browser-runs", type=int, default=None, help="default: --runs")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--browser-path", default=os.environ.get("B3_BROWSER_PATH"))
    args = ap.parse_args(argv)

    samples = SAMPLES_DIR if SAMPLES_DIR.is_dir() else None
    with Replica(samples_dir=samples) as replica:
        served = replica.portfolio
        day = served.data_carteira
        urls = [portfolio_url(replica.base_url, 1)]

        def bare() -> None:
            for url in urls:
                requests.get(url, timeout=20).raise_for_status()

        def api() -> None:
            fetch_api(replica.base_url).portfolio(day)

        bare_ms, api_ms = timed(bare, api, runs=args.runs)
        rows: list[tuple[str, list[float]]] = [
            ("bare HTTP (requests.get, same URL)", bare_ms),
            ("api (fetch + parse + validate)", api_ms),
        ]
        chromium = None if args.no_browser else find_chromium(args.browser_path)
        if chromium:

            def browser() -> None:
                fetch_browser(replica.base_url, browser_path=chromium).portfolio(day)

            rows.append(
                (
                    "browser (incl. launch; + parse + validate)",
                    timed(browser, runs=args.browser_runs or args.runs)[0],
                )
            )

    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"B3 fetch benchmark: replica on 127.0.0.1, portfolio {day} ({served.origin}, "
        f"{len(served.rows)} rows, {len(urls)} API page(s)), 1 warm-up run per path, "
        "bare and api runs interleaved"
    )
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python "
        f"{platform.python_version()} ({platform.system()} {platform.machine()}), "
        f"load average {load}"
    )
    if chromium:
        print(f"browser: {chromium}")
    elif not args.no_browser:
        print("browser: none found (apt-get install chromium or set B3_BROWSER_PATH)")
    print()
    width = max(len(name) for name, _ in rows)
    print(f"{'path':<{width}}  {'median ms':>10}  {'p95 ms':>10}  {'runs':>5}")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 10}  {'-' * 5}")
    medians = {}
    for name, values in rows:
        medians[name] = statistics.median(values)
        print(f"{name:<{width}}  {medians[name]:>10.1f}  {p95(values):>10.1f}  {len(values):>5}")
    bare_m, api_m = medians[rows[0][0]], medians[rows[1][0]]
    print()
    print(f"api / bare (median): {api_m / bare_m:.2f}x")
    if chromium:
        print(f"browser / api (median): {medians[rows[2][0]] / api_m:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
