"""One index at a glance (``b3-pipeline plot --indice SMLL``): what someone following an index
asks first — where it has been (its closes, ``b3_indices_fechamento``), what it holds now (the
heaviest constituents of its latest portfolio, ``b3_carteiras``) and what changed last (the
latest entries and exits, ``b3_movimentos``). Plain queries on the catalog of either
environment (DuckDB or Athena, ``?`` parameters), then matplotlib; no Dagster here."""

from __future__ import annotations

import difflib
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from b3_assets.platform.catalog import QueryEngine

TOP_WEIGHTS = 15
CLOSES_SQL = ("SELECT data, fechamento FROM b3_indices_fechamento WHERE indice = ? "
              "ORDER BY data")
LATEST_PORTFOLIO_SQL = (
    "SELECT data_carteira, codigo, acao, participacao_pct FROM b3_carteiras "
    "WHERE indice = ? AND data_carteira = "
    "(SELECT max(data_carteira) FROM b3_carteiras WHERE indice = ?) "
    f"ORDER BY participacao_pct DESC, codigo LIMIT {TOP_WEIGHTS}")
LATEST_MOVES_SQL = (
    "SELECT data_carteira, data_carteira_anterior, movimento, codigo FROM b3_movimentos "
    "WHERE indice = ? AND data_carteira = "
    "(SELECT max(data_carteira) FROM b3_movimentos WHERE indice = ?) ORDER BY movimento, codigo")
KNOWN_INDICES_SQL = ("SELECT indice FROM b3_carteiras UNION "
                     "SELECT indice FROM b3_indices_fechamento ORDER BY indice")


class IndexReportError(ValueError):
    """Nothing to draw for the index; the message names the indices the catalog has."""


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def index_report_png(catalog: QueryEngine, indice: str) -> bytes:
    """The index's close history above its latest portfolio's top weights (with the latest
    entries and exits in the title); either part alone when the catalog has only that one."""
    code = indice.strip().upper()
    closes = catalog.query(CLOSES_SQL, [code]).rows
    top = catalog.query(LATEST_PORTFOLIO_SQL, [code, code]).as_dicts()
    moves = catalog.query(LATEST_MOVES_SQL, [code, code]).as_dicts()
    if not closes and not top:
        known = [str(r[0]) for r in catalog.query(KNOWN_INDICES_SQL).rows]
        close = difflib.get_close_matches(code, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        listed = ", ".join(known) or ("none yet: materialize daily_b3_indices (portfolios) "
                                      "or b3_index_levels (closes)")
        raise IndexReportError(
            f"no closes nor portfolio for index {code!r} in the {catalog.name} catalog "
            f"(b3_indices_fechamento, b3_carteiras).{hint} Known: {listed}.")
    return _draw(code, [(_as_date(d), Decimal(str(v))) for d, v in closes], top, moves)


def _moves_line(moves: Sequence[dict[str, Any]]) -> str:
    if not moves:
        return "sem entradas/saídas registradas"
    entradas = [m["codigo"] for m in moves if m["movimento"] == "entrada"]
    saidas = [m["codigo"] for m in moves if m["movimento"] == "saida"]
    day, before = _as_date(moves[0]["data_carteira"]), moves[0]["data_carteira_anterior"]
    return (f"em {day.isoformat()} (vs {_as_date(before).isoformat()}): entradas "
            f"{', '.join(entradas) or '-'}; saídas {', '.join(saidas) or '-'}")


def _draw(code: str, closes: Sequence[tuple[date, Decimal]], top: Sequence[dict[str, Any]],
          moves: Sequence[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    panels = int(bool(closes)) + int(bool(top))
    fig = Figure(figsize=(10, 4.2 * panels), dpi=110, layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    i = 0
    if closes:
        ax = axes[i]
        i += 1
        days = [d for d, _ in closes]
        values = [float(v) for _, v in closes]  # the plotting boundary
        ax.plot(days, values, linewidth=1.2, color="#1f5f8b")
        ax.annotate(f"{closes[-1][1]:,.2f}".replace(",", "X").replace(".", ",")
                    .replace("X", "."), (days[-1], values[-1]), textcoords="offset points",
                    xytext=(4, 4), fontsize=9)
        ax.set_title(f"{code}: fechamento, {days[0].isoformat()} a {days[-1].isoformat()} "
                     f"({len(days)} pregões)")
        locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel("pontos")
        ax.grid(alpha=0.3)
    if top:
        ax = axes[i]
        labels = [f"{r['codigo']} {str(r['acao'])[:18]}" for r in top][::-1]
        weights = [float(r["participacao_pct"]) for r in top][::-1]  # the plotting boundary
        bars = ax.barh(labels, weights, color="#1f5f8b")
        for bar, r in zip(bars, top[::-1], strict=True):
            ax.annotate(f"{r['participacao_pct']}%", (bar.get_width(), bar.get_y()),
                        textcoords="offset points", xytext=(3, 1), fontsize=8)
        day = _as_date(top[0]["data_carteira"])
        ax.set_title(f"{code}: maiores participações em {day.isoformat()} — "
                     f"{_moves_line(moves)}", fontsize=10)
        ax.set_xlabel("participação (%)")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"Índice {code} (b3_indices_fechamento, b3_carteiras, b3_movimentos)",
                 fontsize=10, color="#555555")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
