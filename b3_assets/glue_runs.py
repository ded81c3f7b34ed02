"""Glue job runs: what the sensor watches, on AWS Glue or on the local runner.

The local runner is shaped like boto3's Glue client (``start_job_run``, ``get_job_runs``,
``get_job_run``) and records runs shaped like Glue JobRuns, so the Lambda code that starts runs
and the watcher that reads them are the same code in both environments."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from glue.local_job import run_local_refine

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED"})
FAILED_STATES = TERMINAL_STATES - {"SUCCEEDED"}


class LocalGlue:
    """A stand-in for AWS Glue: runs the refine job synchronously on DuckDB.

    Runs are recorded as JSON under ``runs_dir`` (one file per run) so the sensor, running in
    another process, sees them."""

    def __init__(
        self,
        lake_root: Path,
        runs_dir: Path,
        on_success: Callable[[date], None] | None = None,
    ) -> None:
        self.lake_root = Path(lake_root)
        self.runs_dir = Path(runs_dir)
        self.on_success = on_success

    def start_job_run(
        self,
        JobName: str,
        Arguments: dict[str, str] | None = None,  # noqa: N803
        **_: Any,
    ) -> dict[str, str]:
        args = dict(Arguments or {})
        run_id = "jr_" + secrets.token_hex(32)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        run: dict[str, Any] = {
            "Id": run_id,
            "JobName": JobName,
            "Arguments": args,
            "StartedOn": started.isoformat(),
            "JobRunState": "RUNNING",
            "WorkerType": "local-duckdb",
            "NumberOfWorkers": 1,
        }
        try:
            data_carteira = date.fromisoformat(args["--data_carteira"])
            outcome = run_local_refine(self.lake_root, data_carteira, started)
            if self.on_success is not None:
                self.on_success(data_carteira)
            run["JobRunState"] = "SUCCEEDED"
            run["RefinedRows"] = outcome.rows
        except Exception as exc:  # a failed Glue run records its error, it does not raise
            run["JobRunState"] = "FAILED"
            run["ErrorMessage"] = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - t0
        run["CompletedOn"] = datetime.now(UTC).isoformat()
        run["LastModifiedOn"] = run["CompletedOn"]
        run["ExecutionTime"] = max(1, round(elapsed))
        run["ExecutionSeconds"] = round(elapsed, 3)
        self._record(run)
        return {"JobRunId": run_id}

    def _record(self, run: dict[str, Any]) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        target = self.runs_dir / f"{run['StartedOn'].replace(':', '')}-{run['Id']}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(run, indent=2, sort_keys=True))
        tmp.replace(target)

    def _runs(self) -> list[dict[str, Any]]:
        if not self.runs_dir.is_dir():
            return []
        runs = [json.loads(p.read_text()) for p in self.runs_dir.glob("*.json")]
        for run in runs:
            for key in ("StartedOn", "CompletedOn", "LastModifiedOn"):
                if key in run:
                    run[key] = datetime.fromisoformat(run[key])
        return sorted(runs, key=lambda r: r["StartedOn"], reverse=True)

    def get_job_runs(
        self,
        JobName: str,
        NextToken: str | None = None,  # noqa: N803
        MaxResults: int = 100,
    ) -> dict[str, Any]:
        runs = [r for r in self._runs() if r["JobName"] == JobName]
        start = int(NextToken or 0)
        page = runs[start : start + MaxResults]
        out: dict[str, Any] = {"JobRuns": page}
        if start + MaxResults < len(runs):
            out["NextToken"] = str(start + MaxResults)
        return out

    def get_job_run(self, JobName: str, RunId: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        for run in self._runs():
            if run["Id"] == RunId and run["JobName"] == JobName:
                return {"JobRun": run}
        raise KeyError(f"no local Glue job run {RunId} of {JobName} in {self.runs_dir}")


@dataclass(frozen=True)
class FinishedRun:
    """A Glue job run that reached a final state, as the sensor reports it."""

    run_id: str
    state: str
    data_carteira: date | None
    started_on: datetime
    completed_on: datetime | None
    execution_s: float
    dpu_seconds: float | None
    error_message: str | None
    arguments: dict[str, str]

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def _as_utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def finished_run(run: dict[str, Any]) -> FinishedRun:
    args = run.get("Arguments") or {}
    try:
        data_carteira: date | None = date.fromisoformat(args.get("--data_carteira", ""))
    except ValueError:
        data_carteira = None
    execution_s = float(run.get("ExecutionSeconds") or run.get("ExecutionTime") or 0)
    dpu = run.get("DPUSeconds")
    if dpu is None and run.get("WorkerType", "").startswith("G."):
        # Standard (non-flex) jobs bill workers x DPU per worker x time.
        per_worker = {"G.025X": 0.25, "G.1X": 1, "G.2X": 2, "G.4X": 4, "G.8X": 8}
        dpu = per_worker.get(run["WorkerType"], 1) * run.get("NumberOfWorkers", 0) * execution_s
    return FinishedRun(
        run_id=run["Id"],
        state=run["JobRunState"],
        data_carteira=data_carteira,
        started_on=_as_utc(run["StartedOn"]),  # type: ignore[arg-type]
        completed_on=_as_utc(run.get("CompletedOn")),
        execution_s=execution_s,
        dpu_seconds=float(dpu) if dpu is not None else None,
        error_message=run.get("ErrorMessage"),
        arguments=dict(args),
    )


@dataclass(frozen=True)
class WatchCursor:
    """What the sensor has reported: run ids, and how far back the next tick must look."""

    reported: tuple[str, ...] = ()
    horizon: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "reported": list(self.reported),
                "horizon": self.horizon.isoformat() if self.horizon else None,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> WatchCursor:
        if not text:
            return cls()
        data = json.loads(text)
        horizon = data.get("horizon")
        return cls(
            tuple(data.get("reported", ())), datetime.fromisoformat(horizon) if horizon else None
        )


class GlueJobWatcher:
    """Pages through ``GetJobRuns`` for one job (Glue or the local runner)."""

    #: How many reported run ids the cursor remembers (well above a year of backfill runs).
    MEMORY = 2000

    def __init__(self, glue_client: Any, job_name: str) -> None:
        self.glue = glue_client
        self.job_name = job_name

    def runs(self, horizon: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Job runs newest first, until the first page that reaches back past ``horizon``."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"JobName": self.job_name, "MaxResults": 200}
            if token:
                kwargs["NextToken"] = token
            resp = self.glue.get_job_runs(**kwargs)
            page = resp.get("JobRuns", [])
            yield from page
            token = resp.get("NextToken")
            oldest = min((_as_utc(r["StartedOn"]) for r in page), default=None)
            if not token or (horizon is not None and oldest is not None and oldest < horizon):
                return

    def poll(self, cursor: WatchCursor) -> tuple[list[FinishedRun], WatchCursor]:
        """Runs finished since the cursor, oldest first, and the cursor after reporting them."""
        seen = set(cursor.reported)
        fresh: list[FinishedRun] = []
        pending_starts: list[datetime] = []
        for run in self.runs(cursor.horizon):
            if run["JobRunState"] not in TERMINAL_STATES:
                pending_starts.append(_as_utc(run["StartedOn"]))  # type: ignore[arg-type]
            elif run["Id"] not in seen:
                fresh.append(finished_run(run))
        fresh.sort(key=lambda r: (r.completed_on or r.started_on, r.run_id))
        reported = (list(cursor.reported) + [r.run_id for r in fresh])[-self.MEMORY :]
        starts = pending_starts or [r.started_on for r in fresh]
        horizon = cursor.horizon
        if starts:
            # Look back a day before the oldest run still of interest: runs listed newest
            # first, so nothing that finishes later is skipped.
            horizon = min(starts) - timedelta(days=1)
        return fresh, WatchCursor(tuple(reported), horizon)
