"""Regenerate the README screenshots (docs/screenshots/*.png) from the real Dagster UI.

Runs b3_assets_tests/test_ui_browser.py with B3_UPDATE_SCREENSHOTS=1: the test builds a
local lake from the B3 replica for two dates, starts dagster-webserver on it and saves what
headless Chromium shows (asset-graph, landing-partition, refined-partition, refined-checks,
report-images, automation, landing-freshness, gap-audit, settings-error).

    .venv/bin/python scripts/ui_screenshots.py        # or: make screenshots

Extra arguments go to pytest (e.g. ``-x -vv``). Needs a Chromium (scripts/browser.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS = (
    "asset-graph",
    "landing-partition",
    "refined-partition",
    "refined-checks",
    "report-images",
    "automation",
    "landing-freshness",
    "gap-audit",
    "settings-error",
)


def main(argv: list[str]) -> int:
    env = {**os.environ, "B3_UPDATE_SCREENSHOTS": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "slow or not slow",
               "b3_assets_tests/test_ui_browser.py"]  # the UI tests are in the slow tier
    started = time.time()
    code = subprocess.call([*command, *argv], cwd=REPO, env=env)
    fresh = True
    for name in SHOTS:
        path = REPO / "docs" / "screenshots" / f"{name}.png"
        new = path.exists() and path.stat().st_mtime >= started
        fresh &= new
        state = f"{path.stat().st_size // 1024} KB" if new else "NOT updated"
        print(f"{path.relative_to(REPO)}: {state}")
    if code == 0 and not fresh:
        # Outside CI a missing Chromium skips the test instead of failing it.
        print("screenshots not updated: was the UI test skipped (no Chromium)?", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
