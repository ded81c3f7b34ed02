"""Every B3 index in Dagster: raw/b3_indices -> landing/b3_carteiras, landing/b3_composicao
-> marts/b3_movimentos, partitioned by trading date, with their own job and schedules so IBOV
never waits for them.

One step captures a date (b3_assets/indices/collect.py), lands what it collected, patches the
year files the catalog reads (``serving/b3_carteiras/ano=YYYY.parquet``…), computes the
entries and exits of every index (b3_assets/indices/movimentos.py) and makes the catalog
current; then it evaluates the per-date checks on what is stored, and, when an index is
missing, fails naming each one after recording what landed, so the 09:50 second attempt (or
any rerun) fetches only those. The checks are evaluated by that step, not a step of their
own, because Dagster skips a check step after a failed asset step: a missing index must show
as a failed check of the date, not as no result.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import pyarrow.compute as pc

from b3_assets.indices.collect import IndicesCapture, capture_indices, land_indices
from b3_assets.indices.movimentos import (
    MovimentosRun,
    build_movimentos,
    movimentos_outcome,
    stored_movimentos,
    summary_markdown,
)
from b3_assets.keys import B3_MOVIMENTOS, LANDING_CARTEIRAS, LANDING_COMPOSICAO, RAW_INDICES
from b3_assets.marts.errors import MartError
from b3_assets.marts.store import MartStore, YearTable
from b3_assets.partitions import (
    b3_schedule,
    partition_dates,
    session_request,
    trading_day_partitions,
)
from b3_assets.platform.check_results import CheckOutcome, check_evaluation
from b3_assets.platform.resources import B3Site, CatalogResource, LakeResource
from b3_assets.source.api import fetch_stock_index
from b3_assets.source.indices import COMPOSICAO_SCHEMA, fetch_index_portfolio
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.source.validate import Columns, index_rules
from b3_assets.storage.lake import Lake, LakeError
from b3_assets.storage.landing import read_parquet_key
from glue.layout import (
    INDEX_TABLE_COLUMNS,
    MART_B3_MOVIMENTOS,
    TABLE_CARTEIRAS,
    TABLE_COMPOSICAO,
    carteiras_key,
    composicao_key,
    index_table_prefix,
)

CARTEIRAS_CHECK = dg.AssetCheckKey(LANDING_CARTEIRAS, "every_index_landed_and_valid")
MOVIMENTOS_CHECK = dg.AssetCheckKey(B3_MOVIMENTOS, "entries_and_exits_match_landing")

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
            RAW_INDICES, tags={"layer": "raw"},
            kinds={"python"},
            description="**Raw** every B3 index: GetStockIndex (the list of indices, so a new "
            "one needs no code change) and each index's portfolio as B3 sent it on the date, "
            "byte for byte with a manifest (raw/indices/dt=…/indice=CODE/). At most 4 requests "
            "at once; the archive is reused with no network unless `refetch`."),
        dg.AssetSpec(
            LANDING_CARTEIRAS, deps=[RAW_INDICES], tags={"layer": "landing"}, kinds={"parquet"},
            description="**Landing** every index's portfolio of the date "
            "(landing/indices/dt=…/carteiras.parquet, the landing schema, sorted by indice, "
            "codigo; sectors null where B3 has no sector view); table b3_carteiras.",
            metadata={"dagster/column_schema": _column_schema(TABLE_CARTEIRAS)}),
        dg.AssetSpec(
            # Skippable: a date bootstrapped from CSV downloads has no GetStockIndex.
            LANDING_COMPOSICAO, deps=[RAW_INDICES], skippable=True,
            tags={"layer": "landing"}, kinds={"parquet"},
            description="**Landing** GetStockIndex as served on the date: one row per (ticker, "
            "index) (landing/indices/dt=…/composicao.parquet); table b3_composicao.",
            metadata={"dagster/column_schema": _column_schema(TABLE_COMPOSICAO)}),
        dg.AssetSpec(
            B3_MOVIMENTOS, deps=[LANDING_CARTEIRAS], tags={"layer": "mart"},
            kinds={"duckdb", "parquet"},
            description="**Mart** who entered and left every index on the date: each index "
            "landed on the date against the latest earlier landing date holding it "
            "(ibov_movimentos' columns plus indice; b3_assets/marts/sql/b3_movimentos.sql, "
            "Athena's dialect run on DuckDB). Computed by the landing step after every landing "
            "write (a partial run too), with the next landing date; stored as "
            "marts/b3_movimentos/ano=YYYY.parquet; table b3_movimentos.",
            metadata={"dagster/column_schema": _column_schema(MART_B3_MOVIMENTOS)}),
    ],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def b3_indices_daily(
    context: dg.AssetExecutionContext, config: IndicesConfig, lake: LakeResource, b3: B3Site,
    catalog: CatalogResource,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Each date of the run: capture (archive first), land, patch the year files, then the
    movements of every index and the catalog, then each date's checks on what is stored. Every
    date is tried; a date with a missing index fails the run at the end, naming each index and
    B3's error, after its landed files and its check results were recorded."""
    the_lake = lake.get()
    store = index_store(the_lake)
    problems: list[str] = []
    landed: dict[date, dict[dg.AssetKey, dict[str, Any]]] = {}
    run_missing: dict[date, RunMissing] = {}
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
        run_missing[day] = RunMissing(capture.missing, capture.membership_error is not None)
    movimentos: MovimentosRun | None = None
    with_carteiras = [d for d, m in landed.items() if LANDING_CARTEIRAS in m]
    if with_carteiras:
        try:
            movimentos = build_movimentos(the_lake, with_carteiras)
        except (MartError, LakeError) as exc:
            problems.append(f"marts/b3_movimentos not computed for "
                            f"{', '.join(map(str, with_carteiras))}: {exc}; the landing files "
                            "are stored: materialize daily_b3_indices for those dates again")
    catalog.engine().publish_index_tables(
        {name: the_lake.uri(index_table_prefix(name) + "/")
         for name in (*INDEX_YEAR_TABLES, MART_B3_MOVIMENTOS)})
    if not _checks_in_own_step(context):
        # Recorded before any failure below: a missing index is a failed check of its date.
        yield from check_evaluations(the_lake, days, movimentos, run_missing)
    if movimentos is not None:
        for day in movimentos.computed:
            meta = movimentos_metadata(movimentos, day, the_lake)
            if day in landed:
                landed[day][B3_MOVIMENTOS] = meta
            else:  # the next landing date, recomputed with this one
                yield dg.AssetMaterialization(asset_key=B3_MOVIMENTOS, partition=day.isoformat(),
                                              metadata=meta)
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
    for key in (RAW_INDICES, LANDING_CARTEIRAS, LANDING_COMPOSICAO, B3_MOVIMENTOS):
        if key in last:  # no GetStockIndex for a date bootstrapped from CSV downloads
            yield dg.MaterializeResult(asset_key=key, metadata={**last[key], "dates": len(days)})


# --- checks: one result per date ------------------------------------------------------------

@dataclass(frozen=True)
class RunMissing:
    """What a collection of a date could not get: the indices, and whether GetStockIndex (the
    list of indices to expect) failed."""

    indices: Sequence[str] = ()
    membership_failed: bool = False


def carteiras_outcome(lake: Lake, day: date, run: RunMissing | None = None
                      ) -> tuple[bool, dict[str, Any]]:
    """Every index GetStockIndex listed on ``day`` (and every index the run just failed to
    collect) is in the stored file, and every landed index passes its rules as stored (unique
    codes, quantities adding up to the header's total, weights to 100 ± 0.01, a sound
    reductor); the metadata names each missing index and broken rule. Judged on what is
    stored: an index a failed rerun could not fetch again is not missing if it landed before."""
    run = run or RunMissing()
    try:
        table = read_parquet_key(lake, carteiras_key(day), LANDING_SCHEMA)
    except LakeError as exc:
        return False, {"problem": str(exc), "missing_indices": ", ".join(run.indices) or
                       "unknown (no index landed)",
                       "fix": f"materialize daily_b3_indices for {day} while B3 serves it"}
    try:
        listed = set(read_parquet_key(lake, composicao_key(day), COMPOSICAO_SCHEMA)
                     .column("indice").to_pylist())
    except LakeError:
        listed = set()
    listed |= set(run.indices)
    landed = sorted(set(table.column("indice").to_pylist()))
    broken = []
    for index in landed:
        rows = table.filter(pc.equal(table.column("indice"), index))
        broken += [f"{index}: {o.problem}"
                   for o in index_rules(Columns.of_landing(rows), index).values() if not o.passed]
        if set(rows.column("data_carteira").to_pylist()) != {day}:
            broken.append(f"{index}: rows of another date than {day}")
    missing = sorted(listed - set(landed))
    unknown_list = run.membership_failed and not listed - set(run.indices)
    if unknown_list:
        broken.append("GetStockIndex failed: the list of indices to expect is unknown")
    meta: dict[str, Any] = {
        "indices_landed": len(landed),
        "missing_indices": ", ".join(missing) or "none",
        "broken_rules": "; ".join(broken)[:2000] or "none",
    }
    if missing or unknown_list:
        meta["fix"] = (f"materialize daily_b3_indices for {day} again while B3 serves that "
                       "date (the 09:50 second attempt does): only what is missing is fetched")
    return not missing and not broken, meta


def _evaluation(check: dg.AssetCheckKey, day: date, outcome: CheckOutcome
                ) -> dg.AssetCheckEvaluation:
    return check_evaluation(check.asset_key, check.name, day.isoformat(), outcome)


def check_evaluations(lake: Lake, days: Sequence[date], movimentos: MovimentosRun | None,
                      run_missing: Mapping[date, RunMissing] | None = None,
                      checks: Sequence[dg.AssetCheckKey] = (CARTEIRAS_CHECK, MOVIMENTOS_CHECK),
                      ) -> Iterator[dg.AssetCheckEvaluation]:
    """One result per check and date, on the files as stored: the landing check of each date
    asked for; the movements' check of each date computed (with the next landing dates) or,
    without a run, of each date asked for."""
    run_missing = run_missing or {}
    if CARTEIRAS_CHECK in checks:
        for day in days:
            yield _evaluation(CARTEIRAS_CHECK, day,
                              carteiras_outcome(lake, day, run_missing.get(day)))
    if MOVIMENTOS_CHECK in checks:
        computed = movimentos.computed if movimentos is not None else list(days)
        stored = stored_movimentos(lake, computed)
        for day in computed:
            yield _evaluation(MOVIMENTOS_CHECK, day, movimentos_outcome(lake, day, stored[day]))


def movimentos_metadata(run: MovimentosRun, day: date, lake: Lake) -> dict[str, Any]:
    rows = run.rows_of(day)
    return {
        "dagster/row_count": len(rows),
        "entradas": sum(1 for r in rows if r["movimento"] == "entrada"),
        "saidas": sum(1 for r in rows if r["movimento"] == "saida"),
        "indices_without_previous_date": ", ".join(
            i for i, p in run.previous[day].items() if p is None) or "none",
        "movimentos": dg.MetadataValue.md(summary_markdown(rows)),
        "lake_uri": dg.MetadataValue.text(
            lake.uri(index_table_prefix(MART_B3_MOVIMENTOS) + f"/ano={day.year:04d}.parquet")),
    }


def _checks_in_own_step(context: dg.AssetExecutionContext) -> bool:
    """Whether this run evaluates the indices' checks in their own step (a run that selected
    them, e.g. from the UI's asset page); else the landing step evaluates them."""
    selection = context.run.asset_check_selection
    if selection is None:  # the whole job: the checks it contains
        selection = context.job_def.asset_layer.asset_graph.asset_check_keys
    return bool({CARTEIRAS_CHECK, MOVIMENTOS_CHECK} & set(selection))


@dg.multi_asset_check(
    name="indices_landing_checks",
    specs=[
        dg.AssetCheckSpec(
            CARTEIRAS_CHECK.name, asset=LANDING_CARTEIRAS,
            description="Every index GetStockIndex listed on the date has landed, and each "
            "passes its rules as stored (unique codes, positive quantities adding up to the "
            "header total, weights adding up to 100 ± 0.01, B3's date on every row); names what "
            "is missing or broken. Evaluated by the landing step, a failed run too.",
            partitions_def=trading_day_partitions),
        dg.AssetCheckSpec(
            MOVIMENTOS_CHECK.name, asset=B3_MOVIMENTOS,
            description="For every index landed on the date, the stored entries and exits are "
            "exactly the set differences with that index's previous landing date; names each "
            "index that differs.", partitions_def=trading_day_partitions),
    ],
    can_subset=True,  # evaluations per partition, not one output (as b3_assets/portfolio/checks.py)
)
def every_index_landed_and_valid(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckEvaluation]:
    """On demand (the UI's "Execute"): the selected checks of each date, on what is stored;
    the daily job's landing step evaluates the same right after it writes."""
    days = [date.fromisoformat(k) for k in context.partition_keys]
    yield from check_evaluations(lake.get(), days, None,
                                 checks=sorted(context.selected_asset_check_keys, key=str))


# --- job and schedules ----------------------------------------------------------------------

daily_indices_job = dg.define_asset_job(
    "daily_b3_indices",
    # The landing step evaluates the checks (also when it fails): no check step to skip.
    selection=dg.AssetSelection.assets(RAW_INDICES, LANDING_CARTEIRAS, LANDING_COMPOSICAO,
                                       B3_MOVIMENTOS).without_checks(),
    description="Every B3 index of the day (GetStockIndex, each portfolio) archived and landed, "
    "the entries and exits of every index (marts/b3_movimentos), with their per-date checks; "
    "separate from IBOV's job, which never waits for it.",
)


def indices_request(day: date) -> dg.RunRequest | dg.SkipReason:
    return session_request(day, f"indices-{day.isoformat()}")


def indices_retry_request(day: date, context: dg.ScheduleEvaluationContext
                          ) -> dg.RunRequest | dg.SkipReason:
    """A second attempt at ``day`` unless its first run succeeded (the archive keeps what it
    collected, so only the missing indices are asked)."""
    first = indices_request(day)
    if isinstance(first, dg.SkipReason):
        return first
    runs = context.instance.get_runs(dg.RunsFilter(
        job_name=daily_indices_job.name, tags={"dagster/partition": day.isoformat()}), limit=1)
    if runs and runs[0].status == dg.DagsterRunStatus.SUCCESS:
        return dg.SkipReason(f"{day} already has every index: no second attempt needed.")
    return session_request(day, f"indices-{day.isoformat()}-second-attempt")


daily_indices_schedule = b3_schedule(
    "daily_b3_indices_0840",
    daily_indices_job,
    "40 8 * * 1-5",
    "08:40 America/Sao_Paulo on every B3 trading day: every index's portfolio, "
    "which B3 serves only on its day (after IBOV's 08:30 run, never blocking it).",
    lambda day, _context: indices_request(day),
)


indices_second_attempt_schedule = b3_schedule(
    "daily_b3_indices_second_attempt_0950",
    daily_indices_job,
    "50 9 * * 1-5",
    "09:50 America/Sao_Paulo: when the 08:40 run failed, again; the archive "
    "holds what it collected, so only the missing indices are asked of B3.",
    indices_retry_request,
)


INDICES_ASSETS = [b3_indices_daily]
INDICES_CHECKS = [every_index_landed_and_valid]
INDICES_JOBS = [daily_indices_job]
INDICES_SCHEDULES = [daily_indices_schedule, indices_second_attempt_schedule]
