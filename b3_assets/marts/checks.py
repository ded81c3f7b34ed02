"""The marts' checks: plain rules on the stored rows, then their Dagster check."""

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import dagster as dg
import pyarrow.compute as pc

from b3_assets.keys import MART_KEYS
from b3_assets.marts.compute import IsSession, landing_sessions, plan_marts, previous_session
from b3_assets.marts.store import MartStore
from b3_assets.partitions import trading_day_partitions
from b3_assets.platform.check_results import CheckOutcome, check_evaluation
from b3_assets.platform.resources import LakeResource
from b3_assets.sessions import is_known_session
from b3_assets.source.validate import PARTICIPATION_TOLERANCE
from b3_assets.storage.lake import Lake, LakeError
from b3_assets.storage.landing import read_landing
from glue.layout import (
    MART_INDICADORES,
    MART_MOVIMENTOS,
    MART_NAMES,
    MART_SETORES,
)

MOVIMENTOS, INDICADORES, SETORES = (MART_KEYS[n] for n in MART_NAMES)

# --- checks: plain rules, then Dagster ----------------------------------------------------

HHI_CHECK = "hhi_and_n_efetivo_match_landing"


def setores_outcome(rows: Sequence[Mapping[str, Any]]) -> CheckOutcome:
    """The sectors' weights of a date add up to 100 ± 0.01 % (the payload rule's tolerance,
    source/validate.py: the sectors partition the same weights)."""
    if not rows:
        return False, {"problem": "no rows for the date: materialize marts/ibov_setores"}
    total = sum((r["participacao_pct"] for r in rows), Decimal(0))
    unknown = sum((r["participacao_pct"] for r in rows if r["setor"] is None), Decimal(0))
    return abs(total - 100) <= PARTICIPATION_TOLERANCE, {
        "total_pct": str(total),
        "sectors": sum(1 for r in rows if r["setor"] is not None),
        "sem_setor_pct": str(unknown),
    }


def _one_row(rows: Sequence[Mapping[str, Any]]) -> str | None:
    if len(rows) != 1:
        return f"{len(rows)} rows for the date, expected 1: materialize marts/ibov_indicadores"
    return None


def giro_outcome(rows: Sequence[Mapping[str, Any]]) -> CheckOutcome:
    """giro_pct is between 0 and 100 (null only for a date without a previous date)."""
    if (problem := _one_row(rows)) is not None:
        return False, {"problem": problem}
    giro, anterior = rows[0]["giro_pct"], rows[0]["data_carteira_anterior"]
    meta = {"giro_pct": str(giro), "data_carteira_anterior": str(anterior)}
    if giro is None:
        return anterior is None, meta
    return Decimal(0) <= giro <= Decimal(100), meta


def hhi_outcome(rows: Sequence[Mapping[str, Any]], weights: Collection[Decimal]) -> CheckOutcome:
    """hhi and n_efetivo are those of the date's landing weights (``weights``, in %),
    recomputed here apart from the mart's SQL (Python decimals, not the SQL's integers):
    hhi = Σ (w / 100)² to 6 decimals, n_efetivo = 1 / Σ (w / 100)² to 3, both half up. So a
    wrong formula, a ticker lost or counted twice, or a mart older than its landing file fails."""
    if (problem := _one_row(rows)) is not None:
        return False, {"problem": problem}
    if not weights:
        return False, {"problem": "no landing rows for the date: materialize "
                       "landing/ibov_portfolio, then the marts"}
    squares = sum((w * w for w in weights), Decimal(0)) / 10_000  # exact: w has 3 decimals
    hhi = squares.quantize(Decimal("0.000001"), ROUND_HALF_UP)
    n_efetivo = (1 / squares).quantize(Decimal("0.001"), ROUND_HALF_UP) if squares else None
    stored = rows[0]["hhi"], rows[0]["n_efetivo"]
    return stored == (hhi, n_efetivo), {
        "hhi": str(stored[0]),
        "n_efetivo": str(stored[1]),
        "hhi_from_landing": str(hhi),
        "n_efetivo_from_landing": str(n_efetivo),
        "landing_rows": len(weights),
    }


def movimentos_outcome(
    rows: Sequence[Mapping[str, Any]],
    atual: Collection[str],
    anterior: Collection[str] | None,
    data_carteira_anterior: date | None,
) -> CheckOutcome:
    """Entries are the tickers of the date missing on the previous landing date, exits the
    reverse (none without a previous date), each once, all against that previous date."""
    expected = {  # keys: MOVIMENTOS_KINDS
        "entrada": sorted(set(atual) - set(anterior or ())) if anterior is not None else [],
        "saida": sorted(set(anterior or ()) - set(atual)),
    }
    found = {k: sorted(r["codigo"] for r in rows if r["movimento"] == k) for k in expected}
    others = sorted({r["movimento"] for r in rows} - set(expected))
    dates = sorted({str(r["data_carteira_anterior"]) for r in rows})
    meta: dict[str, Any] = {
        "data_carteira_anterior": str(data_carteira_anterior),
        "entradas": ", ".join(found["entrada"]) or "none",
        "saidas": ", ".join(found["saida"]) or "none",
    }
    for kind in expected:
        if found[kind] != expected[kind]:
            meta[f"expected_{kind}s"] = ", ".join(expected[kind]) or "none"
    if others:
        meta["unknown_movimentos"] = ", ".join(others)
    passed = found == expected and not others and dates in ([], [str(data_carteira_anterior)])
    return passed, meta


MART_CHECKS: dict[str, dict[str, str]] = {
    MART_MOVIMENTOS: {
        "entries_and_exits_match_landing": "Entries and exits are exactly the set differences "
        "of the tickers of the date and of the previous landing date (a B3 session).",
    },
    MART_INDICADORES: {
        "giro_pct_between_0_and_100": "One-way turnover is between 0 and 100 % (null only "
        "without a previous date).",
        HHI_CHECK: "hhi and n_efetivo are those of the date's landing weights, recomputed apart "
        "from the mart's SQL: hhi = Σ (w/100)² to 6 decimals, n_efetivo = 1/hhi to 3.",
    },
    MART_SETORES: {
        "weights_add_up_to_100": "The sectors' weights add up to 100 ± 0.01 % on every date.",
    },
}


MART_CHECK_KEYS = [
    dg.AssetCheckKey(MART_KEYS[name], check)
    for name, checks in MART_CHECKS.items()
    for check in checks
]


def _check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            check, asset=MART_KEYS[name], description=text, partitions_def=trading_day_partitions
        )
        for name, checks in MART_CHECKS.items()
        for check, text in checks.items()
    ]


def evaluate_mart_checks(
    lake: Lake,
    dates: Iterable[date],
    selected: Collection[tuple[str, str]],
    is_session: IsSession = is_known_session,
) -> Iterator[tuple[str, str, date, CheckOutcome]]:
    """(mart, check, date, outcome) of each selected (mart, check) and date, from the stored
    marts (each year file read once) and, for the movements, the landing files."""
    days = sorted(set(dates))
    store = MartStore(lake)
    names = sorted({name for name, _ in selected})
    rows = {name: store.rows_by_date(name, days) for name in names}
    sessions = landing_sessions(lake, is_session) if MART_MOVIMENTOS in names else []
    landed: dict[date, dict[str, list[Any]] | str] = {}

    def landing(day: date) -> dict[str, list[Any]] | str:
        """The date's landing rows (codigo, participacao_pct, …), or why they could not be read."""
        if day not in landed:
            try:
                table = read_landing(lake, day)
                landed[day] = table.filter(pc.equal(table.column("data_carteira"), day)).to_pydict()
            except LakeError as exc:
                landed[day] = str(exc)
        return landed[day]

    for day in days:
        for name, check in sorted(selected, key=lambda s: (MART_NAMES.index(s[0]), s[1])):
            day_rows = rows[name][day]
            if name == MART_SETORES:
                outcome = setores_outcome(day_rows)
            elif check == "giro_pct_between_0_and_100":
                outcome = giro_outcome(day_rows)
            elif check == HHI_CHECK:
                atual = landing(day)
                outcome = (
                    (False, {"landing": atual}) if isinstance(atual, str)
                    else hhi_outcome(day_rows, atual["participacao_pct"])
                )
            else:
                anterior = previous_session(sessions, day)
                atual, before = landing(day), landing(anterior) if anterior else None
                if isinstance(atual, str) or isinstance(before, str):
                    outcome = (False, {"landing": atual if isinstance(atual, str) else before})
                else:
                    outcome = movimentos_outcome(
                        day_rows, set(atual["codigo"]),
                        set(before["codigo"]) if before is not None else None, anterior,
                    )
            yield name, check, day, outcome


@dg.multi_asset_check(name="ibov_marts_checks", specs=_check_specs(), can_subset=True)
def ibov_marts_checks(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckEvaluation]:
    """One result per check and per date of the run, read from the stored marts; also for
    the next landing dates the marts' run recomputed with them (same plan)."""
    names = {key: name for name, key in MART_KEYS.items()}
    selected = {(names[k.asset_key], k.name) for k in context.selected_asset_check_keys}
    the_lake = lake.get()
    dates = [date.fromisoformat(k) for k in context.partition_keys]
    followers = plan_marts(landing_sessions(the_lake), dates).followers
    for name, check, day, outcome in evaluate_mart_checks(the_lake, dates + followers, selected):
        yield check_evaluation(MART_KEYS[name], check, day.isoformat(), outcome)
