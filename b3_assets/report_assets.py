"""report/ibov_composition: the day's charts, in the lake and inline in the Dagster UI.

The sensor requests it after each refined date (``sensors.py``); it can also be materialized
or backfilled from the UI. The drawing is in ``report.py``; this module only wires it in."""

import base64
from datetime import date

import dagster as dg

from b3_assets.assets import GROUP, REFINED
from b3_assets.partitions import trading_days

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
    partitions_def=trading_days,
    required_resource_keys={"catalog", "lake"},
    group_name=GROUP,
    kinds={"python"},
    description="The day's IBOV composition as two PNGs: the 15 heaviest issuers and the "
    "biggest weight changes since the previous portfolio (p.p.). Queried from the catalog "
    "of the environment (DuckDB | Athena) with b3_assets/sql/; stored under "
    "reports/dt=…/ and shown in the materialization's metadata.",
)
def report_ibov_composition(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    # matplotlib is imported by the run that draws, not by every load of the definitions.
    from b3_assets.report import ReportError, day_report

    day = date.fromisoformat(context.partition_key)
    try:
        report = day_report(context.resources.catalog, day)
    except ReportError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    lake = context.resources.lake
    keys = {"top15": report_key(day, "top15.png"), "changes": report_key(day, "changes.png")}
    pngs = {"top15": report.top15_png, "changes": report.changes_png}
    for name, png in pngs.items():
        if len(png) > MAX_INLINE_PNG_BYTES:
            context.log.warning(f"{name}.png is {len(png)} bytes, more than the inline budget")
        lake.write_bytes(keys[name], png)
    return dg.MaterializeResult(
        metadata={
            "date": day.isoformat(),
            "previous_date": report.previous.isoformat() if report.previous else "none",
            "rows": report.rows,
            "top15": inline_png("top15", report.top15_png),
            "changes": inline_png("changes", report.changes_png),
            "top15_uri": dg.MetadataValue.url(lake.uri(keys["top15"])),
            "changes_uri": dg.MetadataValue.url(lake.uri(keys["changes"])),
            "entered": ", ".join(report.entered) or "none",
            "left": ", ".join(report.left) or "none",
        }
    )
