"""Issue #19's acceptance, through the Dagster CLI as a user runs it: two days with B3's sector
view unlabelled on the first both land exactly; the first with null sectors, filled in later
that day by the run the enrichments schedule asks for, the rows untouched."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from b3_assets.keys import LANDING
from b3_assets.portfolio.checks import ENRICHMENTS_PRESENT, VALID_PORTFOLIO
from b3_assets.portfolio.enrichments import FILL_SCHEDULE
from b3_assets.storage.landing import read_landing
from b3_assets_tests.portfolio.test_enrichment_degrade import (
    expected_rows,
    landed_rows,
    without_sectors,
)
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.support.chain import check_results, local_platform
from b3_assets_tests.support.deployment import RAW_AND_LANDING, cli, deployment_env

DAY1 = DEFAULT_DATE
DAY2 = DEFAULT_DATE + timedelta(days=1)


def _materialize(env: dict[str, str], day: str) -> None:
    proc = cli(env, "dagster", "asset", "materialize", "-m", "b3_assets.definitions",
               "--select", RAW_AND_LANDING, "--partition", day)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _checks(home: Path, day: str) -> dict[str, str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return check_results(instance, LANDING, [VALID_PORTFOLIO, ENRICHMENTS_PRESENT], day)


@pytest.mark.slow  # `dagster` subprocesses
def test_two_days_through_the_cli_with_the_sector_view_unlabelled_on_the_first(
    tmp_path, b3_replica
):
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    home.mkdir()
    env = deployment_env(home, lake, B3_BASE_URL=b3_replica.base_url)
    platform = local_platform(lake, b3_replica.base_url)

    # Day 1, 08:30: B3's sector view has no labels. The day lands anyway, exactly.
    day1 = b3_replica.set_portfolio(DAY1)
    b3_replica.fault("unlabelled")
    _materialize(env, DAY1.isoformat())
    degraded = read_landing(platform.lake, DAY1)
    assert landed_rows(degraded) == expected_rows(day1, sectors=False)
    assert _checks(home, DAY1.isoformat()) == {VALID_PORTFOLIO: "SUCCEEDED",
                                                ENRICHMENTS_PRESENT: "FAILED"}

    # 09:45: labelled again. The schedule asks for the fill; its run goes through the CLI.
    b3_replica.reset()
    b3_replica.set_portfolio(DAY1)
    schedule = platform.defs.resolve_schedule_def(FILL_SCHEDULE)
    with dg.DagsterInstance.from_config(str(home)) as instance, dg.build_schedule_context(
        instance=instance, resources=platform.resources,
        repository_def=platform.defs.get_repository_def(),
        scheduled_execution_time=datetime.combine(DAY1, time(9, 45),
                                                  ZoneInfo("America/Sao_Paulo")),
    ) as ctx:
        (request,) = schedule.evaluate_tick(ctx).run_requests
    config = tmp_path / "fill.yaml"
    config.write_text(json.dumps(request.run_config))  # JSON is YAML
    proc = cli(env, "dagster", "job", "execute", "-m", "b3_assets.definitions",
               "-j", "daily_ibov_portfolio", "-c", str(config),
               "--tags", json.dumps({**request.tags, "dagster/partition": DAY1.isoformat()}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    filled = read_landing(platform.lake, DAY1)
    assert landed_rows(filled) == expected_rows(day1, sectors=True)
    assert without_sectors(filled).equals(without_sectors(degraded))  # not one row touched
    assert _checks(home, DAY1.isoformat()) == {VALID_PORTFOLIO: "SUCCEEDED",
                                                ENRICHMENTS_PRESENT: "SUCCEEDED"}

    # Day 2: labelled from the start.
    day2 = b3_replica.set_portfolio(DAY2)
    _materialize(env, DAY2.isoformat())
    assert landed_rows(read_landing(platform.lake, DAY2)) == expected_rows(day2, sectors=True)
    assert _checks(home, DAY2.isoformat()) == {VALID_PORTFOLIO: "SUCCEEDED",
                                                ENRICHMENTS_PRESENT: "SUCCEEDED"}
    # Day 1 stays as filled.
    assert read_landing(platform.lake, DAY1).equals(filled)
