"""Launching runs for dates: the project's own entry points check the dates first.

Dagster refuses a date that is no partition in its own words (``dagster asset materialize
--partition 2025-03-04``: "All selected assets must have a PartitionsDefinition containing the
passed partition key `2025-03-04` or have no PartitionsDefinition."), which never says why.
``b3-pipeline backfill`` and the helpers here say it: "2025-03-04 is not a B3 session
(Tuesday, a weekend or B3 holiday): the sessions around it are 2025-02-28 and 2025-03-05."
The dates are checked before Dagster is even imported."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

from b3_assets.sessions import (
    FIRST_TRADING_DATE,
    b3_session_now,
    is_known_session,
    not_a_session_message,
)

#: What ``b3-pipeline backfill`` materializes: raw, landing and the marts, or without raw
#: (enough after ``import-csv``, which records raw). The Glue run the landing writes start is
#: recorded on refined, with the reports, by the glue_job_runs sensor's follow-up run.
RAW_LANDING_MARTS = ("raw/ibov_portfolio", "landing/ibov_portfolio", "marts/ibov_movimentos",
                     "marts/ibov_indicadores", "marts/ibov_setores")  # fmt: skip
LANDING_MARTS = RAW_LANDING_MARTS[1:]


class NotAPartition(ValueError):
    """A date with no partition: not a B3 session, before the first one, or not yet."""


def partition_problem(day: date, now: datetime | None = None) -> str | None:
    """Why ``day`` has no partition (None when it has one)."""
    if day < FIRST_TRADING_DATE:
        return (
            f"{day.isoformat()} is before the first partition, {FIRST_TRADING_DATE.isoformat()}."
        )
    latest = b3_session_now(now)
    if day > latest:
        return (
            f"{day.isoformat()} is after the latest partition, {latest.isoformat()} (the "
            "session B3 serves now): B3 has not published it yet."
        )
    if not is_known_session(day):
        return not_a_session_message(day)
    return None


def check_partition(day: date, now: datetime | None = None) -> str:
    """``day`` as a partition key, or :class:`NotAPartition` saying why it is none."""
    problem = partition_problem(day, now)
    if problem:
        raise NotAPartition(problem)
    return day.isoformat()


def partition_span(first: date, last: date) -> tuple[str, str]:
    """``first``…``last`` as partition keys, after checking both are partitions."""
    if last < first:
        raise NotAPartition(f"the range ends ({last}) before it starts ({first})")
    return check_partition(first), check_partition(last)


def backfill(
    first: date, last: date, select: Sequence[str], dagster_home: Callable[[], Path]
) -> int:
    """One run over ``first``…``last`` of the assets ``select`` on the Dagster instance
    ``dagster_home()`` sets up (the one ``make dev`` shows), in this process, as ``dagster
    asset materialize`` runs it, but with no check step planned: each step checks what it
    stored, so a date that fails (not in the archive, B3 down) leaves every check at its last
    real evaluation. The dates are checked first. Returns 0 when the run succeeded."""
    start, end = partition_span(first, last)
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    from b3_assets.definitions import build_definitions
    from b3_assets.portfolio.sensors import RANGE_END, RANGE_START
    from b3_assets.settings import code_location_settings

    defs = build_definitions(code_location_settings())  # the settings of now, not of import
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey.from_user_string(k) for k in select},
        asset_check_selection=set(),
    )
    where: dict[str, object] = (
        {"partition_key": start}
        if start == end
        else {"tags": {RANGE_START: start, RANGE_END: end}}
    )
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, **where)
    print(
        f"run {result.run_id} {'succeeded' if result.success else 'FAILED'}: "
        f"{', '.join(select)} {start}{'' if start == end else '…' + end} ({home})",
        file=sys.stderr,
    )
    return 0 if result.success else 1


def parse_dates(texts: Sequence[str]) -> tuple[date, date]:
    """``FIRST [LAST]`` (ISO dates) from the command line."""
    days = [date.fromisoformat(t) for t in texts]
    return days[0], days[-1]
