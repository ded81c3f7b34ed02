"""Asset checks on landing and refined: one result per check and per date, from runs.

Each check is evaluated inside a run (never in a sensor tick) and yields one
``AssetCheckEvaluation`` per partition of the run, so a single-run backfill of N dates records
N results per check, and a date re-run any number of times has one current result. The rules
are plain functions in ``quality``; this module reads the data once per run and reports.

Who evaluates: the step that stored (or recorded) the data, right after it did, on what is
stored. The jobs that collect plan no check, so a run that fails before storing anything (B3
down) leaves every check showing its last real evaluation instead of "Execution failed". The
checks are also defined as their own steps (``landing_ibov_portfolio_checks``, …) to be run on
demand (the UI's "Execute", the ``refined_checks`` job); a run that selects them gets their
results from those steps, not twice (:func:`evaluated_by_own_step`)."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa

from b3_assets.keys import LANDING, REFINED
from b3_assets.partitions import trading_day_partitions
from b3_assets.platform.catalog import QueryEngine
from b3_assets.platform.check_results import CheckOutcome, check_evaluation, check_metadata
from b3_assets.platform.glue_runs import FinishedRun
from b3_assets.platform.resources import CatalogResource, GlueJobResource, LakeResource
from b3_assets.portfolio.enrichments import FILLS, landing_entry, missing, missing_message
from b3_assets.portfolio.quality import landing_checks, refined_checks
from b3_assets.sessions import is_known_session
from b3_assets.source.sectors import unknown_sector_labels
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import Lake, LakeError
from b3_assets.storage.landing import landing_dates, read_landing

#: The landing rules (source/validate.py, the same ones that refuse a bad payload at collection).
LANDING_RULES = {
    "at_least_50_constituents": "B3's portfolio has at least 50 constituents.",
    "at_most_200_constituents": "No more than 200 constituents (IBOV has about 85).",
    "unique_codes": "No ticker appears twice.",
    "codes_are_b3_tickers": "Every code looks like a B3 ticker (PETR4, BPAC11).",
    "quantities_positive": "Every theoretical quantity is positive.",
    "quantities_fit_int64": "Every quantity fits int64.",
    "quantities_add_up_to_header_total": "The theoretical quantities add up to the header's total.",
    "participations_non_negative": "No participation is negative.",
    "participations_at_most_3_decimals": "Participations have at most 3 decimals, as B3 gives.",
    "participations_add_up_to_100": "Participations add up to 100 ± 0.01 %.",
    "redutor_positive": "The reductor is positive.",
    "redutor_fits_decimal_24_8": "The reductor fits decimal(24,8).",
}
#: One check on landing, one result per date: every rule above plus the sector labels. A
#: result is an event in Dagster's storage (~16 ms on SQLite), so one check instead of one per
#: rule is what keeps a three-year backfill in minutes (README, "Benchmarks"); the result
#: still names each broken rule with its offending values.
VALID_PORTFOLIO = "valid_portfolio"
ENRICHMENTS_PRESENT = "enrichments_present"
LANDING_CHECKS = {
    VALID_PORTFOLIO: "The date's landing file passes every rule a B3 payload passes at "
    "collection (source/validate.py), checked again on the file as stored:\n\n"
    + "\n".join(f"- `{name}`: {text}" for name, text in LANDING_RULES.items())
    + "\n\nA broken rule fails it (ERROR), naming the rule and its offending values. A B3 "
    "sector label missing from the project's mapping (b3_assets/source/sectors.py; it lands with "
    "null setor/subsetor) fails it as a WARN, naming the label.",
    ENRICHMENTS_PRESENT: "Nothing the date's portfolio is enriched with (its sectors, from B3's "
    "sector view) is missing. Fails as a WARN, naming what is missing, why and what fills it "
    "in, only for a date that landed without it because it failed (B3's sector view failed, "
    "timed out or had no labels: the day landed from the plain view, recorded in its raw "
    "payload's manifest); passes once the day's fill attempts filled it in. A CSV import has "
    "null sectors without anything having failed: it passes (its `source` says csv). The "
    "rule: b3_assets/portfolio/enrichments.py.",
}
GLUE_RUN_CHECK = "glue_job_run_succeeded"
REFINED_CHECKS = {
    GLUE_RUN_CHECK: "The latest Glue job run of the date succeeded (else Glue's error message).",
    "one_row_per_issuer": "One row per issuer root of the date's landing, none missing or extra.",
    "participations_add_up_to_100": "Issuer participations add up to 100 ± 0.01 %.",
    "previous_date_matches_landing": "data_carteira_anterior is the landing date before it.",
}
#: Lower-case aliases: Athena labels every column lower-case (catalog.QueryResult too).
REFINED_ROWS_SQL = (
    "SELECT DataCarteira AS data_carteira, Acao AS acao, participacao_total_pct, "
    "data_carteira_anterior FROM b3_etl_soma_acao WHERE DataCarteira BETWEEN ? AND ? "
    "ORDER BY data_carteira, acao"
)


def _specs(key: dg.AssetKey, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=key, description=text, partitions_def=trading_day_partitions)
        for name, text in checks.items()
    ]


def landing_evaluation(day: str, table: pa.Table) -> dg.AssetCheckEvaluation:
    """The ``valid_portfolio`` result of one date's landing rows."""
    outcomes = landing_checks(table)
    broken = [name for name in LANDING_RULES if not outcomes[name][0]]
    unknown = unknown_sector_labels(table)
    metadata: dict[str, Any] = {
        "data_carteira": day,
        "rules_checked": len(outcomes),
        "broken_rules": ", ".join(broken) or "none",
        "unknown_sector_labels": "; ".join(unknown) or "none",
    }
    for name in broken:
        metadata.update({f"{name}: {k}": v for k, v in outcomes[name][1].items()})
    return dg.AssetCheckEvaluation(
        asset_key=LANDING,
        check_name=VALID_PORTFOLIO,
        passed=not broken and not unknown,
        severity=dg.AssetCheckSeverity.ERROR if broken else dg.AssetCheckSeverity.WARN,
        metadata=check_metadata(metadata),
        partition=day,
    )


def enrichment_evaluation(day: str, archive: RawArchive) -> dg.AssetCheckEvaluation:
    """The ``enrichments_present`` result of one date: what the payload landing is built
    from records as missing (a WARN naming it), nothing for a CSV import or a filled day."""
    entry = landing_entry(archive, date.fromisoformat(day))
    lacking = missing(entry)
    fills = (entry.manifest.get(FILLS) or {}) if entry else {}
    metadata: dict[str, Any] = {
        "data_carteira": day,
        "missing": ", ".join(sorted(lacking)) or "none",
        "source": entry.manifest.get("source", "?") if entry else "not archived",
        "raw_payload": archive.lake.uri(entry.prefix) if entry else "none",
        "filled_in": ", ".join(fills.get("enrichments", [])) or "none",
    }
    metadata.update({f"why {name} is missing": why for name, why in lacking.items()})
    return dg.AssetCheckEvaluation(
        asset_key=LANDING,
        check_name=ENRICHMENTS_PRESENT,
        passed=not lacking,
        severity=dg.AssetCheckSeverity.WARN,
        description=missing_message(date.fromisoformat(day), lacking) if lacking else None,
        metadata=check_metadata(metadata),
        partition=day,
    )


def landing_evaluations(
    lake: Lake, keys: list[str], selected: set[dg.AssetCheckKey] | None = None
) -> Iterator[dg.AssetCheckEvaluation]:
    """Every landing check (or the ``selected`` ones) of each date of ``keys``, on the files
    as stored and the raw payloads they were built from."""
    archive = RawArchive(lake)
    for key in keys:
        if selected is None or dg.AssetCheckKey(LANDING, VALID_PORTFOLIO) in selected:
            yield landing_evaluation(key, read_landing(lake, date.fromisoformat(key)))
        if selected is None or dg.AssetCheckKey(LANDING, ENRICHMENTS_PRESENT) in selected:
            yield enrichment_evaluation(key, archive)


LANDING_CHECK_KEYS = [dg.AssetCheckKey(LANDING, name) for name in LANDING_CHECKS]
REFINED_CHECK_KEYS = [dg.AssetCheckKey(REFINED, name) for name in REFINED_CHECKS]


@dg.multi_asset_check(specs=_specs(LANDING, LANDING_CHECKS), can_subset=True)
def landing_ibov_portfolio_checks(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckEvaluation]:
    """On demand: reads each date's landing file once and evaluates every landing rule on it,
    and what its raw payload lacks (the landing step does the same right after it writes
    the files)."""
    yield from landing_evaluations(lake.get(), list(context.partition_keys),
                                   set(context.selected_asset_check_keys))


def refined_rows_by_date(
    catalog: QueryEngine, first: str, last: str
) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in catalog.query(REFINED_ROWS_SQL, [first, last]).as_dicts():
        rows.setdefault(str(row["data_carteira"]), []).append(row)
    return rows


def run_metadata(run: FinishedRun) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "glue_job_run_id": run.run_id,
        "state": run.state,
        "duration_s": round(run.execution_s, 3),
    }
    if run.error_message:
        meta["error_message"] = run.error_message
    return meta


def glue_run_outcome(run: FinishedRun | None, day: date) -> CheckOutcome:
    """The latest finished run of ``day`` published it (a run of many dates can fail for
    some dates and publish the others)."""
    if run is None:
        return False, {"state": "no run"}
    published = day in run.refined_dates
    return published, {**run_metadata(run), "this_date": "published" if published else "failed"}


def previous_date_outcome(rows: list[dict[str, Any]], expected: date | None) -> CheckOutcome:
    found = sorted({str(r["data_carteira_anterior"]) for r in rows})
    want = str(expected) if expected else "None"
    return (
        bool(rows) and found == [want],
        {"data_carteira_anterior": ", ".join(found) or "no rows", "expected": want},
    )


def refined_evaluations(
    keys: list[str], lake: LakeResource, catalog: CatalogResource, glue_job: GlueJobResource
) -> Iterator[dg.AssetCheckEvaluation]:
    """Every refined check of each date of ``keys``: one catalog query for the range, the
    date's landing file, its latest finished Glue run."""
    keys = sorted(keys)
    rows = refined_rows_by_date(catalog.engine(), keys[0], keys[-1])
    watcher = glue_job.watcher()
    the_lake = lake.get()
    landed = sorted(d for d in landing_dates(the_lake) if is_known_session(d))
    for key in keys:
        day = date.fromisoformat(key)
        run = watcher.latest_finished(day)
        yield check_evaluation(REFINED, GLUE_RUN_CHECK, key, glue_run_outcome(run, day))
        day_rows = rows.get(key, [])
        try:
            landing = read_landing(the_lake, day)
        except LakeError as exc:
            for name in REFINED_CHECKS:
                if name != GLUE_RUN_CHECK:
                    yield check_evaluation(REFINED, name, key, (False, {"landing": str(exc)}))
            continue
        outcomes = refined_checks(day_rows, landing)
        earlier = [d for d in landed if d < day]
        outcomes["previous_date_matches_landing"] = previous_date_outcome(
            day_rows, earlier[-1] if earlier else None
        )
        for name in REFINED_CHECKS:
            if name != GLUE_RUN_CHECK:
                yield check_evaluation(REFINED, name, key, outcomes[name])


@dg.multi_asset_check(specs=_specs(REFINED, REFINED_CHECKS), can_subset=True)
def refined_b3_etl_soma_acao_checks(
    context: dg.AssetCheckExecutionContext,
    lake: LakeResource,
    catalog: CatalogResource,
    glue_job: GlueJobResource,
) -> Iterator[dg.AssetCheckEvaluation]:
    """On demand, and from the sensor for dates whose Glue run failed (``refined_checks``);
    a run that records refined dates evaluates them in its refined step."""
    yield from refined_evaluations(list(context.partition_keys), lake, catalog, glue_job)
