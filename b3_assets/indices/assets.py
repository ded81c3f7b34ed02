"""Every B3 index in Dagster: raw/b3_indices -> landing/b3_carteiras, landing/b3_composicao,
partitioned by trading date, with their own job and schedules so IBOV never waits for them.

One step captures a date (b3_assets/indices/collect.py), lands what it collected, patches the
year files the catalog reads (``serving/b3_carteiras/ano=YYYY.parquet``…) and makes the
catalog current; when an index is missing it fails naming each one, after recording what
landed, so the 09:50 second attempt (or any rerun) fetches only those.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from b3_assets.b3.api import fetch_stock_index
from b3_assets.b3.indices import COMPOSICAO_SCHEMA, fetch_index_portfolio
from b3_assets.b3.model import LANDING_SCHEMA
from b3_assets.b3.validate import Columns, index_rules
from b3_assets.indices.collect import IndicesCapture, capture_indices, land_indices
from b3_assets.lake import Lake, LakeError
from b3_assets.landing import read_parquet_key
from b3_assets.marts import MartStore, YearTable
from b3_assets.partitions import partition_dates, trading_day_partitions
from b3_assets.resources import B3Site, CatalogResource, LakeResource
from b3_assets.sessions import is_trading_day
from glue.layout import (
    INDEX_TABLE_COLUMNS,
    TABLE_CARTEIRAS,
    TABLE_COMPOSICAO,
    carteiras_key,
    composicao_key,
    index_table_prefix,
)

RAW_INDICES = dg.AssetKey(["raw", "b3_indices"])
LANDING_CARTEIRAS = dg.AssetKey(["landing", "b3_carteiras"])
LANDING_COMPOSICAO = dg.AssetKey(["landing", "b3_composicao"])
GROUP = "indices"
OWNERS = ["team:b3-pipeline"]

#: The catalog tables of the daily index files, one Parquet file per year (history reads a
#: few files, not one per date).
INDEX_YEAR_TABLES: dict[str, YearTable] = {
    TABLE_CARTEIRAS: YearTable(
        LANDING_SCHEMA,
        [("data_carteira", "ascending"), ("indice", "ascending"), ("codigo", "ascending")],
        index_table_prefix(TABLE_CARTEIRAS)),
    TABLE_COMPOSICAO: YearTable(
        COMPOSICAO_SCHEMA,
        [("data_captura", "ascending"), ("indice", "ascending"), ("codigo", "ascending")],
        index_table_prefix(TABLE_COMPOSICAO), date_column="data_captura"),
}


def index_store(lake: Lake) -> MartStore:
    return MartStore(lake, tables=INDEX_YEAR_TABLES)


class IndicesConfig(dg.Config):
    refetch: bool = False
    """Fetch from B3 even what the archive has for the date (only the date B3 is on)."""


def _column_schema(name: str) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.glue_type, description=c.comment)
                                   for c in INDEX_TABLE_COLUMNS[name]])


def capture_date(lake: Lake, b3: B3Site, day: date, refetch: bool = False) -> IndicesCapture:
    """Every index of ``day`` with the B3 site's address, timeout and retries."""
    options: dict[str, Any] = {"timeout_s": b3.timeout_s, "retries": b3.retries}
    return capture_indices(
        lake, day, lambda: fetch_stock_index(b3.base_url, **options),
        lambda index: fetch_index_portfolio(b3.base_url, index, **options), refetch=refetch)


def rows_markdown(rows: Mapping[str, int], missing: Sequence[str]) -> str:
    lines = ["| índice | linhas |", "|---|---:|"]
    lines += [f"| {index} | {n} |" for index, n in rows.items()]
    lines += [f"| {index} | **missing** |" for index in missing]
    return "\n".join(lines)


@dg.multi_asset(
    name="b3_indices_daily",
    specs=[
        dg.AssetSpec(
            RAW_INDICES, group_name=GROUP, owners=OWNERS, tags={"layer": "raw"},
            kinds={"python"},
            description="**Raw** every B3 index: GetStockIndex (the list of indices, so a new "
            "one needs no code change) and each index's portfolio as B3 sent it on the date, "
            "byte for byte with a manifest (raw/indices/dt=…/indice=CODE/). At most 4 requests "
            "at once; the archive is reused with no network unless `refetch`."),
        dg.AssetSpec(
            LANDING_CARTEIRAS, deps=[RAW_INDICES], group_name=GROUP, owners=OWNERS,
            tags={"layer": "landing"}, kinds={"parquet"},
            description="**Landing** every index's portfolio of the date "
            "(landing/indices/dt=…/carteiras.parquet, the landing schema, sorted by indice, "
            "codigo; sectors null where B3 has no sector view); table b3_carteiras.",
            metadata={"dagster/column_schema": _column_schema(TABLE_CARTEIRAS)}),
        dg.AssetSpec(
            # Skippable: a date bootstrapped from CSV downloads has no GetStockIndex.
            LANDING_COMPOSICAO, deps=[RAW_INDICES], group_name=GROUP, owners=OWNERS,
            skippable=True,
            tags={"layer": "landing"}, kinds={"parquet"},
            description="**Landing** GetStockIndex as served on the date: one row per (ticker, "
            "index) (landing/indices/dt=…/composicao.parquet); table b3_composicao.",
            metadata={"dagster/column_schema": _column_schema(TABLE_COMPOSICAO)}),
    ],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def b3_indices_daily(
    context: dg.AssetExecutionContext, config: IndicesConfig, lake: LakeResource, b3: B3Site,
    catalog: CatalogResource,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    """Each date of the run: capture (archive first), land, patch the year files, then the
    catalog. Every date is tried; a date with a missing index fails the run at the end, naming
    each index and B3's error, after its landed files were recorded."""
    the_lake = lake.get()
    store = index_store(the_lake)
    problems: list[str] = []
    landed: dict[date, dict[dg.AssetKey, dict[str, Any]]] = {}
    days = partition_dates(context)
    for day in days:
        capture = capture_date(the_lake, b3, day, config.refetch)
        files = land_indices(the_lake, capture)
        rows = capture.rows_per_index()
        meta: dict[dg.AssetKey, dict[str, Any]] = {}
        if files.carteiras_table is not None:
            store.replace(TABLE_CARTEIRAS, day.year, {day}, files.carteiras_table)
            meta[LANDING_CARTEIRAS] = {
                "dagster/row_count": files.rows, "indices_collected": len(rows),
                "rows_per_index": dg.MetadataValue.md(rows_markdown(rows, capture.missing)),
                "lake_uri": dg.MetadataValue.text(the_lake.uri(carteiras_key(day)))}
            meta[RAW_INDICES] = {"fetched_from_b3": ", ".join(capture.fetched) or "none",
                                 "reused_from_archive": len(capture.reused)}
        if files.composicao_table is not None:
            store.replace(TABLE_COMPOSICAO, day.year, {day}, files.composicao_table)
            meta[LANDING_COMPOSICAO] = {
                "dagster/row_count": files.composicao_table.num_rows,
                "indices_listed": len(capture.membership.indices) if capture.membership else 0,
                "lake_uri": dg.MetadataValue.text(the_lake.uri(composicao_key(day)))}
        landed[day] = meta
        context.log.info(f"{day}: {len(rows)} indices landed ({len(capture.fetched)} from B3, "
                         f"{len(capture.reused)} from the archive); missing: "
                         f"{', '.join(capture.missing) or 'none'}")
        problems += [f"{day} {line}" for line in capture.problems()]
    catalog.engine().publish_index_tables(
        {name: the_lake.uri(index_table_prefix(name) + "/") for name in INDEX_YEAR_TABLES})
    complete = not problems and all(LANDING_CARTEIRAS in m for m in landed.values())
    if not complete:
        for day, meta in landed.items():
            for key, values in meta.items():
                yield dg.AssetMaterialization(asset_key=key, partition=day.isoformat(),
                                              metadata=values)
        raise dg.Failure(
            description="Some indices were not collected (the others landed; a rerun fetches "
            "only these):\n" + "\n".join(problems or ["nothing landed for " + ", ".join(
                d.isoformat() for d, m in landed.items() if LANDING_CARTEIRAS not in m)]),
            allow_retries=False,
            metadata={"landed_dates": ", ".join(d.isoformat() for d, m in landed.items() if m)
                      or "none"})
    last = landed[days[-1]]
    for key in (RAW_INDICES, LANDING_CARTEIRAS, LANDING_COMPOSICAO):
        if key in last:  # no GetStockIndex for a date bootstrapped from CSV downloads
            yield dg.MaterializeResult(asset_key=key, metadata={**last[key], "dates": len(days)})


# --- checks: one result per date ------------------------------------------------------------

def carteiras_outcome(lake: Lake, day: date) -> tuple[bool, dict[str, Any]]:
    """Every index GetStockIndex listed on ``day`` has landed, and every landed index passes
    its rules as stored (unique codes, quantities adding up to the header's total, weights to
    100 ± 0.01, a sound reductor); the metadata names each missing index and broken rule."""
    try:
        table = read_parquet_key(lake, carteiras_key(day), LANDING_SCHEMA)
    except LakeError as exc:
        return False, {"problem": str(exc)}
    try:
        listed = set(read_parquet_key(lake, composicao_key(day), COMPOSICAO_SCHEMA)
                     .column("indice").to_pylist())
    except LakeError:
        listed = set()
    landed = sorted(set(table.column("indice").to_pylist()))
    broken = []
    for index in landed:
        rows = table.filter(pc.equal(table.column("indice"), index))
        cols = Columns(rows.column("codigo").to_pylist(), rows.column("qtde_teorica").to_pylist(),
                       rows.column("participacao_pct").to_pylist(),
                       sorted(set(rows.column("qtde_teorica_total").to_pylist())),
                       sorted(set(rows.column("redutor").to_pylist()), key=Decimal))
        broken += [f"{index}: {o.problem}" for o in index_rules(cols, index).values()
                   if not o.passed]
        if set(rows.column("data_carteira").to_pylist()) != {day}:
            broken.append(f"{index}: rows of another date than {day}")
    missing = sorted(listed - set(landed))
    return not missing and not broken, {
        "indices_landed": len(landed),
        "missing_indices": ", ".join(missing) or "none",
        "broken_rules": "; ".join(broken)[:2000] or "none",
    }


@dg.multi_asset_check(
    name="indices_landing_checks",
    specs=[dg.AssetCheckSpec(
        "every_index_landed_and_valid", asset=LANDING_CARTEIRAS,
        description="Every index GetStockIndex listed on the date has landed, and each passes "
        "its rules as stored (unique codes, positive quantities adding up to the header total, "
        "weights adding up to 100 ± 0.01, B3's date on every row); names what is missing or "
        "broken.", partitions_def=trading_day_partitions)],
    can_subset=True,  # evaluations per partition, not one output (as b3_assets/checks.py)
)
def every_index_landed_and_valid(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckEvaluation]:
    the_lake = lake.get()
    for key in context.partition_keys:
        passed, meta = carteiras_outcome(the_lake, date.fromisoformat(key))
        yield dg.AssetCheckEvaluation(
            asset_key=LANDING_CARTEIRAS, check_name="every_index_landed_and_valid",
            passed=passed, partition=key,
            metadata={k: v if isinstance(v, int) else dg.MetadataValue.text(str(v))
                      for k, v in {"data_carteira": key, **meta}.items()})


# --- job and schedules ----------------------------------------------------------------------

daily_indices_job = dg.define_asset_job(
    "daily_b3_indices",
    selection=dg.AssetSelection.assets(RAW_INDICES, LANDING_CARTEIRAS, LANDING_COMPOSICAO),
    description="Every B3 index of the day (GetStockIndex, each portfolio) archived and landed, "
    "with its check; separate from IBOV's job, which never waits for it.",
)


def indices_request(day: date, run_key: str | None = None) -> dg.RunRequest | dg.SkipReason:
    if not is_trading_day(day):
        return dg.SkipReason(f"{day.isoformat()} is not a B3 session: nothing to collect.")
    return dg.RunRequest(run_key=run_key or f"indices-{day.isoformat()}",
                         partition_key=day.isoformat())


@dg.schedule(
    name="daily_b3_indices_0840",
    job=daily_indices_job,
    cron_schedule="40 8 * * 1-5",
    execution_timezone="America/Sao_Paulo",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="08:40 America/Sao_Paulo on every B3 trading day: every index's portfolio, "
    "which B3 serves only on its day (after IBOV's 08:30 run, never blocking it).",
)
def daily_indices_schedule(context: dg.ScheduleEvaluationContext
                           ) -> dg.RunRequest | dg.SkipReason:
    return indices_request(context.scheduled_execution_time.date())


@dg.schedule(
    name="daily_b3_indices_second_attempt_0950",
    job=daily_indices_job,
    cron_schedule="50 9 * * 1-5",
    execution_timezone="America/Sao_Paulo",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="09:50 America/Sao_Paulo: when the 08:40 run failed, again; the archive "
    "holds what it collected, so only the missing indices are asked of B3.",
)
def indices_second_attempt_schedule(context: dg.ScheduleEvaluationContext
                                    ) -> dg.RunRequest | dg.SkipReason:
    day = context.scheduled_execution_time.date()
    first = indices_request(day)
    if isinstance(first, dg.SkipReason):
        return first
    runs = context.instance.get_runs(dg.RunsFilter(
        job_name=daily_indices_job.name, tags={"dagster/partition": day.isoformat()}), limit=1)
    if runs and runs[0].status == dg.DagsterRunStatus.SUCCESS:
        return dg.SkipReason(f"{day} already has every index: no second attempt needed.")
    return indices_request(day, f"indices-{day.isoformat()}-second-attempt")


INDICES_ASSETS = [b3_indices_daily]
INDICES_CHECKS = [every_index_landed_and_valid]
INDICES_JOBS = [daily_indices_job]
INDICES_SCHEDULES = [daily_indices_schedule, indices_second_attempt_schedule]


def table_rows(table: pa.Table, index: str) -> list[dict[str, Any]]:
    """The rows of one index (reports, tests)."""
    return table.filter(pc.equal(table.column("indice"), index)).to_pylist()
