"""The first click: from "Materialize" on the daily job to the report's charts in the UI.

    .venv/bin/python -m bench.bench_first_click [--runs 5] [--keep DIR]

Starts what ``make dev`` starts — ``dagster dev`` (webserver, daemon, code server) on
127.0.0.1 with the project's workspace, on an instance set up as ``make dev`` sets it up
(b3_assets/platform/instance.py) — on a throwaway lake and ``DAGSTER_HOME``, against the
B3 replica (b3_assets_tests/replica) on 127.0.0.1. Each run collects a session not collected
before (the replica serves that session's portfolio, as B3 serves the current one): it
launches the ``daily_ibov_portfolio`` job for the partition through the webserver's GraphQL
(the mutation the UI's Materialize sends), while headless Chromium sits on the report's
partition page and waits for its top-15 chart (the inline table of text bars) to appear.

Prints one table: each step's time since the click (median, min, max over the runs), from
the run's events in the instance and the browser. A warm-up run (the first date) is not
timed: it gives the timed dates a previous portfolio, as on any day but the first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
LOCATION = "b3_pipeline"  # workspace.yaml's location name
JOB = "daily_ibov_portfolio"
STARTUP_TIMEOUT_S = 300
RUN_TIMEOUT_S = 300

LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(msg: str) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"[load {load}] {msg}", file=sys.stderr, flush=True)


class Webserver:
    def __init__(self, url: str) -> None:
        self.url = url

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        if "errors" in body:
            raise RuntimeError(body["errors"])
        return body["data"]

    def wait_ready(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        """The code location has loaded and the daemon has sent a heartbeat."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        query = (
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } "
            "instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
        )
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                sys.exit(f"dagster dev exited:\n{log.read_text()[-3000:]}")
            try:
                data = self.graphql(query)
                daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
                needed = {"SENSOR", "QUEUED_RUN_COORDINATOR"}
                if data["repositoriesOrError"].get("nodes") and all(
                    d["healthy"] for d in daemons if d["daemonType"] in needed
                ):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError, KeyError):
                pass
            time.sleep(1)
        sys.exit(f"dagster dev not ready in {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")

    def launch(self, partition: str) -> str:
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "pipelineName": JOB,
            },
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
            "mode": "default",
        }
        out = self.graphql(LAUNCH, {"p": params})["launchPipelineExecution"]
        if out["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(out)
        return out["run"]["runId"]


def run_timeline(instance: Any, run_id: str, clicked: float) -> dict[str, float]:
    """Seconds since the click of each step of the run, from its events."""
    import dagster as dg

    record = instance.get_run_record_by_id(run_id)
    times: dict[str, float] = {"run created (queued)": record.create_timestamp.timestamp()}
    wanted = {
        dg.DagsterEventType.RUN_DEQUEUED: "dequeued by the daemon",
        dg.DagsterEventType.RUN_STARTING: "launched (run worker process starting)",
        dg.DagsterEventType.RUN_START: "run worker started (code loaded)",
        dg.DagsterEventType.RUN_SUCCESS: "run finished",
    }
    assets = {
        "raw/ibov_portfolio": "raw: fetched from the replica",
        "landing/ibov_portfolio": "landing written, refined by the local Glue job",
        "refined/b3_etl_soma_acao": "refined recorded (run, job, checks)",
        "marts/ibov_setores": "marts computed",
        "report/ibov_marts": "report/ibov_marts drawn",
        "report/ibov_composition": "report/ibov_composition drawn",
    }
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type in wanted:
            times[wanted[event.event_type]] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            key = event.asset_key.to_user_string() if event.asset_key else ""
            if key in assets:
                times.setdefault(assets[key], entry.timestamp)
    if "run finished" not in times:
        raise RuntimeError(f"run {run_id} did not succeed: {record.dagster_run.status}")
    return {name: t - clicked for name, t in times.items()}


def wait_for_chart(page: Any, url: str, clicked: float) -> float:
    """Seconds since the click until the report partition page shows its top-15 chart, the
    table of text bars (reloading every 2 s, as someone waiting would)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        page.goto(url)
        row = page.locator("tr", has=page.get_by_text("top15", exact=True))
        try:
            row.locator("table tr", has_text="█").first.wait_for(timeout=2000)
            return time.time() - clicked
        except Exception:  # not drawn yet: the page says the partition is missing
            continue
    raise RuntimeError(f"the chart did not show in {RUN_TIMEOUT_S} s: {url}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs (one date each)")
    ap.add_argument("--keep", type=Path, help="keep the lake and DAGSTER_HOME here")
    args = ap.parse_args(argv)

    import dagster as dg
    from playwright.sync_api import sync_playwright

    from b3_assets.platform.instance import ensure_instance
    from b3_assets.sessions import b3_session_now, trading_days
    from b3_assets.source.browser import LAUNCH_ARGS, find_chromium
    from b3_assets_tests.replica import Replica

    chromium = find_chromium(None)
    if chromium is None:
        sys.exit("no Chromium (scripts/browser.sh installs one)")
    served = b3_session_now()
    days = [d for d in trading_days(date(served.year - 1, 1, 1), served)][-(args.runs + 1) :]
    root = Path(tempfile.mkdtemp(prefix="bench-first-click-"))
    home, lake, log = root / "dagster_home", root / "lake", root / "dagster-dev.log"
    ensure_instance(home)  # as make dev sets it up (scripts/dev.sh)
    replica = Replica().start()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "B3_ENV": "local", "B3_DATA_DIR": str(lake),
                "B3_BASE_URL": replica.base_url, "B3_FETCH": "api"})  # fmt: skip
    t_start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / ".venv/bin/dagster"), "dev", "-w", str(REPO / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(port)],  # fmt: skip
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    web = Webserver(f"http://127.0.0.1:{port}")
    rows: dict[str, list[float]] = {}
    try:
        web.wait_ready(proc, log)
        _log(f"dagster dev ready in {time.monotonic() - t_start:.1f} s ({web.url})")
        with dg.DagsterInstance.from_config(str(home)) as instance, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=list(LAUNCH_ARGS))
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            for n, day in enumerate(days):
                replica.set_portfolio(day)  # B3 serves that session's portfolio
                url = (f"{web.url}/assets/report/ibov_composition?view=partitions"
                       f"&partition={day.isoformat()}")  # fmt: skip
                page.goto(url)  # the page is open before the click, as in the UI
                clicked = time.time()
                run_id = web.launch(day.isoformat())
                seen = wait_for_chart(page, url, clicked)
                deadline = time.monotonic() + RUN_TIMEOUT_S
                while instance.get_run_by_id(run_id).status not in (
                    dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE
                ) and time.monotonic() < deadline:
                    time.sleep(0.5)
                timeline = run_timeline(instance, run_id, clicked)
                timeline["charts visible in the UI (browser)"] = seen
                label = "warm-up (not timed)" if n == 0 else f"run {n}"
                _log(f"{label} {day}: charts in the UI after {seen:.1f} s")
                if n:
                    for step, t in timeline.items():
                        rows.setdefault(step, []).append(t)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        replica.stop()
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)

    order = sorted(rows, key=lambda step: statistics.median(rows[step]))
    table = [
        [step, f"{statistics.median(rows[step]):.1f}", f"{min(rows[step]):.1f}",
         f"{max(rows[step]):.1f}"]  # fmt: skip
        for step in order
    ]
    print(f"\nThe first click, {args.runs} runs ({os.cpu_count()} cores, {platform.platform()}, "
          f"Python {platform.python_version()}); seconds since Materialize:\n")  # fmt: skip
    print(tabulate(table, headers=["step", "median", "min", "max"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
