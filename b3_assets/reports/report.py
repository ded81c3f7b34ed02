"""What people see: the day's IBOV composition and its changes as PNGs, an issuer's history.

Pure (no Dagster): the example queries of ``b3_assets/sql/`` run through a
:class:`~b3_assets.platform.catalog.QueryEngine` (DuckDB locally, Athena on AWS), and matplotlib
draws with its Agg canvas (no pyplot, no global backend state, the same bytes for the same rows).
Numbers stay :class:`~decimal.Decimal` as the catalog returns them; they become floats only
where they are handed to matplotlib. Chart text is Portuguese, as the data is.
"""

from __future__ import annotations

import difflib
import functools
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, Formatter
from PIL import Image

from b3_assets.platform.catalog import QueryEngine

#: The example queries, package data in ``b3_assets/sql/`` (one copy; ``sql/README.md``).
QUERIES = ("weights_on_date", "issuer_history", "biggest_changes")
KNOWN_ISSUERS_SQL = "SELECT DISTINCT Acao AS acao FROM b3_etl_soma_acao ORDER BY acao"

TOP_N = 15
CHANGES_N = 10
DPI = 100
PNG_COLORS = 128
UP_COLOR = "#2e7d32"
DOWN_COLOR = "#c62828"
BAR_COLOR = "#1f5f99"
SOURCE_NOTE = "Fonte: B3, carteira teórica do IBOV; tabela b3_etl_soma_acao"
_ISSUER = re.compile(r"^[A-Z0-9]{4}$")


class ReportError(ValueError):
    """The catalog has nothing to draw for what was asked (a message says what to do)."""


@functools.cache
def sql_text(name: str) -> str:
    """``b3_assets/sql/<name>.sql`` as written (with its comments)."""
    if name not in QUERIES:
        raise KeyError(f"no query {name!r}; one of {', '.join(QUERIES)}")
    return resources.files("b3_assets").joinpath("sql", f"{name}.sql").read_text("utf-8")


@functools.cache
def load_query(name: str) -> str:
    """The query to send: comment lines and a trailing ``;`` removed (Athena takes one
    statement and is picky about what precedes it); DuckDB and Athena run the same text."""
    lines = [ln for ln in sql_text(name).splitlines() if not ln.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";").strip()


def run_query(catalog: QueryEngine, name: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows of a named example query as dicts with lower-case keys (Athena's spelling)."""
    result = catalog.query(load_query(name), list(params))
    columns = [c.lower() for c in result.columns]
    return [dict(zip(columns, row, strict=True)) for row in result.rows]


# --- formatting (Portuguese: decimal comma) -----------------------------------------------


def fmt_pct(value: Decimal | float, places: int = 3) -> str:
    return f"{value:.{places}f}".replace(".", ",") + "%"


def fmt_pp(value: Decimal | float, places: int = 3) -> str:
    return f"{value:+.{places}f}".replace(".", ",")


def label(row: dict[str, Any]) -> str:
    return f"{row['empresa']} ({row['acao']})"


class DistinctTicks(Formatter):
    """Tick labels with the fewest decimals (``min_places`` to 4) that write every tick
    exactly, so no two read alike: ``0%, 1%, 2%`` on a wide axis, ``0,0%, 0,5%, 1,0%`` on a
    narrow one, never the ``0%, 0%, 1%, 2%, 2%`` of rounding every tick to whole percents."""

    def __init__(self, fmt: Callable[[float, int], str], min_places: int = 0) -> None:
        self.fmt, self.min_places, self.places = fmt, min_places, min_places

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        def exact(places: int) -> bool:
            return all(abs(v * 10**places - round(v * 10**places)) < 1e-6 for v in values)

        self.places = next((p for p in range(self.min_places, 4) if exact(p)), 4)
        return [self.fmt(v, self.places) for v in values]

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.fmt(x, self.places)


def text_bar(value: float, largest: float, width: int = 24) -> str:
    """``value`` as a bar of block characters (eighths), ``largest`` filling ``width``: a
    chart in plain text, which the Dagster UI shows inline in a metadata table."""
    eighths = round(abs(value) / largest * width * 8) if largest > 0 else 0
    full, rest = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")


def _png(fig: Figure) -> bytes:
    """The figure as a small PNG: a 128-colour palette (flat charts lose nothing visible) is
    about a third of the RGBA bytes, which matters for images inlined in the event log."""
    FigureCanvasAgg(fig)
    rgba = io.BytesIO()
    fig.savefig(rgba, format="png", dpi=DPI, facecolor="white")
    rgba.seek(0)
    with Image.open(rgba) as image:
        palette = image.convert("RGB").quantize(colors=PNG_COLORS)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _figure(height_in: float) -> Figure:
    return Figure(figsize=(9.0, height_in), dpi=DPI, layout="constrained")


def _note(fig: Figure, text: str) -> None:
    fig.supxlabel(text, fontsize=8, color="#555555", ha="left", x=0.01)


# --- the day's report --------------------------------------------------------------------


@dataclass(frozen=True)
class DayReport:
    day: date
    previous: date | None
    rows: int
    top15_png: bytes
    changes_png: bytes
    entered: tuple[str, ...]
    left: tuple[str, ...]
    #: The rows drawn, for the UI's tables: the day's weights and the changes shown.
    weights: tuple[dict[str, Any], ...] = ()
    shown_changes: tuple[dict[str, Any], ...] = ()


def weight_bars(ax: Any, labels: Sequence[str], weights: Sequence[Decimal], room: float) -> None:
    """Horizontal bars of weights (%), heaviest on top as given, each labelled with its exact
    value; ``room``: the x axis reaches this times the largest, for the labels."""
    values = [float(w) for w in weights]  # the plotting boundary
    bars = ax.barh(range(len(values)), values, color=BAR_COLOR)
    ax.set_yticks(range(len(values)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[fmt_pct(w) for w in weights], padding=3, fontsize=8)
    ax.set_xlim(0, (max(values) if values else 1.0) * room)
    ax.xaxis.set_major_formatter(DistinctTicks(fmt_pct))
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)


def top_issuers(rows: Sequence[dict[str, Any]], n: int = TOP_N) -> list[dict[str, Any]]:
    """The ``n`` heaviest issuers, heaviest first (ties by issuer root)."""
    return sorted(rows, key=lambda r: (-r["participacao_total_pct"], r["acao"]))[:n]


def top15_png(rows: Sequence[dict[str, Any]], day: date, n: int = TOP_N) -> bytes:
    """Horizontal bars of the ``n`` heaviest issuers (rows as weights_on_date returns them)."""
    return _png(top15_figure(rows, day, n))


def top15_figure(rows: Sequence[dict[str, Any]], day: date, n: int = TOP_N) -> Figure:
    top = top_issuers(rows, n)
    fig = _figure(6.0)
    ax = fig.add_subplot()
    weight_bars(ax, [label(r) for r in top], [r["participacao_total_pct"] for r in top], 1.15)
    ax.set_xlabel("Participação na carteira teórica (%)")
    ax.set_title(f"IBOV {day.isoformat()}: as {len(top)} maiores participações por empresa")
    share = sum((r["participacao_total_pct"] for r in top), Decimal(0))
    _note(
        fig,
        f"{len(rows)} empresas na carteira; as {len(top)} maiores somam {fmt_pct(share)}. "
        f"{SOURCE_NOTE}.",
    )
    return fig


def biggest_moves(changes: Sequence[dict[str, Any]], n: int = CHANGES_N) -> list[dict[str, Any]]:
    """The ``n`` biggest rises, then the ``n`` biggest falls: biggest rise first, biggest
    fall last (rows as biggest_changes returns them)."""
    ups = sorted(
        (r for r in changes if r["variacao_participacao_pp"] > 0),
        key=lambda r: (-r["variacao_participacao_pp"], r["acao"]),
    )[:n]
    downs = sorted(
        (r for r in changes if r["variacao_participacao_pp"] < 0),
        key=lambda r: (r["variacao_participacao_pp"], r["acao"]),
    )[:n]
    return ups + downs[::-1]


def changes_png(
    changes: Sequence[dict[str, Any]],
    day: date,
    previous: date | None,
    *,
    entered: Sequence[str] = (),
    left: Sequence[str] = (),
    n: int = CHANGES_N,
) -> bytes:
    """The ``n`` biggest rises and falls in percentage points (rows as biggest_changes returns
    them), or an image that says why there is nothing to compare."""
    if previous is None:
        fig = _figure(2.4)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_title(f"IBOV {day.isoformat()}: variação da participação (p.p.)")
        ax.text(
            0.5,
            0.5,
            f"Sem carteira anterior a {day.isoformat()} no lake:\n"
            "a variação aparece quando uma data anterior foi refinada antes desta.",
            ha="center",
            va="center",
            fontsize=11,
            transform=ax.transAxes,
        )
        return _png(fig)
    shown = biggest_moves(changes, n)
    ups = [r for r in shown if r["variacao_participacao_pp"] > 0]
    downs = [r for r in shown if r["variacao_participacao_pp"] < 0]
    fig = _figure(max(3.0, 1.6 + 0.3 * len(shown)))
    ax = fig.add_subplot()
    title = (
        f"IBOV {day.isoformat()} vs carteira anterior {previous.isoformat()}: "
        "variação da participação (p.p.)"
    )
    ax.set_title(title, fontsize=11)
    if shown:
        values = [float(r["variacao_participacao_pp"]) for r in shown]  # plotting boundary
        colors = [UP_COLOR if v > 0 else DOWN_COLOR for v in values]
        bars = ax.barh(range(len(shown)), values, color=colors)
        ax.set_yticks(range(len(shown)), [label(r) for r in shown], fontsize=9)
        ax.invert_yaxis()
        ax.bar_label(
            bars,
            labels=[fmt_pp(r["variacao_participacao_pp"]) for r in shown],
            padding=3,
            fontsize=8,
        )
        span = max(abs(v) for v in values) * 1.3
        ax.set_xlim(-span, span)
        ax.axvline(0, color="#333333", linewidth=0.8)
        ax.xaxis.set_major_formatter(DistinctTicks(fmt_pp, min_places=1))
        ax.set_xlabel(
            f"Variação em pontos percentuais ({len(ups)} maiores altas em verde, "
            f"{len(downs)} maiores quedas em vermelho)"
        )
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    else:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "Nenhuma participação mudou.",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    notes = []
    if entered:
        notes.append(f"Entraram: {', '.join(entered)}")
    if left:
        notes.append(f"Saíram: {', '.join(left)}")
    _note(fig, ("; ".join(notes) + ". " if notes else "") + SOURCE_NOTE + ".")
    return _png(fig)


def day_report(catalog: QueryEngine, day: date) -> DayReport:
    """Both charts of ``day`` from the catalog; :class:`ReportError` if it has no rows."""
    weights = run_query(catalog, "weights_on_date", [day.isoformat()])
    if not weights:
        raise ReportError(
            f"the catalog has no refined rows for {day.isoformat()}: refined/b3_etl_soma_acao "
            "must be materialized for it first (the Glue job runs after the landing write)."
        )
    previous = weights[0]["data_carteira_anterior"]
    entered: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    changes: list[dict[str, Any]] = []
    if previous is not None:
        changes = run_query(catalog, "biggest_changes", [day.isoformat()])
        before = run_query(catalog, "weights_on_date", [previous.isoformat()])
        now = {r["acao"] for r in weights}
        entered = tuple(sorted(r["acao"] for r in weights if r["variacao_participacao_pp"] is None))
        # The previous date's own rows may be gone (re-refined away); then nothing is "left".
        left = tuple(sorted({r["acao"] for r in before} - now)) if before else ()
    return DayReport(
        day=day,
        previous=previous,
        rows=len(weights),
        top15_png=top15_png(weights, day),
        changes_png=changes_png(changes, day, previous, entered=entered, left=left),
        entered=entered,
        left=left,
        weights=tuple(weights),
        shown_changes=tuple(biggest_moves(changes)),
    )


# --- one issuer across dates -------------------------------------------------------------


def normalize_issuer(issuer: str) -> str:
    """``petr``, ``PETR4`` -> ``PETR`` (the issuer root of the refined table)."""
    text = issuer.strip().upper()
    if len(text) > 4 and _ISSUER.match(text[:4]) and text[4:].isdigit():
        text = text[:4]
    return text


def known_issuers(catalog: QueryEngine) -> list[str]:
    return [str(r[0]) for r in catalog.query(KNOWN_ISSUERS_SQL).rows]


def issuer_history_png(catalog: QueryEngine, issuer: str) -> bytes:
    """The weight of one issuer on every refined date; :class:`ReportError` (a ValueError)
    naming some known issuers when it has no rows."""
    root = normalize_issuer(issuer)
    rows = run_query(catalog, "issuer_history", [root]) if _ISSUER.match(root) else []
    if not rows:
        known = known_issuers(catalog)
        if not known:
            raise ReportError(
                f"no issuer {issuer!r}: the catalog ({catalog.name}) has no refined rows yet."
            )
        close = difflib.get_close_matches(root, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ReportError(
            f"no rows for issuer {issuer!r} in b3_etl_soma_acao ({catalog.name}).{hint} "
            f"Issuers are 4-letter ticker roots; {len(known)} known, e.g. "
            f"{', '.join(known[:12])}."
        )
    last = rows[-1]
    return _weight_history_png(
        rows,
        "participacao_total_pct",
        f"{last['empresa']} ({root})",
        f"Tickers: {last['tickers']}; {n_datas(len(rows))}. {SOURCE_NOTE}.",
    )


SECTOR_HISTORY_SQL = (
    "SELECT data_carteira, participacao_pct FROM ibov_setores WHERE setor = ? "
    "ORDER BY data_carteira"
)
KNOWN_SECTORS_SQL = "SELECT DISTINCT setor FROM ibov_setores WHERE setor IS NOT NULL ORDER BY 1"


def sector_history_png(catalog: QueryEngine, setor: str) -> bytes:
    """A sector's weight on every date of the ibov_setores mart; :class:`ReportError` naming
    the known sectors when it has no rows (sectors come with the segment-2 fetch, so dates
    imported from CSVs have none)."""
    rows = catalog.query(SECTOR_HISTORY_SQL, [setor.strip()]).as_dicts()
    if not rows:
        known = [str(r[0]) for r in catalog.query(KNOWN_SECTORS_SQL).rows]
        close = difflib.get_close_matches(setor, known, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ReportError(
            f"no rows for sector {setor!r} in ibov_setores ({catalog.name}).{hint} Known: "
            f"{', '.join(known) or 'none yet (sectors come from B3 fetches, not CSV imports)'}."
        )
    rows = [{k.lower(): v for k, v in r.items()} for r in rows]
    return _weight_history_png(
        rows, "participacao_pct", setor.strip(), f"{n_datas(len(rows))}. {SOURCE_NOTE}."
    )


def n_datas(n: int) -> str:
    """"1 data", "2 datas" (the charts speak Portuguese, as B3 does)."""
    return f"{n} data" if n == 1 else f"{n} datas"


def _weight_history_png(
    rows: Sequence[dict[str, Any]], column: str, title: str, note: str
) -> bytes:
    """A weight (%) across dates: the line, the last value, a readable y range."""
    days = [date.fromisoformat(str(r["data_carteira"])) for r in rows]
    values = [float(r[column]) for r in rows]  # the plotting boundary
    fig = _figure(4.8)
    ax = fig.add_subplot()
    ax.plot(days, values, marker="o", markersize=3.5, linewidth=1.5, color=BAR_COLOR)
    ax.annotate(
        fmt_pct(rows[-1][column]),
        (days[-1], values[-1]),
        textcoords="offset points",
        xytext=(6, 4),
        fontsize=9,
    )
    low, high = min(values), max(values)
    pad = max((high - low) * 0.15, high * 0.05, 0.05)
    ax.set_ylim(max(0.0, low - pad), high + pad)
    ax.yaxis.set_major_formatter(DistinctTicks(fmt_pct, min_places=1))
    ax.set_ylabel("Participação no IBOV (%)")
    ax.set_xlabel("Data da carteira")
    span = days[0].isoformat()
    if len(days) > 1:
        span += f" a {days[-1].isoformat()}"
    ax.set_title(f"{title}: participação no IBOV, {span}")
    ax.grid(alpha=0.3)
    if len(set(days)) == 1:  # one date: a week around it, not matplotlib's default decade
        ax.set_xlim(days[0] - timedelta(days=3), days[0] + timedelta(days=3))
        ax.xaxis.set_major_locator(FixedLocator([mdates.date2num(days[0])]))
    if len(days) > 6:
        fig.autofmt_xdate()
    _note(fig, note)
    return _png(fig)
