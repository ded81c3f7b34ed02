"""The quality rules behind the asset checks: the payload rules of ``source.validate`` run on
landing files, plus the refined table's own rule (one row per issuer).

Each returns (passed, metadata) so the metadata shows the offending values in the UI. The rules
are the very functions that reject a B3 payload before it is written, so a landing file that
fails a check means the file changed after it was written, not that two copies of a rule
drifted apart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from b3_assets.platform.check_results import CheckOutcome
from b3_assets.source.errors import listing
from b3_assets.source.validate import Columns, Outcome, column_rules, participations_add_up_to_100
from glue.layout import issuer_root


def _check(outcome: Outcome) -> CheckOutcome:
    return outcome.passed, outcome.metadata


def landing_checks(table: pa.Table) -> dict[str, CheckOutcome]:
    """Every payload rule (``source.validate.column_rules``) on one date's landing rows."""
    rules = column_rules(Columns.of_landing(table))
    return {name: _check(outcome) for name, outcome in rules.items()}


def one_row_per_issuer(codes: Sequence[str], issuers: Sequence[str]) -> Outcome:
    """Refined has exactly one row per issuer root of the date's landing codes."""
    expected = {issuer_root(c) for c in codes}
    dupes = sorted(a for a, n in Counter(issuers).items() if n > 1)
    missing = sorted(expected - set(issuers))
    extra = sorted(set(issuers) - expected)
    return Outcome(
        not (dupes or missing or extra),
        {
            "issuers_in_landing": len(expected),
            "rows": len(issuers),
            "missing": listing(missing) or "none",
            "unexpected": listing(extra) or "none",
            "duplicated": listing(dupes) or "none",
        },
    )


def refined_checks(refined: list[dict[str, Any]], landing: pa.Table) -> dict[str, CheckOutcome]:
    """``refined``: the date's refined rows keyed as the catalog returns them, lower-case
    (``acao``, ``participacao_total_pct``: Athena's labels, catalog.QueryResult)."""
    issuers = [str(r["acao"]) for r in refined]
    parts = [Decimal(str(r["participacao_total_pct"])) for r in refined]
    return {
        "one_row_per_issuer": _check(
            one_row_per_issuer(landing.column("codigo").to_pylist(), issuers)),
        "participations_add_up_to_100": _check(participations_add_up_to_100(parts)),
    }
