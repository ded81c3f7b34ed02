"""The rules a portfolio must pass before anything is written (docs/contracts.md, issue #2 §3), each
written once over plain columns (codes, quantities, participations, header totals, reductors).

Two callers share them: :func:`validate_portfolio` rejects a B3 payload with every problem
found, so a user sees all of what is wrong at once; ``b3_assets.portfolio.quality`` runs the same
rules on landing files as Dagster asset checks, with the offending values as metadata. Every real B3
sample passes them exactly."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from b3_assets.source.errors import B3PayloadError, clip, listing
from b3_assets.source.model import INDICE, VIEW_NAMES, Portfolio

MIN_CONSTITUENTS = 50
#: IBOV has ~85 classes; far more means B3 (or a file) sent something else.
MAX_CONSTITUENTS = 200
PARTICIPATION_TOLERANCE = Decimal("0.01")
#: Decimals B3 publishes and the landing schema keeps: more would be rounded away silently.
PARTICIPATION_PLACES = 3
REDUTOR_PLACES = 8
#: ``decimal128(24, 8)``: 16 integer digits.
REDUTOR_LIMIT = Decimal(10) ** 16
#: ``qtde_teorica`` and ``qtde_teorica_total`` are int64 in the landing schema.
INT64_MAX = 2**63 - 1
#: A B3 cash-equity ticker: the 4-character issuer root (letters, though B3SA has a digit)
#: and the class number: PETR4, B3SA3, SANB11.
TICKER = re.compile(r"^[A-Z][A-Z0-9]{3}\d{1,2}$")


@dataclass(frozen=True)
class Outcome:
    """One rule's verdict: ``metadata`` shows the offending values (asset checks), ``problem``
    says it in a sentence (a rejected payload's error); empty when the rule passed."""

    passed: bool
    metadata: dict[str, Any]
    problem: str = ""


def _outcome(offending: list[str], key: str, problem: str) -> Outcome:
    """Pass when nothing offends; else the (bounded) list in ``metadata[key]`` and the
    problem sentence followed by that list."""
    shown = listing(offending)
    return Outcome(not offending, {key: shown or "none", "count": len(offending)},
                   f"{problem}: {shown}" if offending else "")


def at_least_50_constituents(codes: Sequence[str]) -> Outcome:
    n = len(codes)
    return Outcome(n >= MIN_CONSTITUENTS, {"rows": n, "minimum": MIN_CONSTITUENTS},
                   f"only {n} constituents (IBOV has at least {MIN_CONSTITUENTS})")


def at_most_200_constituents(codes: Sequence[str]) -> Outcome:
    n = len(codes)
    return Outcome(n <= MAX_CONSTITUENTS, {"rows": n, "maximum": MAX_CONSTITUENTS},
                   f"{n:,} constituents, more than {MAX_CONSTITUENTS} (IBOV has about 90): "
                   "not the IBOV portfolio")


def unique_codes(codes: Sequence[str]) -> Outcome:
    dupes = sorted(code for code, n in Counter(codes).items() if n > 1)
    return _outcome(dupes, "duplicated_codes", "duplicated codes")


def codes_are_b3_tickers(codes: Sequence[str]) -> Outcome:
    bad = sorted(repr(code) for code in codes if not TICKER.match(code))
    return _outcome(bad, "not_tickers", "not B3 tickers")


def quantities_positive(codes: Sequence[str], quantities: Sequence[int]) -> Outcome:
    bad = sorted(f"{c}={q}" for c, q in zip(codes, quantities, strict=True) if q <= 0)
    return _outcome(bad, "not_positive", "quantities not positive")


def quantities_fit_int64(codes: Sequence[str], quantities: Sequence[int],
                         header_totals: Sequence[int]) -> Outcome:
    """The landing schema stores quantities as int64: a larger one would crash the write."""
    bad = [f"{c}={q}" for c, q in zip(codes, quantities, strict=True) if q > INT64_MAX]
    bad += [f"header total={t}" for t in header_totals if t > INT64_MAX]
    return _outcome(bad, "beyond_int64", f"quantities beyond int64 ({INT64_MAX:,})")


def quantities_add_up_to_header_total(quantities: Sequence[int],
                                      header_totals: Sequence[int]) -> Outcome:
    """``header_totals``: the distinct header totals the rows carry (one, when sound)."""
    qty_sum = sum(quantities)
    if len(header_totals) != 1:
        shown = listing(header_totals)
        return Outcome(False, {"sum_qtde_teorica": qty_sum, "qtde_teorica_total": shown},
                       f"{len(header_totals)} different header totals ({shown}), not one")
    total = header_totals[0]
    return Outcome(qty_sum == total, {"sum_qtde_teorica": qty_sum, "qtde_teorica_total": total},
                   f"quantities add up to {qty_sum:,}, not to the header total {total:,}")


def participations_non_negative(codes: Sequence[str],
                                participations: Sequence[Decimal]) -> Outcome:
    """A negative weight is never B3's, even when the others make the sum 100."""
    bad = sorted(f"{c}={p:f}" for c, p in zip(codes, participations, strict=True) if p < 0)
    return _outcome(bad, "negative", "negative participations")


def _decimals_beyond(value: Decimal, places: int) -> bool:
    """``value`` has a non-zero digit past ``places`` decimals (exact: no context rounding)."""
    exact = value.as_tuple()
    if not isinstance(exact.exponent, int):  # NaN, Infinity
        return True
    extra = -places - exact.exponent
    return extra > 0 and any(exact.digits[-extra:])


def participations_at_most_3_decimals(codes: Sequence[str],
                                      participations: Sequence[Decimal]) -> Outcome:
    """B3 publishes 3 decimals and landing keeps 3: a 4th would be rounded away unseen."""
    bad = sorted(f"{c}={p:f}" for c, p in zip(codes, participations, strict=True)
                 if _decimals_beyond(p, PARTICIPATION_PLACES))
    return _outcome(bad, "more_than_3_decimals", "participations with more than 3 decimals")


def participations_add_up_to_100(participations: Sequence[Decimal]) -> Outcome:
    part_sum = sum(participations, Decimal(0))
    return Outcome(abs(part_sum - 100) <= PARTICIPATION_TOLERANCE,
                   {"sum_participacao_pct": str(part_sum),
                    "tolerance": str(PARTICIPATION_TOLERANCE)},
                   f"participations add up to {part_sum}, not to 100 ± {PARTICIPATION_TOLERANCE}")


def every_row_has_a_sector(codes: Sequence[str], labels: Sequence[str | None]) -> Outcome:
    """B3's sector view labels every constituent ("Setor / Subsetor")."""
    bad = sorted(c for c, label in zip(codes, labels, strict=True) if not label)
    return _outcome(bad, "without_sector", "constituents without a sector label in B3's "
                    "sector view (segment 2)")


def sector_totals_match(labels: Sequence[str | None], participations: Sequence[Decimal],
                        part_acums: Sequence[Decimal | None]) -> Outcome:
    """Every row of a label carries the same ``partAcum``, the sum of those rows' ``part``
    (within the ± 0.01 of the 100 % rule). Labels whose rows carry no ``partAcum`` at all (a
    table read off the page without that column) are not judged."""
    groups: dict[str, tuple[list[Decimal], set[Decimal | None]]] = {}
    for label, part, acum in zip(labels, participations, part_acums, strict=True):
        if label:
            parts, acums = groups.setdefault(label, ([], set()))
            parts.append(part)
            acums.add(acum)
    bad = []
    for label, (parts, acums) in sorted(groups.items()):
        total = sum(parts, Decimal(0))
        if acums == {None}:
            continue
        if len(acums) > 1:
            shown = ", ".join(sorted("none" if a is None else f"{a:f}" for a in acums))
            bad.append(f"{label!r}: its {len(parts)} rows disagree on partAcum ({shown})")
        else:
            (acum,) = acums
            if acum is not None and abs(acum - total) > PARTICIPATION_TOLERANCE:
                bad.append(f"{label!r}: partAcum {acum:f} but its {len(parts)} rows' part add "
                           f"up to {total:f}")
    # Each item names a label (up to ~50 characters) and two numbers: clipped at 200, not 80.
    shown = "; ".join(clip(item, 200) for item in bad[:10])
    if len(bad) > 10:
        shown += f" … and {len(bad) - 10:,} more"
    return Outcome(not bad, {"subsectors": shown or "none", "count": len(bad)},
                   f"subsector totals (partAcum) that do not match their rows: {shown}"
                   if bad else "")


def redutor_positive(redutores: Sequence[Decimal]) -> Outcome:
    """The index divisor: zero or negative makes the index meaningless."""
    bad = [f"{r:f}" for r in redutores if not r > 0]
    if not redutores:
        bad = ["none given"]
    return _outcome(bad, "not_positive", "reductor not positive")


def redutor_fits_decimal_24_8(redutores: Sequence[Decimal]) -> Outcome:
    """Landing keeps ``decimal(24, 8)``: more decimals would be rounded away, more integer
    digits would crash the write."""
    bad = [f"{r:f}" for r in redutores
           if _decimals_beyond(r, REDUTOR_PLACES) or not abs(r) < REDUTOR_LIMIT]
    return _outcome(bad, "not_decimal_24_8", "reductor beyond decimal(24, 8)")


@dataclass(frozen=True)
class Columns:
    """A portfolio as plain columns: what the payload validation and the landing checks
    both see. ``header_totals`` and ``redutores`` are the distinct values the rows carry
    (a landing file repeats them on every row; exactly one each when sound)."""

    codes: Sequence[str]
    quantities: Sequence[int]
    participations: Sequence[Decimal]
    header_totals: Sequence[int] = field(default=())
    redutores: Sequence[Decimal] = field(default=())

    @classmethod
    def of(cls, portfolio: Portfolio) -> Columns:
        rows = portfolio.constituents
        return cls([c.codigo for c in rows], [c.qtde_teorica for c in rows],
                   [c.participacao_pct for c in rows], (portfolio.qtde_teorica_total,),
                   (portfolio.redutor,))

    @classmethod
    def of_landing(cls, table: pa.Table) -> Columns:
        """The columns of landing rows (one portfolio's): the rules run on files as stored."""
        return cls(
            codes=table.column("codigo").to_pylist(),
            quantities=table.column("qtde_teorica").to_pylist(),
            participations=table.column("participacao_pct").to_pylist(),
            header_totals=sorted(set(table.column("qtde_teorica_total").to_pylist())),
            redutores=sorted(set(table.column("redutor").to_pylist())),
        )


def column_rules(cols: Columns) -> dict[str, Outcome]:
    """Every rule's outcome, by rule name (the asset check names)."""
    codes, qty, parts = cols.codes, cols.quantities, cols.participations
    return {
        "at_least_50_constituents": at_least_50_constituents(codes),
        "at_most_200_constituents": at_most_200_constituents(codes),
        "unique_codes": unique_codes(codes),
        "codes_are_b3_tickers": codes_are_b3_tickers(codes),
        "quantities_positive": quantities_positive(codes, qty),
        "quantities_fit_int64": quantities_fit_int64(codes, qty, cols.header_totals),
        "quantities_add_up_to_header_total":
            quantities_add_up_to_header_total(qty, cols.header_totals),
        "participations_non_negative": participations_non_negative(codes, parts),
        "participations_at_most_3_decimals": participations_at_most_3_decimals(codes, parts),
        "participations_add_up_to_100": participations_add_up_to_100(parts),
        "redutor_positive": redutor_positive(cols.redutores),
        "redutor_fits_decimal_24_8": redutor_fits_decimal_24_8(cols.redutores),
    }


#: IBOV's own size and ticker rules. Other indices are exempt: B3's indices hold from 6 (IBEE)
#: to ~240 (IGCX) members, and some list fund shares and BDRs rather than company stock.
IBOV_ONLY_RULES = frozenset({"at_least_50_constituents", "at_most_200_constituents",
                             "codes_are_b3_tickers"})


def index_rules(cols: Columns, indice: str = INDICE) -> dict[str, Outcome]:
    """The rules of ``indice``'s portfolio: every rule for IBOV; for any other index those
    that hold for every index (unique codes, positive quantities adding up to the header's
    total, weights adding up to 100 ± 0.01, a sound reductor)."""
    rules = column_rules(cols)
    if indice == INDICE:
        return rules
    return {name: outcome for name, outcome in rules.items() if name not in IBOV_ONLY_RULES}


def sector_rules(portfolio: Portfolio) -> dict[str, Outcome]:
    """The sector view's own rules (payloads of ``segment`` 2 only: a CSV has no sectors)."""
    rows = portfolio.constituents
    labels = [c.setor_b3 for c in rows]
    return {
        "every_row_has_a_sector": every_row_has_a_sector([c.codigo for c in rows], labels),
        "sector_totals_match": sector_totals_match(
            labels, [c.participacao_pct for c in rows], [c.part_acum for c in rows]),
    }


def portfolio_problems(portfolio: Portfolio) -> list[str]:
    """Every reason to reject ``portfolio``; empty when it is sound."""
    if not portfolio.constituents:
        return ["the results are empty"]
    outcomes = list(index_rules(Columns.of(portfolio), portfolio.indice).values())
    if portfolio.by_sector:
        outcomes += sector_rules(portfolio).values()
    return [o.problem for o in outcomes if not o.passed]


def enrichment_problems(portfolio: Portfolio) -> list[str]:
    """The sector view's own problems when they are the only ones (every rule of the
    portfolio itself passes): the day's portfolio is sound, only its enrichment is not."""
    if not portfolio.constituents or not portfolio.by_sector:
        return []
    if any(not o.passed for o in index_rules(Columns.of(portfolio), portfolio.indice).values()):
        return []
    return [o.problem for o in sector_rules(portfolio).values() if not o.passed]


def validate_portfolio(portfolio: Portfolio) -> Portfolio:
    """``portfolio`` itself when sound; else :class:`B3PayloadError` naming the index (when
    not IBOV), the view and capture date (a period view: the same rules as the day's
    portfolio) and every problem."""
    problems = portfolio_problems(portfolio)
    if not problems:
        return portfolio
    which = "" if portfolio.indice == INDICE else f"index {portfolio.indice}: "
    if portfolio.view != "day":  # undated by B3: the date is the capture's, not B3's
        raise B3PayloadError(portfolio.where, f"{which}{VIEW_NAMES[portfolio.view]} captured "
                             f"on {portfolio.data_carteira.isoformat()}: " + "; ".join(problems))
    raise B3PayloadError(portfolio.where, which + "; ".join(problems), portfolio.data_carteira)
