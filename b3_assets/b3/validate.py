"""The rules a portfolio must pass before anything is written (DESIGN.md, issue #2 §3).

Every real B3 sample passes them exactly; a payload that fails is rejected with every
problem found, so a user sees all of what is wrong at once."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

from b3_assets.b3.errors import B3PayloadError
from b3_assets.b3.model import Portfolio

MIN_CONSTITUENTS = 50
PARTICIPATION_TOLERANCE = Decimal("0.01")
#: A B3 cash-equity ticker: the 4-character issuer root (letters, though B3SA has a digit)
#: and the class number: PETR4, B3SA3, SANB11.
TICKER = re.compile(r"^[A-Z][A-Z0-9]{3}\d{1,2}$")


def portfolio_problems(portfolio: Portfolio) -> list[str]:
    """Every reason to reject ``portfolio``; empty when it is sound."""
    rows = portfolio.constituents
    if not rows:
        return ["the results are empty"]
    problems: list[str] = []
    if len(rows) < MIN_CONSTITUENTS:
        problems.append(f"only {len(rows)} constituents (IBOV has at least {MIN_CONSTITUENTS})")
    dupes = sorted(code for code, n in Counter(c.codigo for c in rows).items() if n > 1)
    if dupes:
        problems.append(f"duplicated codes: {', '.join(dupes)}")
    bad = sorted(c.codigo for c in rows if not TICKER.match(c.codigo))
    if bad:
        problems.append(f"not B3 tickers: {', '.join(repr(b) for b in bad)}")
    nonpositive = sorted(f"{c.codigo}={c.qtde_teorica}" for c in rows if c.qtde_teorica <= 0)
    if nonpositive:
        problems.append(f"quantities not positive: {', '.join(nonpositive)}")
    qty_sum = sum(c.qtde_teorica for c in rows)
    if qty_sum != portfolio.qtde_teorica_total:
        problems.append(
            f"quantities add up to {qty_sum:,}, not to the header total "
            f"{portfolio.qtde_teorica_total:,}"
        )
    part_sum = sum((c.participacao_pct for c in rows), Decimal(0))
    if abs(part_sum - Decimal(100)) > PARTICIPATION_TOLERANCE:
        problems.append(f"participations add up to {part_sum}, not to 100 ± 0.01")
    return problems


def validate_portfolio(portfolio: Portfolio) -> Portfolio:
    """``portfolio`` itself when sound; else :class:`B3PayloadError` naming every problem."""
    problems = portfolio_problems(portfolio)
    if problems:
        raise B3PayloadError(portfolio.where, "; ".join(problems), portfolio.data_carteira)
    return portfolio
