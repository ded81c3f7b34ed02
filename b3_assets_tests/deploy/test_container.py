"""The container deployment end to end (issues #11, #18): scripts/container_smoke.sh runs the
documented command, scripts/stack.sh up (`make stack-up`: the tools, the base image from
debootstrap if missing, the app and PostgreSQL images once each, podman-compose up with no
build and no pull, healthy), checks every part with b3-health, materializes one date from the
B3 replica through the webserver and tears it all down with scripts/stack.sh down -v.
Rootful podman: root on Debian/Ubuntu (the scripts install what is missing)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from b3_assets_tests.support.ci import skip_unless

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_compose_stack_runs_one_date_end_to_end():
    skip_unless(
        os.geteuid() == 0 and (shutil.which("podman") or shutil.which("apt-get")) is not None,
        "the container smoke test needs root with podman or apt-get (rootful podman)",
    )
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "container_smoke.sh")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=720)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the script's trap still tears the stack down.
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=150)
        pytest.fail("container smoke took over 12 minutes\n" + err[-8000:])
    # The phases and their times, in the test's output (pytest -rA shows them).
    prefixes = ("container_smoke:", "stack:", "container_tools:", "container_base:")
    phases = "\n".join(line for line in err.splitlines() if line.startswith(prefixes))
    print(phases)
    assert proc.returncode == 0, f"{phases}\n--- stderr tail ---\n{err[-6000:]}"
    assert "smoke passed" in phases
