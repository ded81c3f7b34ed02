"""The gap audit: every trading day since the first archived one that has no landing file.

B3 replaces the portfolio every day, so a day the orchestrator missed is lost unless someone
imports B3's CSV for it. The audit lists each such day with the fix, every morning."""


from datetime import date

import dagster as dg

from b3_assets.keys import AUDIT, LANDING
from b3_assets.platform.resources import LakeResource
from b3_assets.sessions import B3_TIMEZONE, trading_days
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.landing import landing_dates


def missing_days(archived: list[date], landed: list[date], today: date) -> list[date]:
    """Trading days from the first archived date up to ``today`` with no landing file."""
    if not archived:
        return []
    have = set(landed)
    return [d for d in trading_days(min(archived), today) if d not in have]


def fix_for(day: date, today: date) -> str:
    """What to do about one missing day: B3 serves only the current portfolio."""
    if day == today:
        return "B3 still serves it: materialize today's partition (job daily_ibov_portfolio)."
    return f"b3-pipeline import-csv IBOVDia_{day:%d-%m-%y}.csv (B3's download for that day)"


@dg.asset(
    key=AUDIT,
    deps=[LANDING],
    tags={"layer": "audit"},
    kinds={"python"},
    check_specs=[dg.AssetCheckSpec("no_missing_trading_days", asset=AUDIT)],
    description="Every B3 trading day since the first archived one that has no landing file, "
    "with the fix for each (import B3's CSV, or materialize today).",
)
def audit_landing_gaps(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    the_lake = lake.get()
    today = _today()
    archived = RawArchive(the_lake).dates()
    missing = missing_days(archived, landing_dates(the_lake), today)
    lines = ["| trading day | fix |", "|---|---|"] + [
        f"| {d.isoformat()} | `{fix_for(d, today)}` |" for d in missing
    ]
    table = "\n".join(lines) if missing else "No trading day is missing."
    return dg.MaterializeResult(
        metadata={
            "missing_days": len(missing),
            "first_archived": min(archived).isoformat() if archived else "none",
            "missing": dg.MetadataValue.md(table),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_missing_trading_days",
                passed=not missing,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "missing_days": len(missing),
                    "first_missing": missing[0].isoformat() if missing else "none",
                    "last_missing": missing[-1].isoformat() if missing else "none",
                },
            )
        ],
    )


def _today() -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(B3_TIMEZONE)).date()


audit_job = dg.define_asset_job("landing_gap_audit", selection=[AUDIT])

audit_schedule = dg.ScheduleDefinition(
    name="landing_gap_audit_0950",
    job=audit_job,
    cron_schedule="50 9 * * *",
    execution_timezone=B3_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every morning after the two collection attempts: list missing trading days.",
)
