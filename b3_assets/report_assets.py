"""report/ibov_composition: the day's charts, in the lake and inline in the Dagster UI.

The sensor requests it after each refined date (``sensors.py``); it can also be materialized
or backfilled from the UI. The drawing is in ``report.py``; this module only wires it in."""

import base64
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import dagster as dg

from b3_assets.assets import GROUP, OWNERS, REFINED
from b3_assets.lake import Lake
from b3_assets.marts import MART_KEYS
from b3_assets.partitions import trading_day_partitions
from b3_assets.resources import CatalogResource, LakeResource

REPORT = dg.AssetKey(["report", "ibov_composition"])
REPORTS_PREFIX = "reports"

#: Keep inline images well under this (they live in the event log and are sent to the UI).
MAX_INLINE_PNG_BYTES = 100_000


def report_key(day: date, name: str) -> str:
    """``reports/dt=YYYY-MM-DD/<name>`` (same relative key in the folder and the bucket)."""
    return f"{REPORTS_PREFIX}/dt={day.isoformat()}/{name}"


def inline_png(alt: str, png: bytes) -> dg.MarkdownMetadataValue:
    """Markdown with the PNG as a data URI: the UI shows it with no access to the lake."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


@dg.asset(
    key=REPORT,
    deps=[REFINED],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    group_name=GROUP,
    owners=OWNERS,
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
    from b3_assets.report import day_report

    engine, the_lake = catalog.engine(), lake.get()
    yield from draw_each_date(
        context,
        REPORT,
        lambda key: _store(context, the_lake, key, day_report(engine, date.fromisoformat(key))),
    )


def draw_each_date(
    context: dg.AssetExecutionContext, key: dg.AssetKey, draw: Callable[[str], dict[str, Any]]
) -> Iterator[dg.AssetMaterialization]:
    """One materialization per partition of the run (a range run draws each date); a date
    that cannot be drawn is named in the step's failure after the others are drawn."""
    from b3_assets.report import ReportError

    problems = []
    for partition in context.partition_keys:
        try:
            metadata = draw(partition)
        except ReportError as exc:
            problems.append(f"{partition}: {exc}")
            continue
        yield dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)
    if problems:
        raise dg.Failure(description="\n".join(problems), allow_retries=False)


def _store(context: dg.AssetExecutionContext, lake: Lake, key: str, report: Any) -> dict:
    """Write the day's PNGs to the lake; the materialization's metadata shows them inline."""
    day = date.fromisoformat(key)
    keys = {"top15": report_key(day, "top15.png"), "changes": report_key(day, "changes.png")}
    pngs = {"top15": report.top15_png, "changes": report.changes_png}
    for name, png in pngs.items():
        if len(png) > MAX_INLINE_PNG_BYTES:
            context.log.warning(f"{name}.png is {len(png)} bytes, more than the inline budget")
        lake.write_bytes(keys[name], png)
    return {
        "date": key,
        "previous_date": report.previous.isoformat() if report.previous else "none",
        "rows": report.rows,
        "top15": inline_png("top15", report.top15_png),
        "changes": inline_png("changes", report.changes_png),
        "top15_uri": dg.MetadataValue.url(lake.uri(keys["top15"])),
        "changes_uri": dg.MetadataValue.url(lake.uri(keys["changes"])),
        "entered": ", ".join(report.entered) or "none",
        "left": ", ".join(report.left) or "none",
    }


REPORT_MARTS = dg.AssetKey(["report", "ibov_marts"])


@dg.asset(
    key=REPORT_MARTS,
    deps=list(MART_KEYS.values()),
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    group_name=GROUP,
    owners=OWNERS,
    tags={"layer": "report"},
    kinds={"python"},
    description="From the marts: the day's sector weights, the entries and exits since the "
    "previous portfolio (exits included: refined has no row for an issuer that left), and the "
    "concentration trend (HHI, effective N, top 10) over all dates; under reports/dt=…/.",
)
def report_ibov_marts(
    context: dg.AssetExecutionContext, catalog: CatalogResource, lake: LakeResource
) -> Iterator[dg.AssetMaterialization]:
    from b3_assets.report_marts import marts_report

    engine, the_lake = catalog.engine(), lake.get()

    def draw(key: str) -> dict[str, Any]:
        day = date.fromisoformat(key)
        report = marts_report(engine, day)
        metadata: dict[str, Any] = {
            "date": key,
            "entered": ", ".join(report.entered) or "none",
            "left": ", ".join(report.left) or "none",
        }
        pngs = {
            "sectors": report.sectors_png,
            "movements": report.movements_png,
            "concentration": report.concentration_png,
        }
        for name, png in pngs.items():
            lake_key = report_key(day, f"{name}.png")
            the_lake.write_bytes(lake_key, png)
            metadata[name] = inline_png(name, png)
            metadata[f"{name}_uri"] = dg.MetadataValue.url(the_lake.uri(lake_key))
        return metadata

    yield from draw_each_date(context, REPORT_MARTS, draw)
