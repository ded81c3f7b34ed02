"""Glue job runs as the sensor sees them: finished runs, read page by page, a bounded batch.

The same code reads AWS Glue's ``GetJobRuns`` and the local runner's records
(:class:`b3_assets.platform.local_aws.LocalGlueRunner` answers in Glue's shape)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from glue.outcome import failed_in_batch

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED"})
#: DPU per worker of each Glue worker type (standard execution class bills workers x DPU x time).
DPU_PER_WORKER = {"G.025X": 0.25, "G.1X": 1, "G.2X": 2, "G.4X": 4, "G.8X": 8}


@dataclass(frozen=True)
class FinishedRun:
    """A Glue job run that reached a final state, as the sensor reports it."""

    run_id: str
    state: str
    dates: tuple[date, ...]
    started_on: datetime
    completed_on: datetime | None
    execution_s: float
    dpu_seconds: float | None
    error_message: str | None

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"

    @property
    def refined_dates(self) -> tuple[date, ...]:
        """The dates this run published: all of them when it succeeded; when a run of many
        dates failed, those it published anyway (its error names them, glue/outcome.py)."""
        if self.succeeded:
            return self.dates
        failed = failed_in_batch(self.error_message) if len(self.dates) > 1 else None
        return () if failed is None else tuple(d for d in self.dates if d not in failed)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_dates(arguments: dict[str, str]) -> tuple[date, ...]:
    """The dates of a run: ``--data_carteira D`` or ``--data_carteiras D1,D2,…``; () if none."""
    text = arguments.get("--data_carteiras") or arguments.get("--data_carteira") or ""
    days = set()
    for part in text.split(","):
        try:
            days.add(date.fromisoformat(part.strip()))
        except ValueError:
            continue
    return tuple(sorted(days))


def finished_run(run: dict[str, Any]) -> FinishedRun:
    execution_s = float(run.get("ExecutionSeconds") or run.get("ExecutionTime") or 0)
    dpu = run.get("DPUSeconds")
    if dpu is None and run.get("WorkerType") in DPU_PER_WORKER:
        dpu = DPU_PER_WORKER[run["WorkerType"]] * run.get("NumberOfWorkers", 0) * execution_s
    completed = run.get("CompletedOn")
    return FinishedRun(
        run_id=run["Id"],
        state=run["JobRunState"],
        dates=run_dates(run.get("Arguments") or {}),
        started_on=_as_utc(run["StartedOn"]),
        completed_on=_as_utc(completed) if completed else None,
        execution_s=execution_s,
        dpu_seconds=float(dpu) if dpu is not None else None,
        error_message=run.get("ErrorMessage"),
    )


@dataclass(frozen=True)
class WatchCursor:
    """What the sensor has reported: run ids, and how far back the next tick must look."""

    reported: tuple[str, ...] = ()
    horizon: datetime | None = None

    def to_json(self) -> str:
        horizon = self.horizon.isoformat() if self.horizon else None
        return json.dumps({"reported": list(self.reported), "horizon": horizon})

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

    #: How many reported run ids the cursor remembers (well above a year of runs).
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

    def latest_finished(self, day: date) -> FinishedRun | None:
        """The newest finished run that refined ``day`` (for the run-succeeded check)."""
        for run in self.runs():
            if run["JobRunState"] in TERMINAL_STATES and day in run_dates(
                run.get("Arguments") or {}
            ):
                return finished_run(run)
        return None

    def find(self, run_ids: set[str]) -> dict[str, FinishedRun]:
        """The finished runs among ``run_ids``, listing newest first until all are found
        (the runs that published a date are usually the newest)."""
        found: dict[str, FinishedRun] = {}
        for run in self.runs():
            if run["Id"] in run_ids and run["JobRunState"] in TERMINAL_STATES:
                found[run["Id"]] = finished_run(run)
                if len(found) == len(run_ids):
                    break
        return found

    def poll(
        self,
        cursor: WatchCursor,
        limit: int,
        defer: Callable[[FinishedRun], bool] = lambda _run: False,
    ) -> tuple[list[FinishedRun], WatchCursor]:
        """At most ``limit`` runs finished since the cursor, oldest first, and the next cursor.

        The cursor moves exactly past what is returned: runs left for later ticks (beyond
        ``limit``, or ``defer``-red) keep the horizon far enough back to be listed again."""
        seen = set(cursor.reported)
        fresh: list[FinishedRun] = []
        pending_starts: list[datetime] = []
        for run in self.runs(cursor.horizon):
            if run["JobRunState"] not in TERMINAL_STATES:
                pending_starts.append(_as_utc(run["StartedOn"]))
            elif run["Id"] not in seen:
                finished = finished_run(run)
                if defer(finished):
                    pending_starts.append(finished.started_on)
                else:
                    fresh.append(finished)
        fresh.sort(key=lambda r: (r.completed_on or r.started_on, r.run_id))
        taken, left = fresh[:limit], fresh[limit:]
        reported = (list(cursor.reported) + [r.run_id for r in taken])[-self.MEMORY :]
        starts = pending_starts + [r.started_on for r in left] or [r.started_on for r in taken]
        horizon = cursor.horizon
        if starts:
            # A day before the oldest run still of interest: runs are listed newest first, so
            # nothing that finishes later is skipped.
            horizon = min(starts) - timedelta(days=1)
        return taken, WatchCursor(tuple(reported), horizon)
