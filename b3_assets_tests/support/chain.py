"""Running the Dagster graph in tests: a platform on a temporary lake, the real definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg

from b3_assets.definitions import build_definitions
from b3_assets.platform.catalog import QueryEngine
from b3_assets.platform.resources import resources_for
from b3_assets.settings import Settings
from b3_assets.storage.lake import Lake
from b3_assets_tests.support.deployment import latest_check

#: A port nothing listens on: "no network" for tests that must not reach B3.
CLOSED_URL = "http://127.0.0.1:9"


def _daily_without_reports() -> list[dg.AssetKey]:
    from b3_assets.keys import LANDING, MART_KEYS, RAW, REFINED

    return [RAW, LANDING, REFINED, *MART_KEYS.values()]


#: The daily job but for its reports: on moto, Athena answers queued results only.
DAILY_WITHOUT_REPORTS = _daily_without_reports()


@dataclass
class Platform:
    """The settings of a test environment and what its resources build, for assertions."""

    settings: Settings

    @cached_property
    def resources(self) -> dict[str, Any]:
        return resources_for(self.settings)

    @cached_property
    def defs(self) -> dg.Definitions:
        return build_definitions(self.settings)

    @property
    def lake(self) -> Lake:
        return self.resources["lake"].get()

    @property
    def catalog(self) -> QueryEngine:
        return self.resources["catalog"].engine()

    @property
    def glue(self) -> Any:
        """The Glue client of the environment (the local runner, or boto3's)."""
        return self.resources["glue_job"].client()


def local_platform(data_dir: Path, base_url: str = CLOSED_URL, **settings: Any) -> Platform:
    defaults: dict[str, Any] = {"fetch": "api", "http_retries": 1, "http_timeout_s": 5.0}
    defaults.update(settings)
    return Platform(Settings(data_dir=data_dir, base_url=base_url, **defaults))


def materialize(
    platform: Platform,
    partition: str,
    *,
    refetch: bool = False,
    instance: dg.DagsterInstance | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """The daily job for one date, as the daily schedule runs it (raw, landing, refined
    recorded, marts, reports; each step checks what it stored), or ``asset_selection`` of it
    (e.g. raw and landing only, as a backfill from the CLI)."""
    job = _subset(platform.defs.resolve_job_def("daily_ibov_portfolio"), asset_selection)
    return job.execute_in_process(
        partition_key=partition,
        run_config={"ops": {"raw__ibov_portfolio": {"config": {"refetch": refetch}}}},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _subset(job: dg.JobDefinition, assets: list[dg.AssetKey] | None) -> dg.JobDefinition:
    """``assets`` of ``job`` and none of their checks (an asset selection alone would add
    every check of those assets, which the job itself leaves to the steps)."""
    if assets is None:
        return job
    return job.get_subset(asset_selection=set(assets), asset_check_selection=set())


def materialize_range(
    platform: Platform,
    instance: dg.DagsterInstance,
    first: date,
    last: date,
    asset_selection: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """The daily job (or ``asset_selection`` of it) over ``first``…``last`` in one run: a
    single-run backfill."""
    from b3_assets.portfolio.sensors import RANGE_END, RANGE_START

    job = _subset(platform.defs.resolve_job_def("daily_ibov_portfolio"), asset_selection)
    return job.execute_in_process(
        instance=instance,
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
        raise_on_error=False,
    )


def sensor_tick(
    platform: Platform,
    instance: dg.DagsterInstance,
    cursor: str | None = None,
    name: str = "glue_job_runs",
) -> Any:
    """One evaluation of the sensor ``name``, as the daemon's tick would run it."""
    sensor = platform.defs.resolve_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=platform.resources, definitions=platform.defs
    ) as ctx:
        return sensor.evaluate_tick(ctx)


def run_followups(
    platform: Platform,
    instance: dg.DagsterInstance,
    tick: Any,
    job_name: str | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Execute the runs a sensor tick requested, in process, as the daemon would launch them
    (``job_name``: another job over the same partition ranges; ``asset_selection``: part of
    the job, e.g. refined without the reports)."""
    results = []
    for request in tick.run_requests or []:
        selected = asset_selection or request.asset_selection  # the request's own subset
        job = _subset(platform.defs.resolve_job_def(job_name or request.job_name), selected)
        results.append(
            job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
        )
    return results


def check_results(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, names: list[str], partition: str
) -> dict[str, str]:
    """The status of each check's latest execution for one partition, as the UI shows it
    (SUCCEEDED, FAILED, PLANNED, SKIPPED, or "none" when never evaluated)."""
    out = {}
    for name in names:
        latest = latest_check(instance, asset_key, name, partition)
        out[name] = latest[0] if latest else "none"
    return out


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's message, to assert on what a user would read."""
    return "\n".join(
        str(e.step_failure_data.error.message) for e in result.all_events if e.is_step_failure
    )
