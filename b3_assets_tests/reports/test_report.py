"""report/ibov_composition and `b3-pipeline plot` on the local chain (B3 replica, two dates).

Also the helpers the SQL and UI tests share: refine dates on the chain, tick the sensor, run
what it requests, as the Dagster daemon would."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
from PIL import Image

from b3_assets.cli import main as cli_main
from b3_assets.keys import REFINED, REPORT
from b3_assets.platform.catalog import QueryEngine, QueryResult
from b3_assets.portfolio.checks import REFINED_CHECKS
from b3_assets.portfolio.sensors import RANGE_END, RANGE_START
from b3_assets.reports.report import (
    DistinctTicks,
    ReportError,
    changes_png,
    day_report,
    fmt_pct,
    fmt_pp,
    issuer_history_png,
    normalize_issuer,
    text_bar,
    top15_figure,
    top15_png,
)
from b3_assets.reports.report_assets import MAX_INLINE_PNG_BYTES, report_key
from b3_assets_tests.support.chain import (
    Platform,
    check_results,
    failure_message,
    local_platform,
    sensor_tick,
)
from b3_assets_tests.support.two_dates import DAY1, DAY2, apply_tick, refine, start_replica

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- helpers shared with test_sql_examples and test_ui_browser ----------------------------








def report_materializations(
    result: dg.ExecuteInProcessResult,
) -> dict[str, dg.AssetMaterialization]:
    """The report's materializations of a run, by partition (a range run has one per date)."""
    mats = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == REPORT
    ]
    by_partition = {m.partition: m for m in mats}
    assert len(by_partition) == len(mats), "a date drawn twice in one run"
    return by_partition


def inline_png(markdown: str, alt: str) -> bytes:
    prefix = f"![{alt}](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")"), markdown[:80]
    return base64.b64decode(markdown[len(prefix) : -1])


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as image:
        return image.size


# --- the chain: two refined dates, the sensor, the reports it requests -------------------


@dataclass
class Chain:
    platform: Platform
    instance: dg.DagsterInstance
    tick: Any
    results: list[dg.ExecuteInProcessResult]


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[Chain]:
    replica = start_replica()
    try:
        with dg.instance_for_test() as instance:
            platform = local_platform(tmp_path_factory.mktemp("lake"), replica.base_url)
            # raw, landing and marts (as b3-pipeline backfill): the sensor's follow-up records
            # both dates on refined, with their checks, and draws their reports in one run.
            refine(platform, replica, [DAY1, DAY2], instance, record_refined=False)
            tick = sensor_tick(platform, instance)
            yield Chain(platform, instance, tick, apply_tick(platform, instance, tick))
    finally:
        replica.stop()


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_sensor_requests_one_followup_run_that_records_both_dates(chain):
    assert not chain.tick.asset_events  # refined is recorded by a run, never by the tick
    # Consecutive sessions (Carnival lies between them): one run over the range, which
    # records both dates on refined, evaluates the refined checks and draws the report of
    # each date.
    (request,) = chain.tick.run_requests
    assert request.job_name == "refined_followup"
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (DAY1, DAY2)
    assert request.run_key and request.run_key.startswith(f"refined_followup-{DAY1}-{DAY2}-jr_")
    (result,) = chain.results
    assert result.success, failure_message(result)
    assert sorted(report_materializations(result)) == [DAY1, DAY2]
    for day in (DAY1, DAY2):
        (record,) = chain.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=REFINED, asset_partitions=[day]), limit=1
        ).records
        assert record.run_id == result.run_id  # the UI shows this run and its job
        statuses = check_results(chain.instance, REFINED, list(REFINED_CHECKS), day)
        assert set(statuses.values()) == {"SUCCEEDED"}, (day, statuses)
    # The UI sees both refined partitions and both reports as materialized.
    for key in (REFINED, REPORT):
        assert chain.instance.get_materialized_partitions(key) == {DAY1, DAY2}


@pytest.mark.parametrize("day, previous", [(DAY1, None), (DAY2, DAY1)])
def test_report_writes_pngs_and_shows_them_inline(chain, day, previous):
    (result,) = chain.results
    assert result.success, failure_message(result)
    meta = {k: v.value for k, v in report_materializations(result)[day].metadata.items()}
    lake = chain.platform.lake
    stored = {}
    for name in ("top15", "changes"):
        key = report_key(date.fromisoformat(day), f"{name}.png")
        assert key == f"reports/dt={day}/{name}.png"
        png = lake.read_bytes(key)
        assert png.startswith(PNG_MAGIC)
        assert len(png) < MAX_INLINE_PNG_BYTES
        assert inline_png(meta[f"{name}_png"], name) == png  # exactly the stored file
        assert meta[f"{name}_uri"] == lake.uri(key)
        stored[name] = png
    assert meta["date"] == day
    assert meta["previous_date"] == (previous or "none")
    # The same numbers as a table with a text bar per row: what every asset page shows
    # inline, no click (markdown over 1,000 characters, any PNG, sits behind one).
    top = [r.data for r in meta["top15"].records]
    weights = chain.platform.catalog.query(
        "SELECT empresa, Acao, participacao_total_pct FROM b3_etl_soma_acao "
        "WHERE DataCarteira = ? ORDER BY participacao_total_pct DESC, Acao LIMIT 15",
        [day],
    ).rows
    assert [r["empresa"] for r in top] == [f"{e} ({a})" for e, a, _ in weights]
    assert [r["part. (%)"] for r in top] == [fmt_pct(w) for _, _, w in weights]
    bars = [len(r[""]) for r in top]
    assert bars[0] == 24 and bars == sorted(bars, reverse=True) and bars[-1] > 0
    assert ("changes" in meta) == (previous is not None)
    issuers = chain.platform.catalog.query(
        "SELECT count(*) FROM b3_etl_soma_acao WHERE DataCarteira = ?", [day]
    ).rows[0][0]
    assert meta["rows"] == issuers > 50
    width, height = png_size(stored["changes"])
    if previous is None:
        assert height < 300  # the "no previous portfolio" note, not a chart
    else:
        assert height > 500  # 10 rises and 10 falls
    # The changes chart of DAY2 compares with DAY1: the same report rebuilt says so.
    report = day_report(chain.platform.catalog, date.fromisoformat(day))
    assert report.previous == (date.fromisoformat(previous) if previous else None)
    assert report.changes_png == stored["changes"] and report.top15_png == stored["top15"]


def _run_report(chain: Chain, first: str, last: str | None = None) -> dg.ExecuteInProcessResult:
    """The report alone for one date, or over ``first...last`` as a single-run backfill from
    the UI launches it."""
    job = chain.platform.defs.resolve_implicit_global_asset_job_def()
    if last is None:
        where: dict[str, Any] = {"partition_key": first}
    else:
        where = {"tags": {RANGE_START: first, RANGE_END: last}}
    return job.execute_in_process(
        asset_selection=[REPORT], instance=chain.instance, raise_on_error=False, **where
    )


def _report_files(chain: Chain, day: str) -> list[str]:
    """The composition report's PNGs of a date (the marts' charts live beside them)."""
    keys = chain.platform.lake.list_keys(f"reports/dt={day}/")
    return [k for k in keys if k.rsplit("/", 1)[1] in {"top15.png", "changes.png"}]


def test_report_of_a_date_that_was_not_refined_fails_with_a_clear_message(chain):
    result = _run_report(chain, "2025-03-06")
    assert not result.success
    message = failure_message(result)
    assert "no refined rows for 2025-03-06" in message
    assert _report_files(chain, "2025-03-06") == []


def test_range_run_draws_every_refined_date_and_fails_naming_the_others(chain):
    before = {k: chain.platform.lake.read_bytes(k) for k in _report_files(chain, DAY2)}
    assert len(before) == 2
    result = _run_report(chain, DAY2, "2025-03-06")
    assert not result.success
    assert sorted(report_materializations(result)) == [DAY2]  # drawn before the failure
    message = failure_message(result)
    assert "2025-03-06: the catalog has no refined rows for 2025-03-06" in message
    assert DAY2 not in message
    assert {k: chain.platform.lake.read_bytes(k) for k in before} == before  # deterministic
    assert _report_files(chain, "2025-03-06") == []


def test_cli_plot_writes_an_issuer_history(chain, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("B3_ENV", "local")
    monkeypatch.setenv("B3_DATA_DIR", str(chain.platform.settings.data_dir))
    monkeypatch.chdir(tmp_path)
    issuer = _issuer_on_both_days(chain.platform.catalog)
    assert cli_main(["plot", issuer]) == 0
    # Without -o: beside the lake (B3_DATA_DIR/plots), never into the current folder.
    assert list(tmp_path.iterdir()) == []
    png = (chain.platform.settings.data_dir / "plots" / f"{issuer}_history.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and png_size(png)[0] == 900
    target = tmp_path / "out" / "p.png"
    target.parent.mkdir()
    assert cli_main(["plot", issuer.lower() + "3", "-o", str(target)]) == 0  # PETR3 -> PETR
    assert target.read_bytes() == png  # deterministic
    assert f"wrote {target}" in capsys.readouterr().out
    assert cli_main(["plot", "ZZZZ"]) == 1
    err = capsys.readouterr().err
    assert "no rows for issuer 'ZZZZ'" in err and "known, e.g. " in err


def _issuer_on_both_days(catalog: QueryEngine) -> str:
    rows = catalog.query(
        "SELECT Acao FROM b3_etl_soma_acao GROUP BY Acao HAVING count(*) = 2 ORDER BY Acao"
    ).rows
    roots = [r[0] for r in rows]
    return "PETR" if "PETR" in roots else roots[0]


# --- the pure parts, without the chain ---------------------------------------------------


def _row(acao: str, pct: str, var: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "acao": acao,
        "empresa": f"EMPRESA {acao}",
        "participacao_total_pct": Decimal(pct),
        "variacao_participacao_pp": None if var is None else Decimal(var),
        **extra,
    }


def test_charts_are_deterministic_small_pngs():
    rows = [_row(f"A{i:03d}", f"{i / 7:.3f}", f"{(i - 10) / 100:.3f}") for i in range(1, 30)]
    day, prev = date(2025, 3, 5), date(2025, 2, 28)
    first = top15_png(rows, day)
    assert first == top15_png(list(reversed(rows)), day)
    assert png_size(first) == (900, 600)
    changes = changes_png(rows, day, prev, entered=["NEWW"], left=["GONE"])
    assert changes == changes_png(rows, day, prev, entered=["NEWW"], left=["GONE"])
    assert changes != changes_png(rows, day, prev)  # the entrants/exits note is drawn
    for png in (first, changes, changes_png([], day, None), changes_png([], day, prev)):
        assert png.startswith(PNG_MAGIC) and len(png) < MAX_INLINE_PNG_BYTES


class FakeCatalog(QueryEngine):
    """Answers the report's queries from rows per date (to test the logic, not the SQL)."""

    name = "fake"

    def __init__(self, by_day: dict[str, list[dict[str, Any]]]) -> None:
        self.by_day = by_day

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        if "DISTINCT" in sql:
            roots = sorted({r["acao"] for rows in self.by_day.values() for r in rows})
            return QueryResult(["acao"], [(r,) for r in roots])
        rows = self.by_day.get(str(params[0]), [])
        if "IS NOT NULL" in sql:
            rows = [r for r in rows if r["variacao_participacao_pp"] is not None]
        columns = list(rows[0]) if rows else ["acao"]
        return QueryResult(columns, [tuple(r[c] for c in columns) for r in rows])


def test_day_report_names_entrants_and_exits():
    prev = date(2025, 2, 28)
    before = [
        _row(a, pct, data_carteira_anterior=None)
        for a, pct in [("AAAA", "60.000"), ("GONE", "40.000")]
    ]
    now = [
        _row("AAAA", "70.000", "10.000", data_carteira_anterior=prev),
        _row("NEWW", "30.000", None, data_carteira_anterior=prev),
    ]
    catalog = FakeCatalog({"2025-02-28": before, "2025-03-05": now})
    report = day_report(catalog, date(2025, 3, 5))
    assert (report.previous, report.rows, report.entered, report.left) == (
        prev,
        2,
        ("NEWW",),
        ("GONE",),
    )
    with pytest.raises(ReportError, match="no refined rows for 2025-03-06"):
        day_report(catalog, date(2025, 3, 6))


def test_unknown_issuer_lists_known_ones():
    catalog = FakeCatalog({"2025-03-05": [_row("PETR", "12.000"), _row("PETZ", "1.000")]})
    with pytest.raises(ValueError, match=r"Did you mean PET[RZ], PET[RZ]\?.*e\.g\. PETR, PETZ\."):
        issuer_history_png(catalog, "PETX")
    with pytest.raises(ValueError, match="no refined rows yet"):
        issuer_history_png(FakeCatalog({}), "PETR")


@pytest.mark.parametrize(
    "given, root", [("petr", "PETR"), (" PETR4 ", "PETR"), ("TAEE11", "TAEE"), ("B3SA3", "B3SA")]
)
def test_normalize_issuer(given, root):
    assert normalize_issuer(given) == root


def _tick_labels(figure: Any) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()  # the labels are set when the figure is drawn
    (ax,) = figure.axes
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.parametrize("heaviest", ["2.600", "4.800", "14.000", "48.000"])
def test_top15_axis_ticks_never_repeat(heaviest):
    """The top-15 chart's percent axis: ticks at 0.5 % steps read 0,0% 0,5% 1,0%…, never
    0% 0% 1% 2% 2% (every tick rounded to a whole percent)."""
    top = Decimal(heaviest)
    rows = [_row(f"A{i:03d}", f"{top / i:.3f}") for i in range(1, 30)]
    labels = _tick_labels(top15_figure(rows, date(2025, 3, 5)))
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert labels[0] in {"0%", "0,0%"}


def test_distinct_ticks_use_the_fewest_decimals():
    pct = DistinctTicks(fmt_pct)
    assert pct.format_ticks([0, 2, 4, 6]) == ["0%", "2%", "4%", "6%"]
    assert pct.format_ticks([0, 0.5, 1, 1.5, 2, 2.5]) == [
        "0,0%", "0,5%", "1,0%", "1,5%", "2,0%", "2,5%"
    ]  # fmt: skip
    assert pct.format_ticks([0, 0.25, 0.5]) == ["0,00%", "0,25%", "0,50%"]
    assert DistinctTicks(fmt_pp, min_places=1).format_ticks([-0.2, 0, 0.2]) == [
        "-0,2", "+0,0", "+0,2"
    ]  # fmt: skip


def test_text_bar_is_proportional_in_eighths():
    assert text_bar(10, 10, width=4) == "████"
    assert text_bar(5, 10, width=4) == "██"
    assert text_bar(1, 8, width=1) == "▏"
    assert text_bar(-5, 10, width=4) == "██"
    assert text_bar(0, 10) == "" and text_bar(3, 0) == ""
