"""The partition rule, hour by hour: the latest partition is the session B3 serves now."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from b3_assets.partitions import trading_day_partitions
from b3_assets.sessions import b3_session_now, is_trading_day

SP = ZoneInfo("America/Sao_Paulo")


def _latest(moment: datetime) -> str:
    """The last of the partition keys Dagster lists at ``moment`` (the whole list from 2023)."""
    return trading_day_partitions.get_partition_keys(current_time=moment)[-1]


def _last_key(moment: datetime) -> str | None:
    """Dagster's last partition key at ``moment``: the same window as :func:`_latest`'s, found
    without listing every key since 2023 (~100x cheaper, so every hour can be asked)."""
    with dg.partition_loading_context(moment):
        return trading_day_partitions.get_last_partition_key()


def _hours(first: date, days: int, step_h: int = 1):
    start = datetime(first.year, first.month, first.day, tzinfo=SP)
    return [start + timedelta(hours=h) for h in range(0, days * 24, step_h)]


@pytest.mark.parametrize(
    "first",
    [
        date(2026, 11, 30),  # a plain fortnight, with two weekends
        date(2026, 12, 19),  # Christmas Eve and Christmas (Thu, Fri), New Year's Eve and Day
        date(2025, 2, 24),  # Carnival Monday and Tuesday, then Ash Wednesday (a session)
        date(2024, 11, 14),  # Consciência Negra (Wednesday 2024-11-20), Proclamação (Fri 15)
        date(2025, 4, 14),  # Good Friday and Tiradentes (Mon 04-21)
    ],
)
def test_the_latest_partition_is_the_session_b3_serves_every_hour(first):
    """Every hour: Dagster's last partition key is the session B3 serves; the full key list
    (what the UI and a backfill see) ends with it at the first hour, the last hour and on
    both sides of every change of the latest session."""
    moments = _hours(first, 14)
    latest = [_last_key(moment) for moment in moments]
    for moment, key in zip(moments, latest, strict=True):
        assert key == b3_session_now(moment).isoformat(), moment
    changes = {0, len(moments) - 1}
    changes |= {i for i in range(1, len(moments)) if latest[i] != latest[i - 1]}
    changes |= {i - 1 for i in changes if i > 0}
    assert len(changes) > 4  # a fortnight has sessions, weekends and holidays to cross
    for i in sorted(changes):
        assert _latest(moments[i]) == latest[i], moments[i]


def test_weekends_and_holidays_are_never_partitions():
    keys = trading_day_partitions.get_partition_keys(
        current_time=datetime(2027, 1, 4, 12, tzinfo=SP)
    )
    days = [date.fromisoformat(k) for k in keys]
    assert days[0] == date(2023, 1, 2)
    assert all(is_trading_day(d) for d in days)
    assert len(days) == len(set(days))
    # Every session up to the last one is a partition: none lost to the exclusions.
    assert days[-1] == date(2027, 1, 4)
    first, last = days[0], days[-1]
    sessions = [first + timedelta(n) for n in range((last - first).days + 1)]
    assert days == [d for d in sessions if is_trading_day(d)]


def test_a_weekday_partition_does_not_exist_before_its_day():
    # Thursday 23:59: Friday's partition is not there yet (B3 still shows Thursday's).
    assert _latest(datetime(2026, 12, 3, 23, 59, tzinfo=SP)
    ) == "2026-12-03"
    # Saturday 00:00: Monday's is (B3 shows the next session's portfolio all weekend).
    assert _latest(datetime(2026, 12, 5, 0, 0, tzinfo=SP)
    ) == "2026-12-07"


@pytest.mark.any_day
def test_right_now_the_daily_job_lands_the_latest_partition_exactly(tmp_path, b3_replica):
    """Whatever today is (a Sunday, Christmas, 08:29 on a Monday: scripts/any_day.sh), the
    latest partition is the session B3 serves, and the daily job lands it as served."""
    from b3_assets.storage.landing import read_landing
    from b3_assets_tests.support.chain import local_platform, materialize

    served = b3_session_now()
    latest = trading_day_partitions.get_last_partition_key()
    assert latest in {served.isoformat(), b3_session_now().isoformat()}  # midnight may pass
    portfolio = b3_replica.set_portfolio(date.fromisoformat(latest))
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert materialize(platform, latest).success
    table = read_landing(platform.lake, date.fromisoformat(latest)).to_pylist()
    assert {r["data_carteira"] for r in table} == {date.fromisoformat(latest)}
    landed = [(r["codigo"], r["qtde_teorica"], r["participacao_pct"]) for r in table]
    expected = sorted((c.codigo, c.qtde_teorica, c.participacao_pct)
                      for c in portfolio.constituents())
    assert landed == expected
