"""Two consecutive refined sessions on the local chain (B3 replica): what the report, SQL and UI
tests share, refined and ticked as the Dagster daemon would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg

from b3_assets_tests.replica import Replica
from b3_assets_tests.support.chain import Platform, failure_message, materialize, run_followups
from b3_assets_tests.support.ci import SAMPLES_DIR

#: Two consecutive sessions with real samples (Carnival lies between them).
DAY1, DAY2 = "2025-02-28", "2025-03-05"


def start_replica() -> Replica:
    """A replica of its own (module fixtures outlive the per-test ``b3_replica``); serves the
    real samples when ``b3_assets_tests/fixtures/b3`` exists, generated portfolios otherwise."""
    return Replica(samples_dir=SAMPLES_DIR if SAMPLES_DIR.is_dir() else None).start()


def refine(
    platform: Platform,
    replica: Replica,
    days: Sequence[str],
    instance: dg.DagsterInstance | None = None,
    *,
    record_refined: bool = True,
) -> list[dg.ExecuteInProcessResult]:
    """The daily job for each date in order (the landing write refines it with the local
    Glue runner, the run records it and draws its reports); without ``record_refined``: raw,
    landing and the marts, leaving the Glue runs to the sensor (as ``b3-pipeline backfill``)."""
    from b3_assets.keys import LANDING, MART_KEYS, RAW

    results = []
    for day in days:
        replica.set_portfolio(date.fromisoformat(day))
        selection = None if record_refined else [RAW, LANDING, *MART_KEYS.values()]
        result = materialize(platform, day, instance=instance, asset_selection=selection)
        assert result.success, failure_message(result)
        results.append(result)
    return results


def apply_tick(
    platform: Platform, instance: dg.DagsterInstance, tick: Any
) -> list[dg.ExecuteInProcessResult]:
    """What the daemon does with a tick: record its asset events (none: refined is recorded
    by runs), then launch the runs it requests (here in process, same instance)."""
    for event in tick.asset_events:
        instance.report_runless_asset_event(event)
    return run_followups(platform, instance, tick)


