"""Derived data follows landing: the marts and both reports catch up by themselves.

Every landing write is followed by its refine, and the ``glue_job_runs`` sensor's follow-up
run records refined, computes the marts of those dates (and of the next landing date, whose
previous date may have changed) and draws both reports (``sensors.py``). What that path can
miss — a follow-up or daily run killed or failed after landing, a report that could not be
drawn, a landing write whose refine was skipped because nothing changed, the next date of a
gap fill whose own refine comes later — is found here from Dagster's own records: per date,
each derived asset must be newer than what it is computed from.

The rule (:func:`derived_due`), by the latest materialization's storage id of each date:

- the marts of ``D`` are due when any mart is older than landing of ``D`` or of the landing
  date before ``D`` (a gap filled before ``D`` changes its previous date);
- ``report/ibov_marts`` of ``D`` is due with its marts, or when older than any of them;
- ``report/ibov_composition`` of ``D`` is due when older than refined of ``D``.

A date whose refine is pending (landing newer than refined) is left to its follow-up run, which
computes the marts with refined; the sensor requests one run per range of consecutive dates
and selection, and nothing while a run that lands, refines or derives is in progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import dagster as dg

from b3_assets.keys import LANDING, MART_KEYS, REFINED, REPORT, REPORT_MARTS
from b3_assets.partitions import latest_by_partition
from b3_assets.portfolio.sensors import (
    IN_PROGRESS,
    RANGE_END,
    RANGE_START,
    busy_runs,
    contiguous_ranges,
    refined_followup_job,
)

#: How often the records are compared (one indexed query per derived asset).
DERIVED_CATCHUP_INTERVAL_S = 300

#: Storage id of the latest materialization of each partition of one asset.
Latest = Mapping[str, int]


@dataclass(frozen=True)
class DerivedDue:
    """The dates whose derived assets are behind, by what must be recomputed."""

    marts: frozenset[date]
    report_marts: frozenset[date]
    report: frozenset[date]

    def selections(self) -> dict[frozenset[dg.AssetKey], set[date]]:
        """Dates grouped by the assets one run must materialize for them."""
        wanted: dict[date, set[dg.AssetKey]] = {}
        for day in self.marts:
            wanted.setdefault(day, set()).update(MART_KEYS.values())
        for day in self.marts | self.report_marts:
            wanted.setdefault(day, set()).add(REPORT_MARTS)
        for day in self.report:
            wanted.setdefault(day, set()).add(REPORT)
        grouped: dict[frozenset[dg.AssetKey], set[date]] = {}
        for day, keys in wanted.items():
            grouped.setdefault(frozenset(keys), set()).add(day)
        return grouped

    def __bool__(self) -> bool:
        return bool(self.marts or self.report_marts or self.report)


def derived_due(
    landing: Latest,
    refined: Latest,
    marts: Iterable[Latest],
    report_marts: Latest,
    report: Latest,
) -> DerivedDue:
    """Which dates' marts and reports are older than what they are computed from.

    Every mapping is partition key -> storage id of its latest materialization. Pure: the
    sensor reads the mappings from the instance, the tests give them directly."""
    mart_ids = list(marts)
    landed = sorted(landing)
    marts_due, report_marts_due, report_due = set(), set(), set()
    for index, key in enumerate(landed):
        refine_pending = refined.get(key, -1) < landing[key]
        inputs = max(landing[key], landing[landed[index - 1]] if index else -1)
        oldest_mart = min((m.get(key, -1) for m in mart_ids), default=-1)
        newest_mart = max((m.get(key, -1) for m in mart_ids), default=-1)
        day = date.fromisoformat(key)
        if oldest_mart < inputs:
            if not refine_pending:  # else its follow-up run computes them with refined
                marts_due.add(day)
        elif report_marts.get(key, -1) < newest_mart:
            report_marts_due.add(day)
        if not refine_pending and report.get(key, -1) < refined[key]:
            report_due.add(day)
    return DerivedDue(frozenset(marts_due), frozenset(report_marts_due), frozenset(report_due))


def records_of(instance: dg.DagsterInstance) -> dict[dg.AssetKey, dict[str, int]]:
    """The latest storage id per partition of landing, refined and every derived asset."""
    return {
        key: latest_by_partition(instance, key)
        for key in (LANDING, REFINED, *MART_KEYS.values(), REPORT_MARTS, REPORT)
    }


def due_from_records(records: Mapping[dg.AssetKey, Latest]) -> DerivedDue:
    return derived_due(
        records[LANDING],
        records[REFINED],
        [records[key] for key in MART_KEYS.values()],
        records[REPORT_MARTS],
        records[REPORT],
    )


derived_catchup_job = dg.define_asset_job(
    "derived_catchup",
    selection=dg.AssetSelection.assets(*MART_KEYS.values(), REPORT_MARTS, REPORT).without_checks(),
    description="The marts and reports of dates whose derived data is older than its landing "
    "or refined (the marts' step evaluates their checks). Requested by the derived_catchup "
    "sensor; each run selects only what its dates lack.",
)


def catchup_requests(due: DerivedDue, newest: int) -> list[dg.RunRequest]:
    """One run per range of consecutive dates and selection; keyed by the newest record
    seen, so a tick repeats no request until something was materialized again."""
    requests = []
    for keys, days in sorted(due.selections().items(), key=lambda kv: sorted(kv[1])[0]):
        names = "+".join(sorted(k.to_user_string() for k in keys))
        for first, last in contiguous_ranges(days):
            requests.append(
                dg.RunRequest(
                    job_name=derived_catchup_job.name,
                    asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
                    run_key=f"derived-{names}-{first}-{last}-{newest}",
                    tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
                )
            )
    return requests


def deriving_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress that compute derived data (their results are not recorded yet)."""
    jobs = {derived_catchup_job.name, refined_followup_job.name}
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS), limit=100)
    return [run for run in runs if run.job_name in jobs]


@dg.sensor(
    name="derived_catchup",
    minimum_interval_seconds=DERIVED_CATCHUP_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=derived_catchup_job,
    description="Every 5 minutes: finds dates whose marts or reports are older than their "
    "landing (or the landing date before them) or refined — a killed or failed run, a gap "
    "filled before a date — and requests the runs that bring them up to date.",
)
def derived_catchup(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    waiting = busy_runs(instance) + deriving_runs(instance)
    if waiting:
        return dg.SensorResult(
            skip_reason=f"{len(waiting)} run(s) are landing, refining or deriving; "
            "comparing after them"
        )
    records = records_of(instance)
    due = due_from_records(records)
    if not due:
        return dg.SensorResult(skip_reason="every date's marts and reports are current")
    newest = max((max(ids.values(), default=0) for ids in records.values()), default=0)
    behind = sorted(due.marts | due.report_marts | due.report)
    context.log.warning(
        f"{len(behind)} date(s) have marts or reports older than what they are computed from: "
        f"{', '.join(map(str, behind[:20]))}{' …' if len(behind) > 20 else ''}; requesting them"
    )
    return dg.SensorResult(run_requests=catchup_requests(due, newest))
