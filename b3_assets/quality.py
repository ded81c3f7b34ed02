"""The quality rules behind the asset checks, as plain functions over rows.

Each returns (passed, metadata) so the metadata shows the offending values in the UI."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pyarrow as pa

from b3_assets.b3.validate import MIN_CONSTITUENTS, PARTICIPATION_TOLERANCE

CheckOutcome = tuple[bool, dict[str, Any]]


def landing_checks(table: pa.Table) -> dict[str, CheckOutcome]:
    codes = table.column("codigo").to_pylist()
    qty = table.column("qtde_teorica").to_pylist()
    parts = table.column("participacao_pct").to_pylist()
    totals = set(table.column("qtde_teorica_total").to_pylist())
    dupes = sorted(c for c, n in Counter(codes).items() if n > 1)
    qty_sum = sum(qty)
    part_sum = sum(parts, Decimal(0))
    header_total = next(iter(totals)) if len(totals) == 1 else None
    return {
        "at_least_50_constituents": (
            len(codes) >= MIN_CONSTITUENTS,
            {"rows": len(codes), "minimum": MIN_CONSTITUENTS},
        ),
        "unique_codes": (not dupes, {"duplicated_codes": ", ".join(dupes) or "none"}),
        "quantities_add_up_to_header_total": (
            header_total is not None and qty_sum == header_total,
            {
                "sum_qtde_teorica": qty_sum,
                "qtde_teorica_total": header_total if header_total is not None else str(totals),
            },
        ),
        "participations_add_up_to_100": (
            abs(part_sum - 100) <= PARTICIPATION_TOLERANCE,
            {"sum_participacao_pct": str(part_sum), "tolerance": str(PARTICIPATION_TOLERANCE)},
        ),
    }


def refined_checks(refined: list[dict[str, Any]], landing: pa.Table) -> dict[str, CheckOutcome]:
    """``refined``: the date's refined rows (``Acao``, ``participacao_total_pct``)."""
    expected = sorted({c[:4] for c in landing.column("codigo").to_pylist()})
    got = [str(r["Acao"]) for r in refined]
    dupes = sorted(a for a, n in Counter(got).items() if n > 1)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    part_sum = sum((Decimal(str(r["participacao_total_pct"])) for r in refined), Decimal(0))
    return {
        "one_row_per_issuer": (
            not (dupes or missing or extra),
            {
                "issuers_in_landing": len(expected),
                "rows": len(got),
                "missing": ", ".join(missing) or "none",
                "unexpected": ", ".join(extra) or "none",
                "duplicated": ", ".join(dupes) or "none",
            },
        ),
        "participations_add_up_to_100": (
            bool(refined) and abs(part_sum - 100) <= PARTICIPATION_TOLERANCE,
            {"sum_participacao_total_pct": str(part_sum)},
        ),
    }
