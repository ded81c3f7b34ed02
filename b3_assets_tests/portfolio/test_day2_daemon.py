"""Day 2 on a real Dagster deployment: the daemon ticks the sensor while dates are refined,
re-run alone and backfilled again over refined dates (issue: the Glue -> Dagster loop).
The same scenario runs on both instance storages: SQLite files (``make dev``) and PostgreSQL
(the container deployment, deploy/dagster.yaml)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from b3_assets.keys import LANDING, REFINED, REPORT
from b3_assets.portfolio.checks import LANDING_CHECKS, REFINED_CHECKS
from b3_assets.sessions import trading_days
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support import postgres
from b3_assets_tests.support.deployment import (
    cli,
    deployment_env,
    failed_sensor_ticks,
    latest_check,
    materializations,
    materialize_range,
    running_daemon,
    wait_for,
    write_instance_yaml,
)

# The storage fixtures, parametrized over sqlite and postgres (support/postgres.py).
instance_storage = postgres.instance_storage
postgres_server = postgres.postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAYS = [d.isoformat() for d in trading_days(date(2025, 3, 10), date(2025, 3, 17))]  # 6 sessions


def _settled(instance: dg.DagsterInstance, days: list[str], landing_writes: dict[str, int]):
    """True once every date's refined materializations match its landing writes and its
    report and checks are newer than its latest refined materialization."""

    def check() -> bool:
        refined = materializations(instance, REFINED)
        reports = materializations(instance, REPORT)
        for day in days:
            if len(refined.get(day, [])) != landing_writes[day]:
                return False
            latest = refined[day][-1]
            if not reports.get(day) or reports[day][-1] < latest:
                return False
            for name in REFINED_CHECKS:
                result = latest_check(instance, REFINED, name, day)
                if result is None or result[0] == "PLANNED" or result[1] < latest:
                    return False
        return True

    return check


def test_refine_rerun_and_overlapping_backfill_with_the_daemon(tmp_path, instance_storage):
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    write_instance_yaml(home, instance_storage)
    env = deployment_env(home, lake)
    csvs = write_csvs(tmp_path / "csv", [date.fromisoformat(d) for d in DAYS])
    imported = cli(env, "b3-pipeline", "import-csv", *map(str, csvs))
    assert imported.returncode == 0, imported.stderr
    writes = dict.fromkeys(DAYS, 0)
    log = tmp_path / "daemon.log"
    with running_daemon(env, log), dg.DagsterInstance.from_config(str(home)) as instance:
        # Imported dates are raw materializations already: nothing "missing upstream".
        assert sorted(materializations(instance, dg.AssetKey(["raw", "ibov_portfolio"]))) == DAYS
        steps = [(DAYS[0], DAYS[4]), (DAYS[2], DAYS[2]), (DAYS[3], DAYS[5])]
        for first, last in steps:
            materialize_range(env, first, last)
            for day in DAYS[DAYS.index(first) : DAYS.index(last) + 1]:
                writes[day] += 1
            done = [d for d in DAYS if writes[d]]
            wait_for(_settled(instance, done, writes), 240, f"dates {done} settled", log)
        assert failed_sensor_ticks(instance) == []
        refined = materializations(instance, REFINED)
        landing = materializations(instance, LANDING)
        for day in DAYS:
            # Recorded once per landing write, each after that write.
            assert len(refined[day]) == len(landing[day]) == writes[day]
            assert refined[day][-1] > landing[day][-1]
            for name in LANDING_CHECKS:
                status, when = latest_check(instance, LANDING, name, day)
                assert status == "SUCCEEDED" and when > landing[day][-1], (day, name)
            for name in REFINED_CHECKS:
                status, when = latest_check(instance, REFINED, name, day)
                assert status == "SUCCEEDED" and when > refined[day][-1], (day, name)
