"""The marts in Dagster: one multi-asset over the three marts and their job."""

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.keys import LANDING, MART_KEYS
from b3_assets.marts.checks import MART_CHECK_KEYS, MART_CHECKS, evaluate_mart_checks
from b3_assets.marts.compute import MOVIMENTOS_KINDS, MartsRun, build_marts
from b3_assets.partitions import partition_dates, trading_day_partitions
from b3_assets.platform.check_results import check_evaluation, evaluated_by_own_step
from b3_assets.platform.resources import CatalogResource, LakeResource
from b3_assets.storage.lake import Lake
from glue.layout import (
    MART_COLUMNS,
    MART_INDICADORES,
    MART_MOVIMENTOS,
    MART_NAMES,
    MART_SETORES,
    mart_prefix,
    mart_year_key,
)

# --- Dagster: the assets ------------------------------------------------------------------

MART_DESCRIPTIONS = {
    MART_MOVIMENTOS: "**Mart** of entries and exits: one row per ticker that entered "
    "('entrada', its weight on the date) or left ('saida', its weight on the previous date) "
    "the portfolio since the previous landing date (a B3 session).",
    MART_INDICADORES: "**Mart** of concentration and turnover: one row per portfolio date with "
    "qtd_acoes, qtd_emissores, hhi (sum of squared weights), n_efetivo (1/hhi), top10_pct and "
    "giro_pct (one-way turnover since the previous landing date). Exact decimals.",
    MART_SETORES: "**Mart** of sector weights: one row per portfolio date and economic sector "
    "(null setor: not classified, e.g. a CSV import), with its tickers and weight.",
}
_STORAGE_NOTE = (
    " Computed from landing by b3_assets/marts/sql/*.sql (Athena's dialect, run on DuckDB); "
    "stored as marts/<name>/ano=YYYY.parquet; table of the same name in the catalog (DuckDB "
    "view | Glue table for Athena). Each run also recomputes the next landing date."
)


def mart_table_schema(name: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.glue_type, description=c.comment) for c in MART_COLUMNS[name]
        ]
    )


@dg.multi_asset(
    name="ibov_marts",
    specs=[
        dg.AssetSpec(
            MART_KEYS[name],
            deps=[LANDING],
            tags={"layer": "mart"},
            kinds={"duckdb", "parquet"},
            description=MART_DESCRIPTIONS[name] + _STORAGE_NOTE,
            metadata={"dagster/column_schema": mart_table_schema(name)},
        )
        for name in MART_NAMES
    ],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def ibov_marts(
    context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Reads each landing file once, computes the selected marts for every date of the run in
    one query each, writes each year's file once, then makes the catalog's tables current and
    evaluates the marts' checks on what it stored (unless the run evaluates them on their own).

    A run that computed every date reports one MaterializeResult per mart (Dagster records it
    for each date of the range, and the checks run next); a date it could not compute fails
    the run after recording the dates it did compute, one materialization each. The next
    landing dates recomputed with the run are recorded one by one."""
    names = [n for n in MART_NAMES if MART_KEYS[n] in context.selected_asset_keys]
    the_lake = lake.get()
    run = build_marts(the_lake, partition_dates(context), names)
    for (name, year), why in sorted(run.rebuilt.items()):
        context.log.warning(
            f"{the_lake.uri(mart_year_key(name, year))} was corrupt ({why}): rebuilt from the "
            f"landing files of every date of {year}"
        )
    catalog.engine().publish_marts({n: the_lake.uri(mart_prefix(n) + "/") for n in names})
    # The checks of every date computed, on the rows as stored, by the step that stored them
    # (after its materializations, as a check step would).
    checks = []
    if not evaluated_by_own_step(context, MART_CHECK_KEYS):
        selected = {(n, check) for n in names for check in MART_CHECKS[n]}
        checks = [
            check_evaluation(MART_KEYS[name], check, day.isoformat(), outcome)
            for name, check, day, outcome in evaluate_mart_checks(
                the_lake, run.computed, selected
            )
        ]
    requested = {date.fromisoformat(k) for k in context.partition_keys}
    if run.plan.followers:
        context.log.info(
            "recomputed the next landing date(s) too (their previous date was in this run): "
            + ", ".join(map(str, run.plan.followers))
        )
    for day in run.computed:
        if day not in requested or run.problems:
            for name in names:
                yield dg.AssetMaterialization(
                    asset_key=MART_KEYS[name],
                    partition=day.isoformat(),
                    metadata=_metadata(name, [day], run, the_lake),
                )
    if run.problems:
        yield from checks
        raise dg.Failure(
            description="\n".join(f"{d}: {why}" for d, why in sorted(run.problems.items())),
            allow_retries=False,
            metadata={"computed_dates": ", ".join(map(str, run.computed)) or "none"},
        )
    days = sorted(requested)
    for name in names:
        yield dg.MaterializeResult(
            asset_key=MART_KEYS[name], metadata=_metadata(name, days, run, the_lake)
        )
    yield from checks


#: Lines of per-date detail in a materialization's metadata (a range shows its last dates).
METADATA_DATES = 20


def _metadata(name: str, days: Sequence[date], run: MartsRun, lake: Lake) -> dict[str, Any]:
    """What the UI shows for a mart over ``days``: rows, where, and each date's summary."""
    shown = days[-METADATA_DATES:]
    meta: dict[str, Any] = {
        "dates": len(days),
        "rows": sum(len(run.rows_of(name, d)) for d in days),
        "uri": dg.MetadataValue.url(lake.uri(mart_year_key(name, days[-1].year))),
    }
    rebuilt = [lake.uri(mart_year_key(n, y)) for n, y in sorted(run.rebuilt) if n == name]
    if rebuilt:  # unreadable year files this run wrote anew from landing
        meta["rebuilt_corrupt_files"] = ", ".join(rebuilt)
    if len(days) == 1:
        anterior = run.plan.previous[days[0]]
        meta["data_carteira_anterior"] = anterior.isoformat() if anterior else "none"
    if name == MART_MOVIMENTOS:
        lines = ["| data | anterior | entradas | saídas |", "|---|---|---|---|"]
        for day in shown:
            rows = run.rows_of(name, day)
            moves = {
                k: [r["codigo"] for r in rows if r["movimento"] == k] for k in MOVIMENTOS_KINDS
            }
            anterior = run.plan.previous[day]
            lines.append(
                f"| {day} | {anterior or '-'} | {', '.join(moves['entrada']) or '-'} | "
                f"{', '.join(moves['saida']) or '-'} |"
            )
        meta["movimentos"] = dg.MetadataValue.md("\n".join(lines))
    elif name == MART_INDICADORES:
        columns = ("qtd_acoes", "qtd_emissores", "hhi", "n_efetivo", "top10_pct", "giro_pct")
        lines = ["| data | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
        for day in shown:
            for row in run.rows_of(name, day):
                values = " | ".join("-" if row[c] is None else str(row[c]) for c in columns)
                lines.append(f"| {day} | {values} |")
        meta["indicadores"] = dg.MetadataValue.md("\n".join(lines))
    elif name == MART_SETORES:
        lines = ["| data | setor | ações | part. (%) |", "|---|---|---:|---:|"]
        for day in shown[-1:]:  # the sectors of the last date only: ~11 lines
            lines += [
                f"| {day} | {r['setor'] or '(sem setor)'} | {r['qtd_acoes']} | "
                f"{r['participacao_pct']} |"
                for r in run.rows_of(name, day)
            ]
        meta["setores"] = dg.MetadataValue.md("\n".join(lines))
    return meta


#: One run of the marts over the dates asked for (their checks run with them).
marts_job = dg.define_asset_job(
    "marts_from_landing",
    # The marts' step evaluates their checks on what it stored (checks.py: who evaluates).
    selection=dg.AssetSelection.assets(*MART_KEYS.values()).without_checks(),
    description="The marts (ibov_movimentos, ibov_indicadores, ibov_setores) from landing, "
    "with their checks; a range computes every date in one run.",
)
