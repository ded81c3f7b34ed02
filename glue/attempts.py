"""Which stale landing dates may start a Glue run now: no cost loops (issue #20).

Why. A landing date whose refine fails for good never gets ``_current.json``, so it stays
stale; without a bound, the hourly reconciliation would start a billed Glue run for it every
hour, forever (2 DPU x the 1-minute minimum, ~$10-20 a month per bad date). And a date whose
run is queued or running is stale until that run publishes: starting it again only doubles
the bill (the second run waits on the first's per-date lock).

So a stale date is *due* only when

- no run of the job that names it is in flight (STARTING, RUNNING, STOPPING, WAITING), and
- the runs that failed for it **since its inputs were last written** — its landing file and
  its previous landing date's, which its refine also reads (LastModified keys the count: new
  bytes in either start it again at zero, so fixing a corrupt previous date frees the dates
  after it too) — are fewer than
  :attr:`RetryPolicy.max_attempts`, and the last of them ended more than the back-off ago
  (``base * 2**(failures-1)``: 1 h, 2 h, 4 h by default).

A date that exhausted its attempts is *given up*: nothing starts it again until its landing
file changes (or someone starts a run by hand), and the caller alerts, naming it and the
last error. The failure count comes from Glue's own run history (``GetJobRuns``, kept 90
days), so a run killed before it wrote anything still counts, and no state is kept anywhere.

Pure logic in :func:`plan_refines`; :func:`refine_plan` gathers its inputs with boto3.
Deployable alone with the ``glue`` package: no ``b3_assets`` import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from glue.outcome import failed_in_batch
from glue.sessions import is_b3_session
from glue.storage import LandingObject, landing_objects
from glue.transform import previous_landing_date

#: Glue JobRunStates of a run that may still read landing or write refined.
ACTIVE_STATES = frozenset({"STARTING", "RUNNING", "STOPPING", "WAITING"})
#: Glue JobRunStates of a run that ended without publishing (a batch run's error names the
#: dates that failed; see glue/outcome.py).
FAILED_STATES = frozenset({"FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing date is tried again, and when to stop."""

    max_attempts: int = 3
    base: timedelta = timedelta(hours=1)

    def backoff(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th failed run (1 h, 2 h, 4 h…)."""
        return self.base * (2 ** max(failures - 1, 0))


@dataclass(frozen=True)
class RefinePlan:
    """What to do with each stale date."""

    due: list[date] = field(default_factory=list)
    in_flight: list[date] = field(default_factory=list)
    backing_off: dict[date, datetime] = field(default_factory=dict)  # date -> retry not before
    given_up: dict[date, str] = field(default_factory=dict)  # date -> the last error


def _utc(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _run_dates(run: Mapping[str, Any]) -> set[date]:
    arguments = run.get("Arguments") or {}
    texts = [
        arguments.get("--data_carteira", ""),
        *arguments.get("--data_carteiras", "").split(","),
    ]
    days = set()
    for text in texts:
        try:
            days.add(date.fromisoformat(text.strip()))
        except ValueError:
            continue
    return days


def _failed_for(run: Mapping[str, Any], day: date) -> bool:
    """Whether ``run`` ended without publishing ``day`` (a batch run that failed names the
    dates it could not publish in its error; the others it published)."""
    if run.get("JobRunState") not in FAILED_STATES:
        return False
    dates = _run_dates(run)
    if len(dates) > 1 and run.get("JobRunState") == "FAILED":
        failed = failed_in_batch(run.get("ErrorMessage"))
        if failed is not None:
            return day in failed
    return True


def plan_refines(
    stale: Iterable[date],
    landed: Mapping[date, LandingObject],
    runs: Iterable[Mapping[str, Any]],
    now: datetime,
    policy: RetryPolicy | None = None,
) -> RefinePlan:
    """Sort ``stale`` dates into due, in flight, backing off and given up (module docstring).

    ``landed``: every landing file (a stale date's previous landing date is among them).
    ``runs``: the job's runs (GetJobRuns' shape), at least back to the oldest stale date's
    landing file. A stale date with no landing file (deleted) is not due."""
    policy = policy or RetryPolicy()
    runs = list(runs)
    plan = RefinePlan()
    sessions = [d for d in landed if is_b3_session(d)]
    for day in sorted(set(stale)):
        mine = [r for r in runs if day in _run_dates(r)]
        if any(r.get("JobRunState") in ACTIVE_STATES for r in mine):
            plan.in_flight.append(day)
            continue
        file = landed.get(day)
        if file is None:
            continue
        previous = previous_landing_date(sessions, day)
        inputs_since = max(file.last_modified,
                           landed[previous].last_modified if previous else file.last_modified)
        failures = sorted(
            (r for r in mine
             if _failed_for(r, day) and (_utc(r.get("StartedOn")) or now) >= inputs_since),
            key=lambda r: _utc(r.get("CompletedOn")) or _utc(r.get("StartedOn")) or now,
        )  # fmt: skip
        if not failures:
            plan.due.append(day)
            continue
        last = failures[-1]
        if len(failures) >= policy.max_attempts:
            plan.given_up[day] = (
                f"{len(failures)} Glue runs failed for {day.isoformat()} since its landing file "
                f"(ETag {file.etag}) or its previous date's was written; the last, "
                f"{last.get('Id')}, "
                f"{last.get('JobRunState')}: {last.get('ErrorMessage') or 'no error message'}"
            )
            continue
        ended = _utc(last.get("CompletedOn")) or _utc(last.get("StartedOn")) or now
        retry_at = ended + policy.backoff(len(failures))
        if now >= retry_at:
            plan.due.append(day)
        else:
            plan.backing_off[day] = retry_at
    return plan


def job_runs_since(glue_client: Any, job_name: str, since: datetime) -> list[dict[str, Any]]:
    """The job's runs started at or after ``since`` (GetJobRuns, newest first, page by page
    until a page reaches back past it)."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"JobName": job_name, "MaxResults": 200}
        if token:
            kwargs["NextToken"] = token
        response = glue_client.get_job_runs(**kwargs)
        page = response.get("JobRuns", [])
        found.extend(page)
        token = response.get("NextToken")
        started = [s for r in page if (s := _utc(r.get("StartedOn"))) is not None]
        if not token or (started and min(started) < since):
            return found


def refine_plan(
    s3_client: Any,
    glue_client: Any,
    bucket: str,
    job_name: str,
    stale: Iterable[date],
    *,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
) -> RefinePlan:
    """:func:`plan_refines` over the lake and the job's run history. IAM: s3:ListBucket on
    ``landing/ibov/``, glue:GetJobRuns on the job."""
    stale = sorted(set(stale))
    if not stale:
        return RefinePlan()
    now = now or datetime.now(UTC)
    landed = landing_objects(s3_client, bucket)
    oldest = min((landed[d].last_modified for d in stale if d in landed), default=now)
    # Runs in flight may have started up to the job timeout before now, whatever the files.
    since = min(oldest, now - timedelta(hours=2))
    runs = job_runs_since(glue_client, job_name, since)
    return plan_refines(stale, landed, runs, now, policy)
