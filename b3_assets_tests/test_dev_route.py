"""`make dev` stops on SIGTERM as on Ctrl-C (before: SIGTERM left it running past 20 s)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _left(marks: tuple[str, ...]) -> list[str]:
    """Processes of this dev instance still running: dagster dev (its port) and everything it
    started (their instance ref names the instance folder), make and dev.sh."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True)
    return [line.strip()[:160] for line in out.stdout.splitlines()
            if any(mark in line for mark in marks) and "ps -eo" not in line]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_make_dev_stops_everything_it_started_within_20_s(tmp_path, sig):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "DAGSTER_PORT": str(port),
           "B3_DATA_DIR": str(tmp_path / "lake")}
    dev = subprocess.Popen(["make", "-s", "dev"], cwd=REPO, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert dev.poll() is None, "make dev ended before the UI answered"
            time.sleep(1)
        else:
            pytest.fail("the UI of make dev did not answer within 240 s")
        assert "run_monitoring:" in (tmp_path / "home" / "dagster.yaml").read_text()
        # SIGTERM to make alone (`kill`, a service manager): make passes it on to dev.sh. SIGINT
        # to the foreground process group, as Ctrl-C in a terminal sends it.
        marks = (f"-p {port}", str(tmp_path / "home"))
        assert _left(marks), "no process of make dev found to stop"
        sent = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(dev.pid, sig)
        else:
            os.kill(dev.pid, sig)
        while _left(marks) and time.monotonic() - sent < 25:
            time.sleep(0.2)
        took = time.monotonic() - sent
        assert took < 20, f"make dev took {took:.1f} s after {sig.name}: {_left(marks)}"
        assert dev.wait(timeout=5) is not None
    finally:
        for mark in (f"-p {port}", str(tmp_path / "home")):
            subprocess.run(["pkill", "-KILL", "-f", "--", mark], check=False)
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
