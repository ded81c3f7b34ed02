"""Index levels in Dagster: raw/b3_index_levels -> landing/b3_indices_fechamento, one partition
per year (from 1998: backfill them all on day one), the current year refreshed every trading
day by its own job, and a check that every session of the year has its close."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.indices.collect import membership_archive
from b3_assets.keys import LANDING_LEVELS, RAW_LEVELS
from b3_assets.levels.collect import (
    FIRST_LEVELS_YEAR,
    capture_levels,
    land_levels,
    levels_archive,
    missing_sessions,
)
from b3_assets.partitions import b3_schedule
from b3_assets.platform.resources import B3Site, CatalogResource, LakeResource
from b3_assets.sessions import (
    B3_TIMEZONE,
    b3_session_now,
    is_trading_day,
    not_a_session_message,
)
from b3_assets.source.api import fetch_index_levels, fetch_stock_index
from b3_assets.source.indices import LEVELS_SCHEMA, parse_membership
from b3_assets.storage.lake import Lake, LakeError
from b3_assets.storage.landing import read_parquet_key
from glue.layout import LANDING_LEVELS_PREFIX, TABLE_FECHAMENTO, index_table_prefix, levels_key

#: One partition per year, from the first year B3's statistics are collected for, through the
#: current year (``end_offset=1``: the year in progress is a partition).
year_partitions = dg.TimeWindowPartitionsDefinition(
    start=str(FIRST_LEVELS_YEAR), fmt="%Y", cron_schedule="0 0 1 1 *", timezone=B3_TIMEZONE,
    end_offset=1)


def indices_to_collect(lake: Lake, b3: B3Site) -> list[str]:
    """The indices of the latest GetStockIndex archived by the daily capture; with none yet,
    GetStockIndex asked now (nothing archived: it is not a trading date's capture)."""
    archive = membership_archive(lake)
    for day in sorted(archive.dates(), reverse=True):
        payload = archive.latest(day)
        if payload is not None:
            return parse_membership(payload, day).indices
    payload = fetch_stock_index(b3.base_url, timeout_s=b3.timeout_s, retries=b3.retries)
    return parse_membership(payload, b3_session_now()).indices


@dg.multi_asset(
    name="b3_index_levels_yearly",
    specs=[
        dg.AssetSpec(RAW_LEVELS, tags={"layer": "raw"},
                     kinds={"python"},
                     description="**Raw** one year of every index's daily closes as B3 sent "
                     "them (indexStatisticsProxy), byte for byte with a manifest "
                     "(raw/index_levels/indice=CODE/ano=YYYY/dt=…/); a closed year is never "
                     "asked again."),
        dg.AssetSpec(LANDING_LEVELS, deps=[RAW_LEVELS], tags={"layer": "landing"},
                     kinds={"parquet"},
                     description="**Landing** every index's closes of the year "
                     "(landing/index_levels/indice=CODE/ano=YYYY.parquet: indice, data, "
                     "fechamento decimal(18,2), one row per session); table "
                     "b3_indices_fechamento."),
    ],
    partitions_def=year_partitions,
)
def b3_index_levels_yearly(context: dg.AssetExecutionContext, lake: LakeResource, b3: B3Site,
                           catalog: CatalogResource) -> Iterator[dg.MaterializeResult]:
    """Every index's closes of each year of the run; an index failing fails the run at the
    end, naming it, after the others landed."""
    the_lake = lake.get()
    indices = indices_to_collect(the_lake, b3)
    today = b3_session_now()
    problems: list[str] = []
    served: dict[str, int] = {}
    for key in context.partition_keys:
        year = int(key)

        def fetch(index: str, y: int) -> Any:
            return fetch_index_levels(b3.base_url, index, y, timeout_s=b3.timeout_s,
                                      retries=b3.retries)

        capture = capture_levels(the_lake, indices, year, today, fetch)
        for levels in capture.levels.values():
            land_levels(the_lake, levels)
        served.update({f"{i} {year}": n for i, n in capture.served.items() if n})
        problems += [f"{index} {year}: {exc}" for index, exc in sorted(capture.failures.items())]
        context.log.info(f"{year}: {sum(1 for n in capture.served.values() if n)} indices with "
                         f"closes ({len(capture.fetched)} from B3, {len(capture.reused)} from "
                         f"the archive)")
    catalog.engine().publish_index_tables(
        {TABLE_FECHAMENTO: the_lake.uri(index_table_prefix(TABLE_FECHAMENTO) + "/")})
    if problems:
        raise dg.Failure(description="Index levels not collected (the others landed):\n"
                         + "\n".join(problems), allow_retries=False)
    table = ["| índice ano | sessões |", "|---|---:|"] + [
        f"| {k} | {n} |" for k, n in sorted(served.items())]
    yield dg.MaterializeResult(asset_key=RAW_LEVELS, metadata={"indices": len(indices)})
    yield dg.MaterializeResult(asset_key=LANDING_LEVELS, metadata={
        "dagster/row_count": sum(served.values()),
        "sessions_per_index": dg.MetadataValue.md("\n".join(table)),
        "lake_uri": dg.MetadataValue.text(the_lake.uri(LANDING_LEVELS_PREFIX + "/"))})


def levels_outcome(lake: Lake, index: str, year: int) -> tuple[bool, dict[str, Any]]:
    """Every session of the year, from the index's first close to the day before its latest
    capture, has a close."""
    captures = levels_archive(lake, index, year).dates()
    try:
        table = read_parquet_key(lake, levels_key(index, year), LEVELS_SCHEMA)
    except LakeError:
        return True, {"closes": 0}
    closes = table.column("data").to_pylist()
    missing = missing_sessions(closes, year, max(captures)) if captures else []
    return not missing, {"closes": len(closes),
                         "sessions_without_close": ", ".join(map(str, missing[:20])) or "none"}


@dg.multi_asset_check(
    name="index_levels_checks",
    specs=[dg.AssetCheckSpec(
        "every_session_has_its_close", asset=LANDING_LEVELS, partitions_def=year_partitions,
        description="Every B3 session of the year (from the index's first close to the day "
        "before the capture) has a close, for every index; names the sessions without one.")],
    can_subset=True,
)
def index_levels_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource
                        ) -> Iterator[dg.AssetCheckEvaluation]:
    the_lake = lake.get()
    for key in context.partition_keys:
        year = int(key)
        folders = the_lake.list_folders(LANDING_LEVELS_PREFIX)
        indices = [f.removeprefix("indice=") for f in folders if f.startswith("indice=")]
        bad: dict[str, str] = {}
        total = 0
        for index in sorted(indices):
            passed, meta = levels_outcome(the_lake, index, year)
            total += meta["closes"]
            if not passed:
                bad[index] = meta["sessions_without_close"]
        yield dg.AssetCheckEvaluation(
            asset_key=LANDING_LEVELS, check_name="every_session_has_its_close",
            passed=not bad, partition=key,
            metadata={"closes": total, "indices_with_gaps": dg.MetadataValue.text(
                "; ".join(f"{i}: {d}" for i, d in bad.items()) or "none")})


index_levels_job = dg.define_asset_job(
    "b3_index_levels",
    selection=dg.AssetSelection.assets(RAW_LEVELS, LANDING_LEVELS),
    description="Every index's daily closes of the years asked (backfill every year once; the "
    "schedule refreshes the current one every trading day).",
)


def levels_requests(day: date) -> list[dg.RunRequest] | dg.SkipReason:
    """The current year's partition on a trading day; in January the previous year's too (its
    last sessions closed after its last capture)."""
    if not is_trading_day(day):
        return dg.SkipReason(f"{not_a_session_message(day)} No new close.")
    years = [day.year - 1, day.year] if day.month == 1 else [day.year]
    return [dg.RunRequest(run_key=f"levels-{y}-{day.isoformat()}", partition_key=str(y))
            for y in years]


index_levels_schedule = b3_schedule(
    "b3_index_levels_0845",
    index_levels_job,
    "45 8 * * 1-5",
    "08:45 America/Sao_Paulo on every B3 trading day: the current year's closes "
    "of every index (yesterday's close added), on its own job.",
    lambda day, _context: levels_requests(day),
)


LEVELS_ASSETS = [b3_index_levels_yearly]
LEVELS_CHECKS = [index_levels_checks]
LEVELS_JOBS = [index_levels_job]
LEVELS_SCHEDULES = [index_levels_schedule]
