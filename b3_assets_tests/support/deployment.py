"""A real Dagster deployment for tests: instance folder, daemon and CLI, as users run them."""

from __future__ import annotations

import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
CLOSED_URL = "http://127.0.0.1:9"


def deployment_env(dagster_home: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of every process of one deployment (no B3_/DAGSTER_ leaking in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_", "DAGSTER_"))}
    env.update(
        {
            "DAGSTER_HOME": str(dagster_home),
            "B3_ENV": "local",
            "B3_DATA_DIR": str(data_dir),
            "B3_BASE_URL": CLOSED_URL,
            "B3_FETCH": "api",
            "B3_HTTP_RETRIES": "1",
            "B3_SENSOR_INTERVAL": "2",
        }
    )
    env.update(extra)
    return env


def write_instance_yaml(dagster_home: Path, storage_yaml: str = "") -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n  config:\n    dequeue_interval_seconds: 1\n"
        + storage_yaml
    )


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A command of the venv (``dagster``, ``b3-pipeline``) as a user types it."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: The README's backfill selections: raw and landing, or landing alone after import-csv.
RAW_AND_LANDING = "raw/ibov_portfolio,landing/ibov_portfolio"
LANDING_ONLY = "landing/ibov_portfolio"


def backfill(
    env: dict[str, str], first: str, last: str, select: str = RAW_AND_LANDING
) -> subprocess.CompletedProcess[str]:
    """The README's backfill command over a range, as a user types it."""
    return cli(
        env,
        "dagster",
        "asset",
        "materialize",
        "-m",
        "b3_assets.definitions",
        "--select",
        select,
        "--partition-range",
        f"{first}...{last}",
    )


def materialize_range(env: dict[str, str], first: str, last: str) -> None:
    proc = backfill(env, first, last)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@contextmanager
def running_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` on the project's workspace, stopped (and reaped) at the end."""
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield daemon
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, list[float]]:
    """Timestamps of every materialization of ``key``, per partition, oldest first."""
    out: dict[str, list[float]] = defaultdict(list)
    cursor = None
    while True:
        page = instance.fetch_materializations(key, limit=500, cursor=cursor, ascending=True)
        for record in page.records:
            out[str(record.partition_key)].append(record.timestamp)
        if not page.has_more:
            return dict(out)
        cursor = page.cursor


CHECK_HISTORY_PAGE = 200


def latest_check(
    instance: dg.DagsterInstance, key: dg.AssetKey, name: str, partition: str
) -> tuple[str, float] | None:
    """(status, time) of the latest execution of a check for one partition, as the UI shows
    it (SUCCEEDED, FAILED, PLANNED…); None when never evaluated. The check's history is read
    newest first, a page at a time, up to that partition's latest (dagster's partition filter
    for it lives in a private module)."""
    cursor = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, name), limit=CHECK_HISTORY_PAGE, cursor=cursor
        )
        for record in page:
            if record.partition == partition:
                when = record.event.timestamp if record.event else record.create_timestamp
                return record.status.value, when
        if len(page) < CHECK_HISTORY_PAGE:
            return None
        cursor = page[-1].id


def failed_sensor_ticks(instance: dg.DagsterInstance) -> list[str]:
    """Errors of every failed tick of every sensor of the instance."""
    errors = []
    for state in instance.all_instigator_state():
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000):
            if tick.status.value == "FAILURE":  # TickStatus lives in a private module
                errors.append(f"{state.instigator_name}: {tick.error}")
    return errors


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
