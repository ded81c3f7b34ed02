"""The lineage: raw/ibov_portfolio -> landing/ibov_portfolio (-> refined/b3_etl_soma_acao,
recorded in ``refined.py``).

Thin wiring: the work is in ``collect``, ``landing`` and glue/; typed resources decide where."""

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa

from b3_assets.keys import LANDING, RAW
from b3_assets.partitions import partition_dates, trading_day_partitions
from b3_assets.platform.resources import (
    B3Site,
    GlueJobResource,
    LakeResource,
    failed_runs_failure,
    landing_uri,
    split_failed_runs,
    write_landing,
)
from b3_assets.portfolio.collect import Filled, collect, fill_enrichments
from b3_assets.portfolio.enrichments import landing_table, missing_message
from b3_assets.source.errors import B3PermanentError
from b3_assets.source.model import LANDING_SCHEMA
from b3_assets.storage.archive import RawArchive
from glue.layout import RAW_PREFIX, REFINED_COLUMNS

#: Transient B3 trouble (timeouts, 5xx, 429) is retried: up to 3 more attempts of the step.
#: The policy itself has no delay: Dagster sleeps a retry's delay between steps, where a
#: SIGTERM is only acted on once the sleep ends. The step waits instead
#: (:func:`wait_before_retry`), and :func:`terminated_means_failed` ends it there.
B3_RETRY = dg.RetryPolicy(max_retries=3)

#: The first retry's mean wait; each further retry doubles it (20, 40, 80 s on average).
B3_RETRY_DELAY_S = 20.0


def retry_delay_s(
    retry_number: int, base_s: float = B3_RETRY_DELAY_S, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with ±50 % jitter, so retries of many runs do not arrive together."""
    return base_s * 2 ** (retry_number - 1) * (0.5 + rng())


#: Runs of this process that were terminated: their other steps fail at once, unstarted.
_TERMINATED_RUNS: set[str] = set()


@contextmanager
def terminated_means_failed(context: dg.AssetExecutionContext, what: str) -> Iterator[None]:
    """A SIGTERM (or Ctrl-C) fails the step for good, at once, and the run's other steps too.

    Dagster turns an interrupt of a step that has a retry policy into one more retry, and it
    raises the interrupt only once: the in-process executor would then start the next
    independent step (e.g. the preview after the theoretical portfolio). A Failure without
    retries ends this step, and the steps after it find the run marked as terminated."""
    if context.run.run_id in _TERMINATED_RUNS:
        raise dg.Failure(
            description=f"the run was terminated before {what} started: not started",
            allow_retries=False,
        )
    try:
        yield
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt) as exc:
        _TERMINATED_RUNS.add(context.run.run_id)
        raise dg.Failure(
            description=f"the run was terminated (SIGTERM or Ctrl-C) while {what}: "
            "stopped without retrying; nothing half-written was kept",
            allow_retries=False,
        ) from exc


def wait_before_retry(context: dg.AssetExecutionContext) -> None:
    """Before a retry attempt, wait for B3 to recover, inside the step: interruptible."""
    if context.retry_number:
        wait = retry_delay_s(context.retry_number)
        context.log.info(
            f"attempt {context.retry_number + 1} of {B3_RETRY.max_retries + 1}: waiting "
            f"{wait:.0f} s for B3 to recover (terminating the run ends the wait at once)"
        )
        time.sleep(wait)


#: The landing contract (docs/contracts.md), shown on the asset's page.
LANDING_COLUMNS = {
    "data_carteira": "Portfolio date (B3's header date, never the run date)",
    "indice": "IBOV",
    "codigo": "Ticker, e.g. PETR4",
    "acao": "Company name as B3 lists it",
    "tipo": "Share type, runs of spaces collapsed (ON NM, PN EX N1)",
    "qtde_teorica": "Theoretical quantity (int64)",
    "participacao_pct": "Participation in the index, % (decimal 7,3)",
    "qtde_teorica_total": "Header: total theoretical quantity",
    "redutor": "Header: the index reductor (decimal 24,8)",
    "coletado_em": "When the payload was fetched (UTC; an imported CSV: when it was imported)",
    "setor_b3": "B3's sector label (segment 2), spaces collapsed; null for CSV imports and "
    "while B3's sector view failed (enrichments_present warns; filled in later that day)",
    "setor": "Economic sector from the project's mapping of B3's label (null: unknown label)",
    "subsetor": "Subsector from the same mapping",
}


def landing_table_schema() -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, str(f.type), description=LANDING_COLUMNS.get(f.name))
            for f in LANDING_SCHEMA
        ]
    )


def refined_table_schema() -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.glue_type, description=c.comment) for c in REFINED_COLUMNS
        ]
    )


class RawConfig(dg.Config):
    refetch: bool = False
    """Fetch from B3 even when the date is archived (a different payload is kept beside)."""
    fill_enrichments: bool = False
    """Only fill in what a landed date lacks (its sectors, when B3's sector view failed): ask
    B3 again and, when it has them now, archive them so landing adds them to the same rows.
    When nothing is filled, nothing is materialized and the steps after raw are skipped."""


@dg.asset(
    key=RAW,
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=B3_RETRY,
    tags={"layer": "raw"},
    kinds={"python"},
    description="**Raw** IBOV portfolio: what B3 sent for the trading date, byte for byte, "
    "with a manifest (raw/ibov/dt=…/). Reuses the archive with no network unless `refetch`; "
    "`fill_enrichments` only fills in what a landed date lacks "
    "(b3_assets/portfolio/enrichments.py).",
    # A fill that fills nothing materializes nothing, so landing and what follows are skipped.
    output_required=False,
)
def raw_ibov_portfolio(
    context: dg.AssetExecutionContext, config: RawConfig, lake: LakeResource, b3: B3Site
) -> Iterator[dg.MaterializeResult]:
    archive = RawArchive(lake.get())
    lake_uri = lake.get().uri(RAW_PREFIX + "/")
    if config.fill_enrichments:
        yield from fill_partitions(context, lambda day: fill_enrichments(archive, b3.fetch, day),
                                   lake_uri)
        return
    yield collect_partitions(
        context,
        lambda day: collect(archive, b3.fetch, day, refetch=config.refetch,
                            fetch_plain=lambda: b3.fetch(segment="1")),
        what="portfolio",
        lake_uri=lake_uri,
    )


def fill_partitions(
    context: dg.AssetExecutionContext, fill_one: Callable[[date], Filled], lake_uri: str
) -> Iterator[dg.MaterializeResult]:
    """The enrichment fill of each partition of the run: a materialization when anything was
    filled in (landing then rebuilds those dates), none otherwise."""
    with terminated_means_failed(context, "filling in the enrichments"):
        outcomes = {day: fill_one(day) for day in partition_dates(context)}
    filled = [day.isoformat() for day, got in outcomes.items() if got.filled]
    for got in outcomes.values():
        (context.log.info if got.filled else context.log.warning)(got.message)
    if not filled:
        context.log.info("nothing was filled in: landing and the steps after it are skipped, "
                         "everything stays as it was")
        return
    yield dg.MaterializeResult(
        metadata={"filled_dates": ", ".join(filled), "lake_uri": dg.MetadataValue.url(lake_uri)}
    )


#: A backfill logs its progress every this many dates (each log line is a stored event): what
#: B3 served is logged per date, what the archive gave only in these counts.
PROGRESS_EVERY = 50


def collect_partitions(
    context: dg.AssetExecutionContext,
    collect_one: Callable[[date], Any],
    what: str,
    lake_uri: str,
) -> dg.MaterializeResult:
    """Archive-first collection of each partition of the run (every raw asset's body).

    A permanent B3 error of one date is kept and the others go on; the step then fails
    without retries naming every date, since retrying cannot heal them."""
    fetched, reused, problems = [], [], []
    with terminated_means_failed(context, f"collecting the {what}"):
        wait_before_retry(context)
        days = partition_dates(context)
        for done, day in enumerate(days, 1):
            try:
                got = collect_one(day)
            except B3PermanentError as exc:
                notes = " ".join(getattr(exc, "__notes__", []))
                problems.append(f"partition {day.isoformat()}: {exc}" + (f" ({notes})"
                                                                          if notes else ""))
                continue
            (reused if got.from_archive else fetched).append(day.isoformat())
            if getattr(got, "missing", None):
                context.log.warning(missing_message(day, got.missing))
            if got.stored is not None and got.stored.new and got.stored.others:
                context.log.warning(
                    f"B3 served a different {what} for {day} than the one archived; both are "
                    f"kept ({', '.join(e.prefix for e in got.stored.others)} and "
                    f"{got.stored.archived.prefix}); landing uses the newest."
                )
            if not got.from_archive or len(days) == 1:
                context.log.info(
                    f"{day}: {len(got.portfolio.constituents)} constituents "
                    f"({'archive' if got.from_archive else got.payload.source})"
                )
            if len(days) > 1 and (done % PROGRESS_EVERY == 0 or done == len(days)):
                context.log.info(
                    f"{done} of {len(days)} dates collected ({len(reused)} from the archive)"
                )
    if problems:
        raise dg.Failure(
            description="\n".join(problems),
            allow_retries=False,
            metadata={"written_dates": ", ".join(fetched) or "none"},
        )
    return dg.MaterializeResult(
        metadata={
            "fetched_from_b3": len(fetched),
            "reused_from_archive": len(reused),
            "lake_uri": dg.MetadataValue.url(lake_uri),
        }
    )


def top_weights_markdown(table: pa.Table, n: int = 10) -> str:
    rows = sorted(table.to_pylist(), key=lambda r: r["participacao_pct"], reverse=True)[:n]
    lines = ["| # | código | ação | tipo | part. (%) |", "|---|---|---|---|---:|"]
    lines += [
        f"| {i} | {r['codigo']} | {r['acao']} | {r['tipo']} | {r['participacao_pct']} |"
        for i, r in enumerate(rows, 1)
    ]
    return "\n".join(lines)


@dg.asset(
    key=LANDING,
    deps=[RAW],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    tags={"layer": "landing"},
    kinds={"parquet"},
    description="**Landing** IBOV portfolio: typed Parquet, one file per trading date "
    "(landing/ibov/dt=…/ibov.parquet), built from the raw archive alone. Its write is the "
    "event that starts the Glue job; each file, as stored, is then checked (valid_portfolio).",
    metadata={"dagster/column_schema": landing_table_schema()},
)
def landing_ibov_portfolio(
    context: dg.AssetExecutionContext, lake: LakeResource, glue_job: GlueJobResource
) -> Iterator[dg.AssetCheckEvaluation | dg.MaterializeResult]:
    from b3_assets.platform.check_results import evaluated_by_own_step
    from b3_assets.portfolio.checks import LANDING_CHECK_KEYS, landing_evaluations

    the_lake = lake.get()
    archive = RawArchive(the_lake)
    tables: dict[str, pa.Table] = {}
    for day in partition_dates(context):
        table = landing_table(archive, day)  # with the enrichments filled in since, if any
        if table is None:
            raise dg.Failure(
                f"{day} is not in the raw archive: materialize raw/ibov_portfolio "
                "for it first (or `b3-pipeline import-csv` its CSV).",
                allow_retries=False,
            )
        tables[day.isoformat()] = table
    keys = sorted(tables)
    batch = context.run.run_id if len(keys) > 1 else None
    failed = write_landing(the_lake, glue_job, tables, batch)
    # The landing checks on each file as stored, by the step that stored it (after the
    # materialization, as a check step would; before the failure of a refine that failed).
    checks = (
        []
        if evaluated_by_own_step(context, LANDING_CHECK_KEYS)
        else list(landing_evaluations(the_lake, keys))
    )
    # Only this run's own dates decide it: a broken older date (its refine, or the next
    # date's, failed) is a warning naming the file and the fix, never this day's failure.
    failed, older = split_failed_runs(failed, [date.fromisoformat(k) for k in keys])
    if older:
        context.log.warning(older)
    if failed:
        yield from checks
        raise failed_runs_failure(
            "the landing files were written, but their refine failed:", failed
        )
    first = tables[keys[0]]
    metadata: dict[str, object] = {
        "dagster/row_count": sum(t.num_rows for t in tables.values()),
        "dates": len(tables),
        "lake_uri": dg.MetadataValue.text(landing_uri(the_lake, keys)),
    }
    if len(tables) == 1:
        metadata["top_10_weights"] = dg.MetadataValue.md(top_weights_markdown(first))
        metadata["participacao_total"] = str(
            sum(first.column("participacao_pct").to_pylist(), Decimal(0))
        )
    yield dg.MaterializeResult(metadata=metadata)
    yield from checks
