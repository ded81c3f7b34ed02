"""Charts of the marts: the day's sector weights, the entries and exits since the previous
portfolio, and the concentration trend (HHI, effective number, top 10) over every date.

Pure (no Dagster), like ``report.py`` whose PNG helpers it shares: the queries below run
through a :class:`~b3_assets.platform.catalog.QueryEngine`, so the same charts come from DuckDB
locally and from Athena on AWS. Numbers stay Decimal until they are handed to matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.ticker import FuncFormatter

from b3_assets.platform.catalog import Param, QueryEngine
from b3_assets.reports.report import (
    BAR_COLOR,
    DOWN_COLOR,
    UP_COLOR,
    DistinctTicks,
    ReportError,
    _figure,
    _note,
    _png,
    fmt_pct,
    weight_bars,
)

MARTS_NOTE = (
    "Fonte: B3, carteira teórica do IBOV; marts ibov_setores, ibov_movimentos, ibov_indicadores"
)
UNCLASSIFIED = "(sem setor)"

# Portable SQL (DuckDB and Athena): ``?`` parameters, lower-case names.
DAY_SQL = "SELECT data_carteira_anterior, giro_pct FROM ibov_indicadores WHERE data_carteira = ?"
SETORES_SQL = (
    "SELECT setor, qtd_acoes, participacao_pct FROM ibov_setores WHERE data_carteira = ? "
    "ORDER BY participacao_pct DESC, setor"
)
MOVIMENTOS_SQL = (
    "SELECT codigo, acao, movimento, participacao_pct FROM ibov_movimentos "
    "WHERE data_carteira = ? ORDER BY movimento, participacao_pct DESC, codigo"
)
TREND_SQL = (
    "SELECT data_carteira, hhi, n_efetivo, top10_pct FROM ibov_indicadores "
    "WHERE data_carteira <= ? ORDER BY data_carteira"
)


def _rows(catalog: QueryEngine, sql: str, params: Sequence[Param]) -> list[dict[str, Any]]:
    result = catalog.query(sql, list(params))
    columns = [c.lower() for c in result.columns]
    return [dict(zip(columns, row, strict=True)) for row in result.rows]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _message(title: str, text: str) -> bytes:
    fig = _figure(2.4)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, transform=ax.transAxes)
    return _png(fig)


def sectors_png(rows: Sequence[dict[str, Any]], day: date) -> bytes:
    """Horizontal bars of the day's sector weights, heaviest first (rows of ibov_setores)."""
    ordered = sorted(rows, key=lambda r: (-r["participacao_pct"], r["setor"] or "~"))
    fig = _figure(max(3.0, 1.4 + 0.38 * len(ordered)))
    ax = fig.add_subplot()
    labels = [f"{r['setor'] or UNCLASSIFIED} ({r['qtd_acoes']})" for r in ordered]
    weight_bars(ax, labels, [r["participacao_pct"] for r in ordered], 1.18)
    ax.set_xlabel("Participação na carteira teórica (%); entre parênteses, nº de ações")
    ax.set_title(f"IBOV {day.isoformat()}: participação por setor econômico")
    total = sum((r["participacao_pct"] for r in rows), Decimal(0))
    _note(fig, f"{len(rows)} setores, somando {fmt_pct(total)}. {MARTS_NOTE}.")
    return _png(fig)


def movements_png(rows: Sequence[dict[str, Any]], day: date, previous: date | None) -> bytes:
    """Entries (weight on the day, green) and exits (weight on the previous date, red) since
    the previous portfolio (rows of ibov_movimentos), or an image that says there are none."""
    title = f"IBOV {day.isoformat()}: entradas e saídas"
    if previous is None:
        return _message(title, f"Sem carteira anterior a {day.isoformat()} no lake.")
    title += f" desde {previous.isoformat()}"
    if not rows:
        return _message(title, "Nenhuma ação entrou ou saiu da carteira.")
    entries = [r for r in rows if r["movimento"] == "entrada"]
    exits = [r for r in rows if r["movimento"] == "saida"]
    shown = entries + exits
    fig = _figure(max(3.0, 1.6 + 0.34 * len(shown)))
    ax = fig.add_subplot()
    values = [float(r["participacao_pct"]) for r in entries] + [
        -float(r["participacao_pct"]) for r in exits
    ]  # the plotting boundary
    colors = [UP_COLOR] * len(entries) + [DOWN_COLOR] * len(exits)
    bars = ax.barh(range(len(shown)), values, color=colors)
    ax.set_yticks(range(len(shown)), [f"{r['acao']} ({r['codigo']})" for r in shown], fontsize=9)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[fmt_pct(r["participacao_pct"]) for r in shown], padding=3,
                 fontsize=8)  # fmt: skip
    span = max(abs(v) for v in values) * 1.35
    ax.set_xlim(-span if exits else 0, span if entries else 0.0001)
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.xaxis.set_major_formatter(DistinctTicks(lambda v, places: fmt_pct(abs(v), places), 1))
    ax.set_xlabel(
        f"{len(entries)} entradas (peso em {day.isoformat()}, verde) e {len(exits)} saídas "
        f"(peso em {previous.isoformat()}, vermelho)"
    )
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _note(fig, f"{MARTS_NOTE}.")
    return _png(fig)


def concentration_png(rows: Sequence[dict[str, Any]]) -> bytes:
    """HHI, effective number of tickers and top-10 weight over every date (ibov_indicadores)."""
    if not rows:
        return _message("IBOV: concentração", "Nenhuma data em ibov_indicadores.")
    days = [_as_date(r["data_carteira"]) for r in rows]
    fig = _figure(6.6)
    axes = fig.subplots(3, 1, sharex=True)
    series = (
        ("hhi", "HHI (Σ w²)", lambda v, _p: f"{v:.4f}".replace(".", ",")),
        ("n_efetivo", "N efetivo (1/HHI)", lambda v, _p: f"{v:.1f}".replace(".", ",")),
        ("top10_pct", "10 maiores (%)", lambda v, _p: fmt_pct(v, 1)),
    )
    for ax, (column, name, fmt) in zip(axes, series, strict=True):
        values = [float(r[column]) for r in rows]  # the plotting boundary
        ax.plot(days, values, marker="o" if len(days) <= 60 else None, markersize=3,
                linewidth=1.4, color=BAR_COLOR)  # fmt: skip
        ax.set_ylabel(name, fontsize=9)
        ax.yaxis.set_major_formatter(FuncFormatter(fmt))
        ax.grid(alpha=0.3)
        ax.margins(x=0.08)  # room for the last value's label
        ax.annotate(fmt(values[-1], None), (days[-1], values[-1]), textcoords="offset points",
                    xytext=(6, 2), fontsize=8)  # fmt: skip
    locator = AutoDateLocator(minticks=3, maxticks=8)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    span = days[0].isoformat() + (f" a {days[-1].isoformat()}" if len(days) > 1 else "")
    axes[0].set_title(f"IBOV: concentração da carteira teórica, {span}")
    _note(fig, f"{len(rows)} datas. {MARTS_NOTE}.")
    return _png(fig)


@dataclass(frozen=True)
class MartsReport:
    day: date
    previous: date | None
    sectors_png: bytes
    movements_png: bytes
    concentration_png: bytes
    entered: tuple[str, ...]
    left: tuple[str, ...]
    sectors: int
    #: The day's ibov_setores rows, heaviest first, and its ibov_indicadores row (for the UI).
    sector_rows: tuple[dict[str, Any], ...] = ()
    indicators: dict[str, Any] | None = None


def marts_report(catalog: QueryEngine, day: date) -> MartsReport:
    """The three charts of ``day`` from the marts; :class:`ReportError` when the marts have no
    row for it (materialize the marts for that date first)."""
    head = _rows(catalog, DAY_SQL, [day])
    if not head:
        raise ReportError(
            f"ibov_indicadores has no row for {day.isoformat()} ({catalog.name}): materialize "
            "marts/ibov_indicadores (and the other marts) for that date first."
        )
    previous = head[0]["data_carteira_anterior"]
    previous = _as_date(previous) if previous is not None else None
    sectors = _rows(catalog, SETORES_SQL, [day])
    moves = _rows(catalog, MOVIMENTOS_SQL, [day])
    trend = _rows(catalog, TREND_SQL, [day])
    return MartsReport(
        day=day,
        previous=previous,
        sectors_png=sectors_png(sectors, day),
        movements_png=movements_png(moves, day, previous),
        concentration_png=concentration_png(trend),
        entered=tuple(sorted(r["codigo"] for r in moves if r["movimento"] == "entrada")),
        left=tuple(sorted(r["codigo"] for r in moves if r["movimento"] == "saida")),
        sectors=len(sectors),
        sector_rows=tuple(sectors),
        indicators={
            **next((r for r in trend if _as_date(r["data_carteira"]) == day), {}),
            "giro_pct": head[0]["giro_pct"],
        },
    )
