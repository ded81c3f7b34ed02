"""The README's bootstrap under the daemon, on landing alone (issue #19's acceptance): after
``import-csv`` and the landing-only backfill (``dagster asset materialize --select
landing/ibov_portfolio``), a gap filled later and a re-run over the range, every date has its
marts and both reports, newer than its landing write, and no run or sensor tick fails."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from b3_assets.keys import LANDING, MART_KEYS, REFINED, REPORT, REPORT_MARTS
from b3_assets.marts.store import MartStore
from b3_assets.sessions import trading_days
from b3_assets.storage.lake import LocalLake
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.deployment import (
    LANDING_ONLY,
    backfill,
    cli,
    deployment_env,
    failed_sensor_ticks,
    materializations,
    running_daemon,
    wait_for,
    write_instance_yaml,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAYS = [d.isoformat() for d in trading_days(date(2025, 3, 10), date(2025, 3, 17))]  # 6 sessions
GAP = DAYS[2]
DERIVED = [REFINED, *MART_KEYS.values(), REPORT, REPORT_MARTS]


def _derived_after_landing(instance: dg.DagsterInstance, days: list[str]):
    def check() -> bool:
        landing = materializations(instance, LANDING)
        for key in DERIVED:
            latest = materializations(instance, key)
            if any(not latest.get(d) or latest[d][-1] < landing[d][-1] for d in days):
                return False
        return True

    return check


def _previous_date(lake, day: str) -> date:
    rows = MartStore(LocalLake(lake)).read("ibov_indicadores", int(day[:4])).to_pylist()
    (row,) = [r for r in rows if r["data_carteira"].isoformat() == day]
    return row["data_carteira_anterior"]


def _land(env, first: str, last: str) -> None:
    proc = backfill(env, first, last, select=LANDING_ONLY)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_import_landing_only_backfill_gap_fill_and_rerun_under_the_daemon(tmp_path):
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    write_instance_yaml(home)
    env = deployment_env(home, lake)
    csvs = dict(zip(DAYS, write_csvs(tmp_path / "csv", [date.fromisoformat(d) for d in DAYS]),
                    strict=True))  # fmt: skip
    imported = cli(env, "b3-pipeline", "import-csv", *(str(csvs[d]) for d in DAYS if d != GAP))
    assert imported.returncode == 0, imported.stderr
    log = tmp_path / "daemon.log"
    with running_daemon(env, log), dg.DagsterInstance.from_config(str(home)) as instance:
        _land(env, DAYS[0], DAYS[1])
        _land(env, DAYS[3], DAYS[5])
        landed = [d for d in DAYS if d != GAP]
        wait_for(_derived_after_landing(instance, landed), 300, "marts and reports", log)
        assert _previous_date(lake, DAYS[3]).isoformat() == DAYS[1]

        # The gap filled: the date after it is recomputed against it, its reports redrawn.
        assert cli(env, "b3-pipeline", "import-csv", str(csvs[GAP])).returncode == 0
        _land(env, GAP, GAP)
        wait_for(_derived_after_landing(instance, DAYS), 300, "the gap's marts and reports", log)
        wait_for(lambda: _previous_date(lake, DAYS[3]).isoformat() == GAP, 60,
                 f"{DAYS[3]} recomputed against {GAP}", log)  # fmt: skip

        # A re-run over the range: everything follows again.
        _land(env, DAYS[1], DAYS[4])
        wait_for(_derived_after_landing(instance, DAYS), 300, "the re-run's marts and reports", log)

        failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert [(r.job_name, r.tags.get("dagster/partition")) for r in failed] == []
        assert failed_sensor_ticks(instance) == []
        reports = materializations(instance, REPORT_MARTS)
        landing = materializations(instance, LANDING)
        assert reports[DAYS[3]][-1] > landing[GAP][-1]  # redrawn after the gap was filled
