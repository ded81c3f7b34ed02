"""Run the B3 replica by hand:

    python -m b3_assets_tests.replica --port 8765 [--date 2025-03-05] [--fault 5xx:2]

``--fault MODE[:COUNT][,key=value...]`` may repeat, e.g. ``--fault latency,ms=300``,
``--fault 403`` (non-browser clients only), ``--fault short_pages,max_page_size=20``,
``--fault 5xx,endpoint=GetQuartelyPreview`` (one endpoint only).
Then ``B3_BASE_URL=http://127.0.0.1:8765`` points b3-pipeline at it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Any

from b3_assets.sessions import b3_session_now
from b3_assets_tests.replica.portfolios import DEFAULT_DATE, generate_portfolio, portfolio_for
from b3_assets_tests.replica.server import FAULT_MODES, Replica
from b3_assets_tests.support.ci import SAMPLES_DIR


def parse_fault(spec: str) -> tuple[str, int | None, dict[str, Any]]:
    """``5xx:2,status=502`` -> ("5xx", 2, {"status": 502})."""
    head, *opts = spec.split(",")
    mode, _, count = head.partition(":")
    options: dict[str, Any] = {}
    for opt in opts:
        key, _, value = opt.partition("=")
        if key == "serve_date":
            options[key] = date.fromisoformat(value)
        elif key in {"ms", "status", "max_page_size"}:  # index=SMLL: that index only
            options[key] = int(value)
        elif key in {"hang_s", "drip_s"}:
            options[key] = float(value)
        elif key == "rename":
            old, _, new = value.partition(":")
            options[key] = {old: new}
        else:
            options[key] = value
    return mode, (int(count) if count else None), options


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m b3_assets_tests.replica", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--date", type=date.fromisoformat, default=None,
                    help="portfolio date (a real sample when present, else generated); default: "
                    "the session B3 serves now (today, or the next session on a weekend or "
                    f"holiday), so the README's first click lands; {DEFAULT_DATE} is a real one")
    ap.add_argument("--samples", type=Path, default=SAMPLES_DIR,
                    help="folder of the real B3 samples (default b3_assets_tests/fixtures/b3)")
    ap.add_argument("--generated", action="store_true", help="ignore the samples")
    ap.add_argument("--fault", action="append", default=[],
                    help=f"MODE[:COUNT][,key=value], MODE one of {', '.join(FAULT_MODES)}")
    args = ap.parse_args(argv)
    args.date = args.date or b3_session_now()

    portfolio = (generate_portfolio(args.date) if args.generated
                 else portfolio_for(args.date, args.samples))
    replica = Replica(portfolio, samples_dir=None if args.generated else args.samples,
                      host=args.host, port=args.port)
    for spec in args.fault:
        mode, count, options = parse_fault(spec)
        replica.fault(mode, count=count, **options)
    # Before the first line: a caller may stop us as soon as it has read it.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    replica.start()
    print(f"B3 replica serving {portfolio.origin} ({portfolio.data_carteira}, "
          f"{len(portfolio.rows)} rows) at {replica.base_url}", flush=True)
    print(f"page: {replica.page_url}", flush=True)
    print(f"indices: {len(replica.indices())} listed by GetStockIndex "
          f"({', '.join(replica.indices())})", flush=True)
    for view in ("teorica", "previa"):
        period = replica.period(view)
        print(f"{view}: {period.origin} (period from {period.period_start}, "
              f"{len(period.rows)} rows)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    # No graceful shutdown: it waits on the server's poll loop, which a faked clock can stall
    # (scripts/any_day.sh); the serving thread is a daemon and the sockets close with us.
    return 0


if __name__ == "__main__":
    sys.exit(main())
