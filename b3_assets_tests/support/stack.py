"""Probes of a running deployment through its webserver, as a user's browser would reach it
(scripts/container_smoke.sh runs them against deploy/compose.yaml):

    python -m b3_assets_tests.support.stack wait-ui URL [--timeout S]
    python -m b3_assets_tests.support.stack materialize URL DATE [--timeout S]

``materialize`` launches the daily job for DATE (what the schedule does at 08:30) and waits
until the chain is done: the run succeeded, the sensor recorded refined[DATE] and the
follow-up run drew report[DATE], with no failed run anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

LOCATION = "b3_pipeline"
DAILY_JOB = "daily_ibov_portfolio"

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

STATE = """
query State($runId: ID!, $partition: String!) {
  runOrError(runId: $runId) { ... on Run { status } }
  failed: runsOrError(filter: {statuses: [FAILURE, CANCELED]}) {
    ... on Runs { results { runId jobName } }
  }
  refined: assetOrError(assetKey: {path: ["refined", "b3_etl_soma_acao"]}) {
    ... on Asset { assetMaterializations(partitions: [$partition]) { runId } }
  }
  report: assetOrError(assetKey: {path: ["report", "ibov_composition"]}) {
    ... on Asset { assetMaterializations(partitions: [$partition]) { runId } }
  }
}"""


LOCATIONS = """
query Locations {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}"""


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def wait_ui(url: str, timeout: float) -> dict[str, Any]:
    """/server_info once the webserver answers it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                return json.load(response)
        except (OSError, urllib.error.URLError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_location(url: str, timeout: float) -> None:
    """Until the webserver has loaded the code location from its gRPC server; its load
    error, if it has one (the definitions do not load), fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        entries = graphql(url, LOCATIONS, {})["workspaceOrError"].get("locationEntries") or []
        for entry in entries:
            if entry["name"] != LOCATION or entry["loadStatus"] != "LOADED":
                continue
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {LOCATION} failed to load: {loaded['message']}")
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"code location {LOCATION} not loaded after {timeout:.0f} s")
        time.sleep(2)


def materialize(url: str, day: str, timeout: float) -> dict[str, float]:
    """Launch the daily job for ``day``; seconds until each stage was seen."""
    start = time.monotonic()
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": DAILY_JOB,
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
    }
    # The webserver may not have loaded the code location yet (the code server starts last).
    while True:
        launched = graphql(url, LAUNCH, {"params": params})["launchRun"]
        if launched["__typename"] == "LaunchRunSuccess":
            break
        if time.monotonic() - start > 120:
            raise RuntimeError(f"launch failed: {launched}")
        time.sleep(3)
    run_id = launched["run"]["runId"]
    seen: dict[str, float] = {}
    while time.monotonic() - start < timeout:
        state = graphql(url, STATE, {"runId": run_id, "partition": day})
        failed = state["failed"]["results"]
        if failed:
            raise RuntimeError(f"failed runs: {failed}")
        elapsed = round(time.monotonic() - start, 1)
        if state["runOrError"].get("status") == "SUCCESS":
            seen.setdefault("landing_run_succeeded", elapsed)
        if state["refined"].get("assetMaterializations"):
            seen.setdefault("refined_recorded", elapsed)
        if state["report"].get("assetMaterializations"):
            seen.setdefault("report_drawn", elapsed)
        if len(seen) == 3:
            return seen
        time.sleep(2)
    raise TimeoutError(f"after {timeout:.0f} s only {sorted(seen)} of run {run_id} for {day}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m b3_assets_tests.support.stack")
    sub = ap.add_subparsers(dest="command", required=True)
    ui = sub.add_parser("wait-ui")
    ui.add_argument("url")
    ui.add_argument("--timeout", type=float, default=180)
    mat = sub.add_parser("materialize")
    mat.add_argument("url")
    mat.add_argument("date")
    mat.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args(argv)
    url = args.url.rstrip("/")
    if args.command == "wait-ui":
        info = wait_ui(url, args.timeout)
        print(f"webserver {info.get('dagster_webserver_version')} answers {url}/server_info")
        wait_location(url, args.timeout)
        print(f"code location {LOCATION} loaded")
        return 0
    stages = materialize(url, args.date, args.timeout)
    print(f"{args.date} end to end: " + ", ".join(f"{k} at {v} s" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
