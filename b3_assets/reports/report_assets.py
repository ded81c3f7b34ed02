"""report/ibov_composition and report/ibov_marts: the day's charts, in the lake and in the UI.

The daily run draws them after landing (locally the refine is done by then); the sensor's
follow-up draws them for any other refined date (``sensors.py``); they can also be
materialized or backfilled from the UI. The drawing is in ``report.py`` and
``report_marts.py``; this module wires it in.

Where the Dagster UI (1.13) shows a chart without a click: it has no image metadata type, and
a markdown value over 1,000 characters (any inline PNG) sits behind "[Show Markdown]". A
materialization's description is shown open on the Events tab, but it is also the event's log
message (the run's log and the daemon's output would carry the whole base64). So the metadata
holds what every asset page (partition, overview, event) shows inline: the same numbers as a
table with a text bar per row (``top15``, ``changes``, ``sectors``), the day's concentration as
numbers (the asset's Plots tab draws them over dates); then the PNGs, one click away
(``*_png``, data URIs: the UI needs no access to the lake), and their lake URIs."""

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.keys import MART_KEYS, REFINED, REPORT, REPORT_MARTS
from b3_assets.partitions import latest_by_partition, partition_dates, trading_day_partitions
from b3_assets.platform.resources import CatalogResource, LakeResource
from b3_assets.storage.lake import Lake

REPORTS_PREFIX = "reports"

#: Keep inline images well under this (they live in the event log and are sent to the UI).
MAX_INLINE_PNG_BYTES = 100_000


def report_key(day: date, name: str) -> str:
    """``reports/dt=YYYY-MM-DD/<name>`` (same relative key in the folder and the bucket)."""
    return f"{REPORTS_PREFIX}/dt={day.isoformat()}/{name}"


def inline_png(alt: str, png: bytes) -> str:
    """Markdown with the PNG as a data URI: the UI shows it with no access to the lake."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


@dataclass
class Drawn:
    """One date's report: metadata (inline on every asset page) and the charts' PNGs."""

    metadata: dict[str, Any]
    charts: dict[str, bytes] = field(default_factory=dict)


def store_charts(context: dg.AssetExecutionContext, lake: Lake, day: date, drawn: Drawn) -> None:
    """Write the date's PNGs to the lake; the metadata gets each PNG and its lake URI."""
    for name, png in drawn.charts.items():
        if len(png) > MAX_INLINE_PNG_BYTES:
            context.log.warning(f"{name}.png is {len(png)} bytes, more than the inline budget")
        key = report_key(day, f"{name}.png")
        lake.write_bytes(key, png)
        drawn.metadata[f"{name}_png"] = dg.MetadataValue.md(inline_png(name, png))
        drawn.metadata[f"{name}_uri"] = dg.MetadataValue.url(lake.uri(key))


def bar_table(
    rows: list[dict[str, Any]], label: str, value: str, shown: Callable[[Any], str]
) -> dg.TableMetadataValue:
    """``rows`` as a table with a text bar per row (the largest ``value`` fills the column)."""
    from b3_assets.reports.report import text_bar

    largest = max((abs(float(r[value])) for r in rows), default=0.0)
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    label: str(r[label]),
                    value: shown(r[value]),
                    "": ("▼ " if float(r[value]) < 0 else "")
                    + text_bar(float(r[value]), largest),
                }
            )
            for r in rows
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(label, "string"),
                dg.TableColumn(value, "string"),
                dg.TableColumn("", "string"),
            ]
        ),
    )


@dg.asset(
    key=REPORT,
    deps=[REFINED],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    # In the daily run, the day's charts before the marts' (steps that are ready run by it).
    op_tags={"dagster/priority": "1"},
    tags={"layer": "report"},
    kinds={"python"},
    description="The day's IBOV composition as two PNGs: the 15 heaviest issuers and the "
    "biggest weight changes since the previous portfolio (p.p.). Queried from the catalog "
    "of the environment (DuckDB | Athena) with b3_assets/sql/; stored under "
    "reports/dt=…/ and shown in the materialization's metadata. A range run draws each date.",
)
def report_ibov_composition(
    context: dg.AssetExecutionContext, catalog: CatalogResource, lake: LakeResource
) -> Iterator[dg.AssetMaterialization]:
    # matplotlib is imported by the run that draws, not by every load of the definitions.
    from b3_assets.reports.report import day_report

    yield from draw_and_store(context, REPORT, catalog, lake,
                              lambda engine, day: composition_drawn(day_report(engine, day)))


def draw_and_store(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    catalog: CatalogResource,
    lake: LakeResource,
    drawn_for: Callable[[Any, date], Drawn],
    also: Callable[[Lake], Sequence[str]] = lambda _lake: (),
) -> Iterator[dg.AssetMaterialization]:
    """Every report asset's body: each date of the run (and of ``also``) drawn from the
    environment's catalog and stored under reports/dt=…/ (:func:`draw_each_date`)."""
    engine, the_lake = catalog.engine(), lake.get()

    def draw(partition: str) -> Drawn:
        day = date.fromisoformat(partition)
        drawn = drawn_for(engine, day)
        store_charts(context, the_lake, day, drawn)
        return drawn

    yield from draw_each_date(context, key, draw, also(the_lake))


def draw_each_date(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    draw: Callable[[str], Drawn],
    also: Sequence[str] = (),
) -> Iterator[dg.AssetMaterialization]:
    """One materialization per partition of the run (a range run draws each date) and per
    date of ``also``; a date that cannot be drawn is named in the step's failure after the
    others are drawn."""
    from b3_assets.reports.report import ReportError

    problems = []
    for partition in [*context.partition_keys, *also]:
        try:
            drawn = draw(partition)
        except ReportError as exc:
            problems.append(f"{partition}: {exc}")
            continue
        yield dg.AssetMaterialization(asset_key=key, partition=partition, metadata=drawn.metadata)
    if problems:
        raise dg.Failure(description="\n".join(problems), allow_retries=False)


def composition_drawn(report: Any) -> Drawn:
    """The composition report of a date (``report.DayReport``) for the UI."""
    from b3_assets.reports.report import fmt_pct, fmt_pp, top_issuers

    top = [
        {"empresa": f"{r['empresa']} ({r['acao']})", "part. (%)": r["participacao_total_pct"]}
        for r in top_issuers(report.weights)
    ]
    changes = [
        {"empresa": f"{r['empresa']} ({r['acao']})", "p.p.": r["variacao_participacao_pp"]}
        for r in report.shown_changes
    ]
    metadata: dict[str, Any] = {
        "date": report.day.isoformat(),
        "previous_date": report.previous.isoformat() if report.previous else "none",
        "rows": report.rows,
        "top15": bar_table(top, "empresa", "part. (%)", fmt_pct),
        "top15_share_pct": float(sum(r["part. (%)"] for r in top)),
        "entered": ", ".join(report.entered) or "none",
        "left": ", ".join(report.left) or "none",
    }
    if changes:
        metadata["changes"] = bar_table(changes, "empresa", "p.p.", fmt_pp)
    return Drawn(metadata, {"top15": report.top15_png, "changes": report.changes_png})




@dg.asset(
    key=REPORT_MARTS,
    deps=list(MART_KEYS.values()),
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    tags={"layer": "report"},
    kinds={"python"},
    description="From the marts: the day's sector weights, the entries and exits since the "
    "previous portfolio (exits included: refined has no row for an issuer that left), and the "
    "concentration trend (HHI, effective N, top 10) over all dates; under reports/dt=…/.",
)
def report_ibov_marts(
    context: dg.AssetExecutionContext, catalog: CatalogResource, lake: LakeResource
) -> Iterator[dg.AssetMaterialization]:
    from b3_assets.reports.report_marts import marts_report

    yield from draw_and_store(context, REPORT_MARTS, catalog, lake,
                              lambda engine, day: marts_drawn(marts_report(engine, day)),
                              lambda the_lake: recomputed_followers(context, the_lake))


def recomputed_followers(context: dg.AssetExecutionContext, lake: Lake) -> list[str]:
    """The next landing dates whose marts were recomputed with the run's dates (``ibov_marts``
    recomputes the date after each one: its previous date may have changed) and are now newer
    than their report: drawn by the same step, so no report is left behind its marts."""
    from b3_assets.marts.compute import landing_sessions, plan_marts

    followers = plan_marts(landing_sessions(lake), partition_dates(context)).followers
    if not followers:
        return []
    keys = {d.isoformat() for d in followers}

    marts = [latest_by_partition(context.instance, k, keys) for k in MART_KEYS.values()]
    drawn = latest_by_partition(context.instance, REPORT_MARTS, keys)
    return sorted(
        k for k in keys if max(m.get(k, -1) for m in marts) > drawn.get(k, -1)
    )


def marts_drawn(report: Any) -> Drawn:
    """The marts report of a date (``report_marts.MartsReport``) for the UI: the sectors as a
    text bar chart, the day's concentration as numbers (the Plots tab draws them over dates)."""
    from b3_assets.reports.report import fmt_pct
    from b3_assets.reports.report_marts import UNCLASSIFIED

    sectors = [
        {"setor": r["setor"] or UNCLASSIFIED, "part. (%)": r["participacao_pct"]}
        for r in report.sector_rows
    ]
    metadata: dict[str, Any] = {
        "date": report.day.isoformat(),
        "entered": ", ".join(report.entered) or "none",
        "left": ", ".join(report.left) or "none",
    }
    if sectors:
        metadata["sectors"] = bar_table(sectors, "setor", "part. (%)", fmt_pct)
    for column in ("hhi", "n_efetivo", "top10_pct", "giro_pct"):
        value = (report.indicators or {}).get(column)
        if value is not None:
            metadata[column] = float(value)
    charts = {
        "sectors": report.sectors_png,
        "movements": report.movements_png,
        "concentration": report.concentration_png,
    }
    return Drawn(metadata, charts)
