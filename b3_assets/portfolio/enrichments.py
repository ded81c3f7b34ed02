"""Enrichments: what the day's portfolio carries beyond B3's plain view, and the one rule for
every one of them. Today there is one, the sector labels of B3's sector view.

The rule: an enrichment is optional. When it fails (its view errs, times out or answers
without what it adds), the day lands anyway from its fallback, the portfolio exactly with the
enrichment's columns null; the raw archive records what was missing and why (manifest
``enrichments_missing``), landing's ``enrichments_present`` check warns naming it, and the
day's fill attempts (schedule :data:`FILL_SCHEDULE`) ask again. An answer that has it now is
archived beside the fallback (manifest ``fills``: the digest of the payload it completes), and
landing is rebuilt from both: every row and column of the fallback, the enrichment's columns
from the fill (:func:`landing_table`), so the portfolio's rows never change after landing.

To add an enrichment: an :class:`Enrichment` in :data:`ENRICHMENTS` naming its landing
columns, its source, its fallback and its filling; its collection records it as missing
(:func:`missing_notes`) and fills it the same way (``collect.fill_enrichments``).

No Dagster here: the raw and landing steps, the check and the schedule call this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from b3_assets.storage.archive import ArchiveCorruptError, ArchivedPayload, RawArchive

#: The schedule that asks again for what a day landed without (b3_assets/portfolio/schedules.py).
FILL_SCHEDULE = "daily_ibov_enrichments"
#: When it runs: every two hours from 09:45 to 17:45 São Paulo, B3 sessions only.
FILL_CRON = "45 9-17/2 * * 1-5"
FILL_TIMES = "every 2 h from 09:45 to 17:45 São Paulo"
#: The raw step's config that fills a landed date's missing enrichments (and does nothing else).
FILL_CONFIG = "fill_enrichments"

#: Manifest keys of the raw archive (archive.py writes whatever the collection notes).
MISSING = "enrichments_missing"
FILLS = "fills"


@dataclass(frozen=True)
class Enrichment:
    """What the day's portfolio may carry beyond the plain view, and what happens without it."""

    name: str
    #: The landing columns it fills (null without it).
    columns: tuple[str, ...]
    #: Where it comes from.
    source: str
    #: What lands when it fails.
    fallback: str


SECTORS = Enrichment(
    name="sectors",
    columns=("setor_b3", "setor", "subsetor"),
    source="B3's sector view (GetPortfolioDay segment 2)",
    fallback="B3's plain view (segment 1): the same rows, setor_b3/setor/subsetor null",
)
ENRICHMENTS: dict[str, Enrichment] = {e.name: e for e in (SECTORS,)}


class EnrichmentMismatchError(ValueError):
    """The enriched answer is not of the portfolio that landed: filling it would change rows."""


def missing_notes(missing: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The manifest fields of a payload that landed without ``missing`` (name -> why)."""
    unknown = set(missing) - set(ENRICHMENTS)
    if unknown:
        raise ValueError(f"unknown enrichment(s) {', '.join(sorted(unknown))}: one of "
                         f"{', '.join(ENRICHMENTS)}")
    return {MISSING: dict(missing)}


def fill_notes(base: ArchivedPayload, names: list[str]) -> dict[str, dict[str, object]]:
    """The manifest fields of a payload that fills ``names`` into the archived ``base``."""
    return {FILLS: {"digest": base.digest, "enrichments": sorted(names)}}


def missing(entry: ArchivedPayload | None) -> dict[str, str]:
    """What the payload landing is built from lacks (name -> why); empty when nothing.

    Only a recorded fallback counts: a CSV import or a payload archived before the sector
    view has null sectors too, but no enrichment failed for it, so nothing is missing."""
    if entry is None:
        return {}
    return {str(k): str(v) for k, v in (entry.manifest.get(MISSING) or {}).items()}


def landing_entry(archive: RawArchive, day: date) -> ArchivedPayload | None:
    """The newest archived payload of ``day``: the one landing is built from (with its base
    when it is a fill)."""
    entries = archive.entries(day)
    return entries[-1] if entries else None


def missing_message(day: date, lacking: Mapping[str, str]) -> str:
    """What a user reads (raw step's warning, the check's description) for a day that landed
    without ``lacking``: what, why, and what fills it in."""
    parts = "; ".join(f"{name} missing for {day.isoformat()}: {why}"
                      for name, why in sorted(lacking.items()))
    return (f"{parts}. The portfolio itself landed exactly "
            f"({'; '.join(ENRICHMENTS[n].fallback for n in sorted(lacking))}). The day's fill "
            f"attempts (schedule {FILL_SCHEDULE}, {FILL_TIMES}) fill them in without touching "
            f"its rows, while B3 still serves {day.isoformat()}; by hand: materialize the date "
            f"with `{FILL_CONFIG}: true` (Launchpad: `ops: raw__ibov_portfolio: config: "
            f"{FILL_CONFIG}: true`).")


def filled_table(base: pa.Table, enriched: pa.Table, names: list[str]) -> pa.Table:
    """``base`` (the landed rows) with the columns of the enrichments ``names`` taken from
    ``enriched``; every other column must be equal but ``coletado_em`` (when each was
    fetched), which stays the base's: the portfolio's rows never change."""
    columns = {c for n in names for c in ENRICHMENTS[n].columns}
    kept = [c for c in base.column_names if c not in columns and c != "coletado_em"]
    if base.num_rows != enriched.num_rows:
        raise EnrichmentMismatchError(
            f"the enriched answer has {enriched.num_rows} rows, the landed portfolio "
            f"{base.num_rows}")
    differ = [c for c in kept if not base.column(c).equals(enriched.column(c))]
    if differ:
        raise EnrichmentMismatchError(
            "the enriched answer differs from the landed portfolio in "
            + ", ".join(differ))
    return pa.Table.from_arrays(
        [enriched.column(c) if c in columns else base.column(c) for c in base.column_names],
        schema=base.schema,
    )


def landing_table(archive: RawArchive, day: date) -> pa.Table | None:
    """``day``'s landing rows from the raw archive alone: the newest payload's, or, when the
    newest fills enrichments into an earlier one, that one's rows with the filled columns.
    None when the date is not archived."""
    entries = archive.entries(day)
    if not entries:
        return None
    newest = entries[-1]
    table = archive.load(newest).portfolio(day).to_landing_table()
    fills = newest.manifest.get(FILLS)
    if not fills:
        return table
    base = next((e for e in entries if e.digest == fills.get("digest")), None)
    where = archive.lake.uri(newest.prefix)
    if base is None:
        raise ArchiveCorruptError(
            where, f"it fills {', '.join(fills.get('enrichments', []))} into payload "
            f"{fills.get('digest')}, which is not archived for {day.isoformat()}. Delete "
            "this folder and materialize the date again (or import its CSV).")
    try:
        return filled_table(archive.load(base).portfolio(day).to_landing_table(), table,
                            list(fills.get("enrichments", [])))
    except EnrichmentMismatchError as exc:
        raise ArchiveCorruptError(where, f"{exc}. Delete this folder (the date then lands "
                                  "from the payload it was to complete).") from exc
