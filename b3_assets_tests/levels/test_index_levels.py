"""Index levels through Dagster against the replica: a year of every index lands exactly as
served (B3's real IBOV 2022 closes, exact decimals), the catalog answers it, a closed year is
never asked again, one failing index blocks none of the others, every session has its close."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg

from b3_assets.keys import LANDING_LEVELS
from b3_assets.levels.assets import levels_outcome, levels_requests
from b3_assets.levels.collect import levels_archive, missing_sessions
from b3_assets.source.indices import LEVELS_SCHEMA, IndexLevels
from b3_assets.source.payload import RawPayload
from b3_assets.storage.lake import LocalLake
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.replica.indices import sample_closes
from b3_assets_tests.support.chain import check_results, failure_message, local_platform
from glue.layout import levels_key


def _run(platform, instance: dg.DagsterInstance, year: int):
    job = platform.defs.resolve_job_def("b3_index_levels")
    return job.execute_in_process(partition_key=str(year), instance=instance,
                                  raise_on_error=False)


def test_a_year_of_levels_equals_what_was_served(b3_replica, tmp_path: Path):
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    result = _run(platform, instance, 2022)
    assert result.success, failure_message(result)
    ibov = platform.catalog.query("SELECT data, fechamento FROM b3_indices_fechamento "
                                  "WHERE indice = 'IBOV' ORDER BY data").rows
    assert dict(ibov) == sample_closes() and len(ibov) == 250  # B3's real 2022 closes
    assert all(isinstance(v, Decimal) for _, v in ibov)
    for index in ("SMLL", "IFIX"):
        rows = platform.catalog.query("SELECT data, fechamento FROM b3_indices_fechamento "
                                      "WHERE indice = ? ORDER BY data", [index]).rows
        assert dict(rows) == b3_replica.levels(index, 2022)
    count = platform.catalog.query(
        "SELECT count(DISTINCT indice) FROM b3_indices_fechamento").rows
    assert count == [(34,)]
    assert check_results(instance, LANDING_LEVELS, ["every_session_has_its_close"],
                         "2022") == {"every_session_has_its_close": "SUCCEEDED"}
    # A closed year comes from its archive: B3 is not asked again.
    b3_replica.reset()
    assert _run(platform, instance, 2022).success
    assert not b3_replica.api_requests(kind="levels")


def test_years_before_an_index_existed_land_nothing_and_one_failure_blocks_none(
        b3_replica, tmp_path: Path):
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    assert _run(platform, instance, 2000).success  # the replica serves only IBOV back then
    assert [p.name for p in (tmp_path / "landing/index_levels").iterdir()] == ["indice=IBOV"]
    b3_replica.fault("5xx", index="SMLL", endpoint="IndexStatistics")
    result = _run(platform, instance, 2023)
    assert not result.success
    assert "SMLL 2023:" in failure_message(result) and "IBOV 2023" not in failure_message(result)
    landed = {p.name for p in (tmp_path / "landing/index_levels").iterdir()
              if (p / "ano=2023.parquet").exists()}
    assert "indice=IBOV" in landed and "indice=SMLL" not in landed and len(landed) == 33


def test_sessions_without_a_close_are_named_and_the_schedule_asks_the_current_year():
    closes = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 5)]
    assert missing_sessions(closes, 2024, date(2024, 1, 9)) == [date(2024, 1, 4),
                                                                date(2024, 1, 8)]
    assert [r.partition_key for r in levels_requests(date(2025, 3, 5))] == ["2025"]
    assert [r.partition_key for r in levels_requests(date(2025, 1, 2))] == ["2024", "2025"]
    assert isinstance(levels_requests(date(2025, 3, 8)), dg.SkipReason)


def _levels_lake(tmp_path: Path, closes: list[date], captured_on: date | None) -> LocalLake:
    """A lake with IBOV's 2024 closes landed and, when ``captured_on``, one raw capture."""
    lake = LocalLake(tmp_path)
    table = IndexLevels("IBOV", 2024, tuple((d, Decimal("130000.50")) for d in closes),
                        datetime(2024, 1, 9, 12, tzinfo=UTC), "http://b3.test").to_landing_table()
    lake.write_bytes(levels_key("IBOV", 2024), landing_parquet(table, LEVELS_SCHEMA))
    if captured_on is not None:
        payload = RawPayload("api", "http://b3.test/levels", datetime(2024, 1, 9, tzinfo=UTC),
                             (("page-001.json", b"{}"),))
        levels_archive(lake, "IBOV", 2024).store(payload, captured_on)
    return lake


def test_levels_outcome_names_the_sessions_without_a_close(tmp_path: Path) -> None:
    """The check's rule on the files as stored: a gap before the capture fails, naming it."""
    whole = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5),
             date(2024, 1, 8)]
    assert levels_outcome(_levels_lake(tmp_path / "a", whole, date(2024, 1, 9)), "IBOV",
                          2024) == (True, {"closes": 5, "sessions_without_close": "none"})
    gap = [d for d in whole if d != date(2024, 1, 4)]
    passed, meta = levels_outcome(_levels_lake(tmp_path / "b", gap, date(2024, 1, 9)), "IBOV",
                                  2024)
    assert not passed and meta == {"closes": 4, "sessions_without_close": "2024-01-04"}
    # The capture's own day has no close yet: not a gap.
    assert levels_outcome(_levels_lake(tmp_path / "c", whole[:-1], date(2024, 1, 8)), "IBOV",
                          2024)[0]
    # No landing file of the year: nothing to judge (the capture's own check fails it).
    assert levels_outcome(LocalLake(tmp_path / "d"), "IBOV", 2024) == (True, {"closes": 0})
