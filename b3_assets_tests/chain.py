"""Running the Dagster graph in tests: a platform on a temporary lake, the real definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from b3_assets.assets import LANDING, RAW
from b3_assets.definitions import build_definitions
from b3_assets.resources import Platform, build_platform
from b3_assets.settings import Settings

#: A port nothing listens on: "no network" for tests that must not reach B3.
CLOSED_URL = "http://127.0.0.1:9"


def local_platform(data_dir: Path, base_url: str = CLOSED_URL, **settings: Any) -> Platform:
    defaults: dict[str, Any] = {"fetch": "api", "http_retries": 1, "http_timeout_s": 5.0}
    defaults.update(settings)
    return build_platform(Settings(data_dir=data_dir, base_url=base_url, **defaults))


def materialize(
    platform: Platform,
    partition: str,
    *,
    refetch: bool = False,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """raw + landing (+ landing checks) for one date, as the daily schedule runs them."""
    defs = build_definitions(platform)
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=partition,
        asset_selection=[RAW, LANDING],
        run_config={"ops": {"raw__ibov_portfolio": {"config": {"refetch": refetch}}}},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def sensor_tick(
    platform: Platform, instance: dg.DagsterInstance, cursor: str | None = None
) -> Any:
    """One evaluation of the ``glue_job_runs`` sensor, as the daemon's tick would run it."""
    defs = build_definitions(platform)
    sensor = defs.get_sensor_def("glue_job_runs")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=platform.resources(), definitions=defs
    ) as ctx:
        return sensor.evaluate_tick(ctx)


def check_outcomes(tick: Any) -> dict[str, bool]:
    """What a sensor tick reported of each asset check: check name -> passed."""
    return {
        e.check_name: e.passed for e in tick.asset_events if isinstance(e, dg.AssetCheckEvaluation)
    }


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's message, to assert on what a user would read."""
    return "\n".join(
        str(e.step_failure_data.error.message) for e in result.all_events if e.is_step_failure
    )
