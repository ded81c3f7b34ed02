"""A date that is no partition: the project's entry points say why, the README quotes what
each command really prints, and ``b3-pipeline backfill`` runs one run with no check planned."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from b3_assets.cli import main as cli_main
from b3_assets.keys import LANDING
from b3_assets.launch import NotAPartition, check_partition, partition_problem
from b3_assets.portfolio.checks import VALID_PORTFOLIO
from b3_assets.sessions import FIRST_TRADING_DATE, not_a_session_message
from b3_assets_tests.replica.portfolios import write_csvs
from b3_assets_tests.support.chain import CLOSED_URL, check_results
from b3_assets_tests.support.deployment import cli, deployment_env

REPO = Path(__file__).resolve().parents[1]
HOLIDAY = date(2025, 3, 4)  # Carnival Tuesday
SESSION = date(2025, 3, 5)  # Ash Wednesday, a session
MESSAGE = (
    "2025-03-04 is not a B3 session (Tuesday, a weekend or B3 holiday): the sessions around "
    "it are 2025-02-28 and 2025-03-05."
)


def test_a_date_that_is_no_partition_is_named_with_the_sessions_around_it():
    assert not_a_session_message(HOLIDAY) == MESSAGE
    assert partition_problem(HOLIDAY) == MESSAGE
    assert partition_problem(SESSION) is None and check_partition(SESSION) == "2025-03-05"
    with pytest.raises(NotAPartition, match="is before the first partition, 2023-01-02"):
        check_partition(date(2022, 12, 30))
    with pytest.raises(NotAPartition, match="after the latest partition.*not published it yet"):
        check_partition(date(2099, 1, 5))  # any day of the week: always after the latest
    assert partition_problem(FIRST_TRADING_DATE) is None


@pytest.fixture
def lake_env(tmp_path, monkeypatch) -> tuple[Path, Path]:
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    for name in ("B3_ENV", "B3_BUCKET", "B3_FETCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("B3_DATA_DIR", str(lake))
    monkeypatch.setenv("B3_BASE_URL", CLOSED_URL)  # no network: the archive only
    return home, lake


def test_backfill_refuses_a_holiday_before_running_anything(lake_env, capsys):
    home, lake = lake_env
    assert cli_main(["backfill", "2025-03-04"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {MESSAGE}"
    assert cli_main(["backfill", "2025-02-28", "2025-03-03"]) == 2  # either end
    assert "2025-03-03 is not a B3 session (Monday" in capsys.readouterr().err
    assert not lake.exists() and not (home / "history").exists()


def test_backfill_runs_one_run_and_a_failed_date_leaves_the_checks_as_they_were(
    lake_env, tmp_path
):
    """Landing and the marts over the range, each step checking what it stored; then a date
    not in the archive fails its run, and valid_portfolio still shows the last evaluation."""
    home, lake = lake_env
    days = [date(2025, 2, 27), date(2025, 2, 28), SESSION]
    (csv_dir := tmp_path / "csv").mkdir()
    assert cli_main(["import-csv", *map(str, write_csvs(csv_dir, days))]) == 0
    assert cli_main(["backfill", "2025-02-27", "2025-03-05", "--no-raw"]) == 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        planned = dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
        assert not instance.all_logs(run.run_id, of_type=planned)  # no check step planned
        for day in days:
            assert check_results(instance, LANDING, [VALID_PORTFOLIO], day.isoformat()) == {
                VALID_PORTFOLIO: "SUCCEEDED"
            }
    # 2025-03-06 was never archived (and B3 is unreachable): that run fails, planning nothing.
    assert cli_main(["backfill", "2025-03-06"]) == 1
    with dg.DagsterInstance.from_config(str(home)) as instance:
        failed = instance.get_runs(limit=1)[0]
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert check_results(instance, LANDING, [VALID_PORTFOLIO], "2025-03-06") == {
            VALID_PORTFOLIO: "none"
        }
        (latest,) = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(LANDING, VALID_PORTFOLIO)]
        ).values()
        assert latest.status.value == "SUCCEEDED" and latest.partition == "2025-03-05"


def _readme_quotes(text: str) -> bool:
    return text in (REPO / "README.md").read_text()


@pytest.mark.slow
def test_the_readme_quotes_what_each_command_prints(tmp_path):
    """The troubleshooting rows quote ``b3-pipeline backfill``'s message and the last line of
    Dagster's own answer to ``dagster asset materialize --partition 2025-03-04``."""
    (tmp_path / "dagster_home").mkdir()  # Dagster's CLI needs it to exist
    env = deployment_env(tmp_path / "dagster_home", tmp_path / "lake")
    ours = cli(env, "b3-pipeline", "backfill", "2025-03-04")
    assert ours.returncode == 2 and ours.stderr.strip() == f"error: {MESSAGE}"
    assert _readme_quotes(MESSAGE)
    theirs = cli(
        env, "dagster", "asset", "materialize", "-m", "b3_assets.definitions",
        "--select", "landing/ibov_portfolio", "--partition", "2025-03-04",
    )  # fmt: skip
    assert theirs.returncode != 0
    last = theirs.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"dagster\._core\.errors\.DagsterInvalidSubsetError: .*2025-03-04.*", last)
    assert _readme_quotes(f"``{last}``"), last


#: Every schedule built by partitions.b3_schedule: one run per session, a skip otherwise.
SESSION_SCHEDULES = [
    "daily_ibov_portfolio_0830", "period_portfolios_0835", "daily_b3_indices_0840",
    "b3_index_levels_0845", "daily_ibov_portfolio_second_attempt_0945",
    "daily_b3_indices_second_attempt_0950",
]


@pytest.mark.parametrize("name", SESSION_SCHEDULES)
@pytest.mark.parametrize("day", [date(2025, 3, 8), HOLIDAY, date(2025, 4, 21)],
                         ids=["saturday", "carnival", "tiradentes"])
def test_every_session_schedule_skips_a_weekend_and_a_holiday_naming_it(tmp_path, name, day):
    """The tick Dagster evaluates (São Paulo time), with the daemon's instance and without
    one (a tick evaluated in a test or the UI's preview): a skip that names the day."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from b3_assets_tests.support.chain import local_platform

    defs = local_platform(tmp_path).defs
    schedule = defs.resolve_schedule_def(name)
    assert schedule.execution_timezone == "America/Sao_Paulo"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    at = datetime(day.year, day.month, day.day, 9, 50, tzinfo=ZoneInfo("America/Sao_Paulo"))
    with dg.instance_for_test() as instance:
        for with_instance in (instance, None):
            with dg.build_schedule_context(instance=with_instance, scheduled_execution_time=at,
                                           repository_def=defs.get_repository_def()) as ctx:
                data = schedule.evaluate_tick(ctx)
            assert not data.run_requests
            assert f"{day.isoformat()} is not a B3 session" in data.skip_message


@pytest.mark.parametrize("name", SESSION_SCHEDULES)
def test_every_session_schedule_asks_for_the_session_or_says_why_not(tmp_path, name):
    """On a session the first attempts ask for the date's partition (the levels: its year);
    the second attempts, with no failed first run on record, skip saying so."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from b3_assets_tests.support.chain import local_platform

    defs = local_platform(tmp_path).defs
    schedule = defs.resolve_schedule_def(name)
    at = datetime(2025, 3, 5, 9, 50, tzinfo=ZoneInfo("America/Sao_Paulo"))
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
    ) as ctx:
        data = schedule.evaluate_tick(ctx)
    keys = [r.partition_key for r in data.run_requests or []]
    if name == "daily_ibov_portfolio_second_attempt_0945":
        assert keys == [] and "did not fail" in data.skip_message
    elif name == "b3_index_levels_0845":
        assert keys == ["2025"]
    else:
        assert keys == ["2025-03-05"]
